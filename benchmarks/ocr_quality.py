"""OCR quality and speed on real text lines: a ved model against tesseract, side by side, in one run.

    .venv/bin/python benchmarks/ocr_quality.py                  # the built-in reader on ../shared/data/uw3-dev
    .venv/bin/python benchmarks/ocr_quality.py --model run/best --data lines/ --limit 50 --json out.json

The data is a folder of single text lines with ground truth (Hugging Face imagefolder: images + metadata.jsonl or
metadata.csv with file_name, text). It prints one markdown table:

- CER and WER (vedcli.training.metrics: corpus-level, exact strings) on all lines, on short and on long lines, and
  on two variants made on the fly from the same lines: inverted (white text on black) and coloured (dark coloured
  text on a light coloured background, with uneven light). Same lines, same ground truth: an honest robustness check.
- Seconds per line, the median over batches of (batch time / lines in the batch), greedy decoding, for each thread
  count and batch size asked for. ved's time covers preprocessing, the model and decoding the text; the images are
  decoded from their files before timing.
- tesseract (`tesseract IMAGE - --psm 7`, OMP_THREAD_LIMIT=1, one process per line, as a script would call it) on
  the same lines and variants; its time is the median wall time of one call (start-up and file reading included).
  Without tesseract the table says so.

`--json FILE` also writes every figure and every line's predictions.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageChops, ImageOps

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "uw3-dev"
VARIANTS = ("inverted", "colour")
SETTINGS = {"int8": dict(quantize="int8"), "bf16": dict(dtype="bf16"), "fp16": dict(dtype="fp16")}  # --also
NOT_INSTALLED = "not installed"


@dataclass
class Line:
    file: Path
    text: str  # ground truth
    image: Image.Image  # RGB


@dataclass
class Reader:
    """One system's predictions per variant ("plain", "inverted", "colour") and its timings."""

    name: str
    predictions: dict[str, list[str]] = field(default_factory=dict)
    timings: dict[tuple[int, int], float] = field(default_factory=dict)  # (threads, batch) -> median s per line
    note: str = ""  # why figures are missing (tesseract not installed), or what they include
    failures: int = 0  # lines the reader could not read at all
    batch_differences: int | None = None  # timed lines whose batched text differs from their batch-1 text


# --- figures ---------------------------------------------------------------------------------------------------------


def error_rates(predictions: list[str], references: list[str]) -> dict[str, float]:
    """Corpus CER and WER, as ved train reports them."""
    from vedcli.training.metrics import cer, wer

    return {"cer": cer(predictions, references), "wer": wer(predictions, references)}


def buckets(references: list[str], short: int, long: int) -> dict[str, list[int]]:
    """Line indices by reference length: all lines, short ones (<= `short` chars), long ones (>= `long` chars)."""
    return {
        "all": list(range(len(references))),
        f"short (<= {short} chars)": [i for i, r in enumerate(references) if len(r) <= short],
        f"long (>= {long} chars)": [i for i, r in enumerate(references) if len(r) >= long],
    }


def quality(reader: Reader, references: list[str], groups: dict[str, list[int]]) -> dict[str, dict[str, float]]:
    """Error rates per bucket of plain lines, and on all lines of each variant that was read."""
    plain = reader.predictions.get("plain")
    out: dict[str, dict[str, float]] = {}
    if plain is None:
        return out
    for name, indices in groups.items():
        if not indices:
            continue
        out[name] = {
            **error_rates([plain[i] for i in indices], [references[i] for i in indices]),
            "lines": len(indices),
        }
    for variant in VARIANTS:
        if variant in reader.predictions:
            out[variant] = {**error_rates(reader.predictions[variant], references), "lines": len(references)}
    return out


# --- variants --------------------------------------------------------------------------------------------------------


def inverted(image: Image.Image) -> Image.Image:
    return ImageOps.invert(image.convert("RGB"))


def coloured(image: Image.Image, seed: int) -> Image.Image:
    """Dark coloured ink on a light coloured background, lit unevenly from one side (seeded per line)."""
    rng = random.Random(seed)
    ink = tuple(rng.randint(0, 90) for _ in range(3))
    paper = tuple(rng.randint(170, 255) for _ in range(3))
    gray = ImageOps.autocontrast(image.convert("L"))
    tinted = ImageOps.colorize(gray, black=ink, white=paper)
    light = Image.linear_gradient("L").rotate(rng.choice((90, -90)), expand=True).resize(tinted.size)
    light = light.point(lambda v: 150 + v * 105 // 255).convert("RGB")  # 59% of the light on the dark side
    return ImageChops.multiply(tinted, light)


def variant_images(lines: list[Line], variant: str) -> list[Image.Image]:
    if variant == "plain":
        return [line.image for line in lines]
    if variant == "inverted":
        return [inverted(line.image) for line in lines]
    return [coloured(line.image, seed=i) for i, line in enumerate(lines)]


# --- ved -------------------------------------------------------------------------------------------------------------


def run_ved(args: argparse.Namespace, lines: list[Line], variants: list[str], setting: str | None = None) -> Reader:
    """ved's column; `setting` (a key of SETTINGS, from --also) loads the model that other way for another column."""
    import torch

    from vedcli.generation.decoding import DecodingOptions
    from vedcli.generation.pipeline import Pipeline

    load = dict(dtype=args.dtype) if setting is None else SETTINGS[setting]
    pipeline = Pipeline.load(args.model, device=args.device, **load)
    greedy = DecodingOptions(num_beams=1, do_sample=False)
    reader = Reader(f"ved{' ' + setting if setting else ''}: {args.model}")

    def read(images: list[Image.Image], batch: int) -> tuple[list[str], list[float]]:
        texts, per_line = [], []
        pipeline.run(images[:1], greedy)  # warm-up: first-call allocations are not part of the figure
        for start in range(0, len(images), batch):
            chunk = images[start : start + batch]
            began = time.perf_counter()
            results = pipeline.run(chunk, greedy)
            per_line.append((time.perf_counter() - began) / len(chunk))
            texts.extend(r[0].text for r in results)
        return texts, per_line

    timed = [line.image for line in lines[: args.timing_lines]]  # timing_lines None: all
    one_by_one = None  # the timed lines' texts read one at a time
    for threads in args.threads:
        torch.set_num_threads(threads)
        for batch in args.batch_sizes:
            if timed:
                texts, per_line = read(timed, batch)
                one_by_one = texts if batch == 1 else one_by_one
                reader.timings[(threads, batch)] = statistics.median(per_line)
                say(f"ved: {threads} thread(s), batch {batch}: {reader.timings[(threads, batch)]:.4f} s/line")
    # Quality at the fastest setting: the most threads and the largest batch.
    torch.set_num_threads(max(args.threads))
    for variant in ["plain", *variants]:
        reader.predictions[variant], _ = read(variant_images(lines, variant), max(args.batch_sizes))
        say(f"ved: read {len(lines)} {variant} lines")
    if one_by_one is not None:  # batching must not change what is read (padding, masks)
        plain = reader.predictions["plain"][: len(one_by_one)]  # --timing-lines may time the first lines only
        reader.batch_differences = sum(a != b for a, b in zip(one_by_one, plain, strict=True))
    return reader


# --- tesseract -------------------------------------------------------------------------------------------------------


def tesseract_version(command: str) -> str | None:
    """ "tesseract 5.3.0", or None when `command` cannot be run."""
    path = shutil.which(command)
    if path is None:
        return None
    try:
        done = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30)
    except OSError:
        return None
    first = (done.stdout or done.stderr).strip().splitlines()
    return first[0] if first else "tesseract"


def run_tesseract(args: argparse.Namespace, lines: list[Line], variants: list[str]) -> Reader:
    version = tesseract_version(args.tesseract) if args.tesseract else None
    if version is None:
        why = "not asked for" if not args.tesseract else NOT_INSTALLED
        return Reader("tesseract", note=why)
    reader = Reader(f"{version} (--psm 7)", note="one process per line, OMP_THREAD_LIMIT=1")
    env = {**os.environ, "OMP_THREAD_LIMIT": "1"}
    with tempfile.TemporaryDirectory() as scratch:
        for variant in ["plain", *variants]:
            texts, seconds = [], []
            images = variant_images(lines, variant)
            for i, image in enumerate(images):
                path = Path(scratch) / f"{i}.png"
                image.save(path)  # PNG for every variant: tesseract reads the same pixels ved does
                began = time.perf_counter()
                try:
                    done = subprocess.run(
                        [shutil.which(args.tesseract), str(path), "-", "--psm", "7"],
                        capture_output=True,
                        timeout=60,
                        env=env,
                    )
                    ok = done.returncode == 0
                except (OSError, subprocess.TimeoutExpired):
                    ok = False
                seconds.append(time.perf_counter() - began)
                if not ok:
                    reader.failures += 1
                texts.append(" ".join(done.stdout.decode("utf-8", "replace").split()) if ok else "")
            reader.predictions[variant] = texts
            if variant == "plain":
                reader.timings[(1, 1)] = statistics.median(seconds)
            say(f"tesseract: read {len(lines)} {variant} lines")
    return reader


# --- report ----------------------------------------------------------------------------------------------------------


def percent(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.2f}%"


def table(readers: list[Reader], scores: list[dict], groups: dict[str, list[int]], args: argparse.Namespace) -> str:
    """The markdown table: one column per reader, rows for error rates then speed."""
    head = "| | " + " | ".join(r.name for r in readers) + " |"
    rows = [head, "| --- |" + " ---: |" * len(readers)]

    def cell(reader: Reader, value: str) -> str:
        return reader.note if reader.note in (NOT_INSTALLED, "not asked for") else value

    for name, indices in groups.items():
        for metric in ("cer", "wer") if name == "all" else ("cer",):
            label = f"{metric.upper()}, {name}: {len(indices)} lines"
            rows.append(
                f"| {label} | "
                + " | ".join(
                    cell(r, percent(s.get(name, {}).get(metric))) for r, s in zip(readers, scores, strict=True)
                )
                + " |"
            )
    labels = {"inverted": "CER, inverted (white on black)", "colour": "CER, colour (tinted, uneven light)"}
    for variant in VARIANTS if args.variants else ():
        rows.append(
            f"| {labels[variant]}: {len(groups['all'])} lines | "
            + " | ".join(cell(r, percent(s.get(variant, {}).get("cer"))) for r, s in zip(readers, scores, strict=True))
            + " |"
        )
    for threads in args.threads:
        for batch in args.batch_sizes:
            label = f"s/line, {threads} thread{'s' * (threads > 1)}, batch {batch} (median)"
            values = [
                cell(r, f"{r.timings[(threads, batch)]:.4f}" if (threads, batch) in r.timings else "—") for r in readers
            ]
            rows.append(f"| {label} | " + " | ".join(values) + " |")
    return "\n".join(rows)


def worst_lines(reader: Reader, lines: list[Line], count: int) -> list[str]:
    from vedcli.training.metrics import edit_distance

    plain = reader.predictions.get("plain", [])
    scored = sorted(
        ((edit_distance(p, line.text), line.file.name, line.text, p) for p, line in zip(plain, lines, strict=True)),
        key=lambda item: -item[0],
    )
    return [
        f"- {name}: {errors} errors\n  truth: {truth!r}\n  read:  {read!r}"
        for errors, name, truth, read in scored[:count]
        if errors
    ]


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- main ------------------------------------------------------------------------------------------------------------


def load_lines(data: str, limit: int | None) -> list[Line]:
    """The usable lines of a data folder (bad rows and unreadable images are named on stderr and left out)."""
    from vedcli.errors import InputError
    from vedcli.processing.image import open_image
    from vedcli.training.data import read_examples

    examples, bad = read_examples(data, check_images=False)
    for row in bad:
        say(f"{data}: skipped {row}")
    lines = []
    for example in examples[:limit] if limit is not None else examples:
        try:
            lines.append(Line(example.image, example.text, open_image(example.image)))
        except InputError as error:
            say(f"skipped: {error}")
    return lines


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--model", default="printed", help="built-in name, hub id or folder (default: printed)")
    p.add_argument(
        "--data", default=str(DEFAULT_DATA), help="folder of lines with metadata.jsonl (default: %(default)s)"
    )
    p.add_argument("--limit", type=int, default=None, help="use the first N lines only")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="torch thread counts to time (default: 1 2)")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 16], help="batch sizes to time (default: 1 16)")
    p.add_argument(
        "--timing-lines", type=int, default=None, help="time on the first N lines only (default: all; 0: no timing)"
    )
    p.add_argument("--no-variants", dest="variants", action="store_false", help="skip the inverted and colour variants")
    p.add_argument("--tesseract", default="tesseract", help="tesseract command (default: tesseract; '' to skip)")
    p.add_argument("--short", type=int, default=15, help="short lines have at most this many characters (default: 15)")
    p.add_argument("--long", type=int, default=60, help="long lines have at least this many characters (default: 60)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    p.add_argument("--dtype", default=None, help="fp32, fp16 or bf16 (default: fp32)")
    p.add_argument("--also", nargs="*", default=[], choices=sorted(SETTINGS),
                   help="more ved columns: the same model quantized to int8, or computing in bf16 / fp16")  # fmt: skip
    p.add_argument("--worst", type=int, default=5, help="list the N worst-read lines after the table (default: 5)")
    p.add_argument("--json", default=None, help="also write every figure and prediction to this file")
    args = p.parse_args(argv)
    for name in ("threads", "batch_sizes"):
        if any(v < 1 for v in getattr(args, name)):
            p.error(f"--{name.replace('_', '-')} values must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from vedcli.errors import VedError

    try:
        lines = load_lines(args.data, args.limit)
        if not lines:
            raise VedError("no usable lines", where=args.data)
        variants = list(VARIANTS) if args.variants else []
        ved = run_ved(args, lines, variants)
        others = [run_ved(args, lines, variants, setting) for setting in args.also]
    except VedError as error:
        print(f"Error: {error}", file=sys.stderr)
        return 2
    tess = run_tesseract(args, lines, variants)
    readers = [ved, *others, tess]
    references = [line.text for line in lines]
    groups = buckets(references, args.short, args.long)
    scores = [quality(r, references, groups) for r in readers]
    print(f"{len(lines)} lines from {args.data}; greedy decoding; {os.cpu_count()} CPUs\n")
    print(table(readers, scores, groups, args))
    print("\nved's s/line: preprocessing, model and text of images decoded beforehand, torch threads as shown.")
    if tess.timings:
        print("tesseract's s/line: one process per line with OMP_THREAD_LIMIT=1, start-up and file reading included.")
    if ved.batch_differences is not None:
        timed = min(len(lines), args.timing_lines if args.timing_lines is not None else len(lines))
        print(
            f"ved's texts at batch {max(args.batch_sizes)} differ from batch 1 on {ved.batch_differences} of "
            f"{timed} lines."
        )
    if tess.failures:
        print(f"\ntesseract failed on {tess.failures} line reads (counted as empty output)")
    worst = worst_lines(ved, lines, args.worst)
    if worst:
        print(f"\nworst lines read by ved ({args.model}):")
        print("\n".join(worst))
    if args.json:
        report = {
            "model": args.model,
            "data": str(args.data),
            "lines": len(lines),
            "readers": [
                {
                    "name": r.name,
                    "note": r.note,
                    "quality": s,
                    "failures": r.failures,
                    "seconds_per_line": [{"threads": t, "batch": b, "median": v} for (t, b), v in r.timings.items()],
                }
                for r, s in zip(readers, scores, strict=True)
            ],
            "batch_differences": ved.batch_differences,
            "predictions": [
                {
                    "file": line.file.name,
                    "text": line.text,
                    **{
                        f"{key}:{variant}": preds[i]
                        for key, r in [(r.name.split(":")[0], r) for r in readers[:-1]] + [("tesseract", tess)]
                        for variant, preds in r.predictions.items()
                    },
                }
                for i, line in enumerate(lines)
            ],
        }
        Path(args.json).write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
