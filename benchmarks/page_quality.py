"""Page OCR quality and speed: `ved ocr`'s page path (line finding, then the reader) beside tesseract, on the same
pages with the same threads, in one run.

    .venv/bin/python benchmarks/page_quality.py                          # the built-in reader, 12 synthetic pages
    .venv/bin/python benchmarks/page_quality.py --model run/best --pages 40 --seed 11 --json out/pq.json

The pages, each with its true lines (text and box):

- synthetic: recipes/pages/make_pages.py (seed `--seed`, `--pages` of them, or read from `--data`): 1-3 columns,
  headings, small print, rules, pictures, inverted blocks; half scanned (grey or binarised, light skew), half
  photographed (skew up to 10 degrees, perspective, curl, uneven light and shadow, dark margins, blur, noise, JPEG).
  Reported by kind;
- real scans: the real scanned lines of `--lines` (UW3, ../shared/data/uw3-dev) set one under another into pages
  (`--lines-per-page`), where that folder exists;
- real photo: scikit-image's photographed page (`skimage/data/page.png`), its 7 whole lines transcribed by hand
  (the line the photo cuts off at the bottom is not counted), where scikit-image is installed.

Figures per set and system: page CER and WER (vedcli.training.metrics, corpus-level over the pages) of the whole
page's text in reading order, whitespace collapsed to single spaces; line-finding recall (a true line is found when
a found line's axis-aligned box in the image overlaps the box round its corners with IoU >= 0.5, one to one: the
same test for both systems, as tesseract gives axis-aligned boxes); seconds per page (the median).

- ved: `vedcli.commands.pages.read_pages`, the code `ved ocr --layout page` runs: lines found, cut out straight,
  read greedily in batches of `--batch-size` lines of similar shape; torch with `--threads` threads; timed from the
  decoded image to the page's text. When the reader is not installed (the built-in `printed` is still training) its
  CER and WER say so, and the line finding is still measured and timed (seconds: line finding alone).
- tesseract (`tesseract IMAGE stdout hocr`, its default page segmentation, OMP_THREAD_LIMIT=`--threads`): one
  process per page as a script would call it; its time includes start-up and reading the file. Text and line boxes
  come from its hOCR.

`--json FILE` also writes every page's texts and figures; `--debug DIR` writes ved's layout drawing of each page.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from PIL import Image, ImageChops

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_LINES = ROOT.parent / "shared" / "data" / "uw3-dev"
NOT_INSTALLED = "not installed"

# scikit-image's page.png (384 x 191): its whole lines, transcribed and boxed by hand (image pixels)
SKIMAGE_PAGE = [
    ("Region-based segmentation", (6, 13, 292, 34)),
    ("Let us first determine markers of the coins and the", (5, 50, 377, 63)),
    ("background. These markers are pixels that we can label", (5, 67, 377, 83)),
    ("unambiguously as either object or background. Here,", (5, 85, 377, 100)),
    ("the markers are found at the two extreme parts of the", (6, 101, 377, 118)),
    ("histogram of grey values:", (7, 118, 171, 134)),
    (">>> markers = np.zeros_like(coins)", (19, 168, 240, 189)),
]


@dataclass
class Page:
    name: str
    kind: str  # the set it belongs to, and for synthetic pages "synthetic, scan" / "synthetic, photo"
    image: Image.Image
    texts: list[str]  # true lines in reading order
    boxes: np.ndarray  # (n, 4) their boxes in the image, x0 y0 x1 y1

    @property
    def text(self) -> str:
        return collapse(" ".join(self.texts))


@dataclass
class Read:
    """What one system made of one page."""

    text: str | None  # None: no reader
    boxes: np.ndarray
    seconds: float


@dataclass
class System:
    name: str
    reads: dict[str, Read] = field(default_factory=dict)  # by page name
    note: str = ""  # why figures are missing


def collapse(text: str) -> str:
    return " ".join(text.split())


# --- pages -----------------------------------------------------------------------------------------------------------


def synthetic_pages(seed: int, count: int, data: str | None = None) -> list[Page]:
    """`count` pages of make_pages.py drawn with `seed`, or those it wrote to `data` (PNG + JSON)."""
    if data:
        made = [(png.stem, Image.open(png), json.loads(png.with_suffix(".json").read_text()))
                for png in sorted(Path(data).glob("*.png"))[:count]]  # fmt: skip
    else:
        sys.path.insert(0, str(ROOT / "recipes" / "pages"))
        from make_pages import available_fonts, load_paragraphs, make_page

        paragraphs = load_paragraphs(ROOT / "out" / "pages-corpus.json")
        fonts = available_fonts()
        made = [(f"{seed}-{i:04d}", *make_page(seed * 100003 + i, paragraphs, fonts)) for i in range(count)]
    pages = []
    for name, image, truth in made:
        image.load()
        quads = np.array([line["quad"] for line in truth["lines"]], dtype=np.float64).reshape(-1, 4, 2)
        boxes = np.concatenate([quads.min(axis=1), quads.max(axis=1)], axis=1)
        texts = [line["text"] for line in truth["lines"]]
        pages.append(Page(f"synthetic-{name}", f"synthetic, {truth['kind']}", image, texts, boxes))
    return pages


def line_pages(folder: Path, per_page: int) -> list[Page]:
    """Real scanned lines (an imagefolder with metadata.jsonl) set one under another on white pages, in file order."""
    rows = [json.loads(row) for row in (folder / "metadata.jsonl").read_text().splitlines() if row.strip()]
    rows.sort(key=lambda r: r["file_name"])
    pages = []
    for start in range(0, len(rows), per_page):
        chunk = rows[start : start + per_page]
        lines = [Image.open(folder / r["file_name"]).convert("L") for r in chunk]
        height = int(np.median([im.height for im in lines]))
        margin, gap = 2 * height, height // 2
        size = (max(im.width for im in lines) + 2 * margin, 2 * margin + sum(im.height + gap for im in lines))
        canvas = Image.new("L", size, 255)
        boxes, y = [], margin
        for im in lines:
            region = (margin, y, margin + im.width, y + im.height)
            canvas.paste(ImageChops.darker(canvas.crop(region), im), region[:2])
            ink = np.argwhere(np.asarray(im) < 128)
            if ink.size:
                (r0, c0), (r1, c1) = ink.min(axis=0), ink.max(axis=0) + 1
                boxes.append((margin + c0, y + r0, margin + c1, y + r1))
            else:
                boxes.append(region)
            y += im.height + gap
        texts = [r["text"] for r in chunk]
        name = f"lines-{start // per_page:02d}"
        pages.append(Page(name, "real scans (lines set as pages)", canvas, texts, np.array(boxes, dtype=np.float64)))
    return pages


def skimage_page() -> list[Page]:
    try:
        import skimage
    except ImportError:
        return []
    path = Path(skimage.__file__).parent / "data" / "page.png"
    if not path.exists():
        return []
    image = Image.open(path)
    image.load()
    texts = [t for t, _ in SKIMAGE_PAGE]
    boxes = np.array([b for _, b in SKIMAGE_PAGE], dtype=np.float64)
    return [Page("skimage-page", "real photo (skimage page.png)", image, texts, boxes)]


# --- scores ----------------------------------------------------------------------------------------------------------


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ix = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    iy = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = ix * iy
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def lines_found(found: np.ndarray, true: np.ndarray, threshold: float = 0.5) -> int:
    """True lines matched one to one (greedily by IoU) by found boxes."""
    if len(found) == 0 or len(true) == 0:
        return 0
    m = iou(found, true)
    used_f, used_t = set(), set()
    for flat in np.argsort(-m, axis=None):
        f, t = divmod(int(flat), m.shape[1])
        if m[f, t] < threshold:
            break
        if f not in used_f and t not in used_t:
            used_f.add(f)
            used_t.add(t)
    return len(used_t)


def figures(system: System, pages: list[Page]) -> dict:
    from vedcli.training.metrics import cer, wer

    reads = [system.reads[p.name] for p in pages if p.name in system.reads]
    if not reads:
        return {}
    out = {
        "pages": len(reads),
        "lines": sum(len(p.texts) for p in pages),
        "recall": sum(lines_found(system.reads[p.name].boxes, p.boxes) for p in pages)
        / max(1, sum(len(p.texts) for p in pages)),
        "seconds_per_page": statistics.median(r.seconds for r in reads),
    }
    if all(r.text is not None for r in reads):
        predictions = [system.reads[p.name].text for p in pages]
        references = [p.text for p in pages]
        out["cer"], out["wer"] = cer(predictions, references), wer(predictions, references)
    return out


# --- ved -------------------------------------------------------------------------------------------------------------


def run_ved(args: argparse.Namespace, pages: list[Page]) -> System:
    import torch

    from vedcli.commands.pages import read_pages
    from vedcli.errors import VedError
    from vedcli.generation.options import DecodingOptions
    from vedcli.ocr import draw_layout, find_lines

    torch.set_num_threads(args.threads)
    system = System(f"ved ({args.model})")
    pipeline = None
    try:
        from vedcli.generation.pipeline import Pipeline

        pipeline = Pipeline.load(args.model, device=args.device, dtype=args.dtype)
    except VedError as error:
        system.name = f"ved: line finding only ({args.model}: {NOT_INSTALLED})"
        system.note = NOT_INSTALLED
        say(f"ved: no reader: {error}")
    greedy = DecodingOptions(num_beams=1, do_sample=False, max_new_tokens=args.max_new_tokens)
    if pipeline is not None:  # warm-up: first-call allocations are not part of the figure
        pipeline.run([pages[0].image.convert("RGB").crop((0, 0, 64, 16))], greedy)
    for page in pages:
        image = page.image.convert("RGB")  # as `ved ocr` decodes it (open_image)
        began = time.perf_counter()
        if pipeline is None:
            layout = find_lines(image)
            text = None
        else:
            item = SimpleNamespace(path=page.name)
            read = next(read_pages([(item, image)], pipeline, greedy, "page", args.batch_size, None))
            layout = read.layout
            text = collapse(" ".join(h.text for h in read.hypotheses))
        seconds = time.perf_counter() - began
        boxes = np.array([line.box for line in layout.lines], dtype=np.float64).reshape(-1, 4)
        system.reads[page.name] = Read(text, boxes, seconds)
        if args.debug:
            Path(args.debug).mkdir(parents=True, exist_ok=True)
            draw_layout(image, layout).save(Path(args.debug) / f"{page.name}.png")
        say(f"ved: {page.name}: {len(layout.lines)} lines, {seconds:.2f} s")
    return system


# --- tesseract -------------------------------------------------------------------------------------------------------


def tesseract_version(command: str) -> str | None:
    path = shutil.which(command) if command else None
    if path is None:
        return None
    try:
        done = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30)
    except OSError:
        return None
    first = (done.stdout or done.stderr).strip().splitlines()
    return first[0] if first else "tesseract"


BBOX = re.compile(r"bbox (\d+) (\d+) (\d+) (\d+)")


def parse_hocr(hocr: str) -> tuple[str, np.ndarray]:
    """The text (words in tesseract's order) and the line boxes of a tesseract hOCR page."""
    root = ET.fromstring(re.sub(r"<!DOCTYPE[^>]*>", "", hocr, flags=re.S))
    words, boxes = [], []
    for el in root.iter():
        cls = el.get("class", "")
        if cls in ("ocr_line", "ocr_caption", "ocr_header", "ocr_textfloat"):
            found = BBOX.search(el.get("title", ""))
            if found:
                boxes.append([float(v) for v in found.groups()])
        elif cls == "ocrx_word":
            words.append("".join(el.itertext()))
    return collapse(" ".join(words)), np.array(boxes, dtype=np.float64).reshape(-1, 4)


def run_tesseract(args: argparse.Namespace, pages: list[Page]) -> System:
    version = tesseract_version(args.tesseract)
    if version is None:
        return System("tesseract", note=NOT_INSTALLED if args.tesseract else "not asked for")
    system = System(f"{version} (default page mode)")
    env = {**os.environ, "OMP_THREAD_LIMIT": str(args.threads)}
    with tempfile.TemporaryDirectory() as scratch:
        for page in pages:
            path = Path(scratch) / f"{page.name}.png"
            page.image.save(path)  # PNG: tesseract reads the same pixels ved does
            began = time.perf_counter()
            try:
                done = subprocess.run(
                    [shutil.which(args.tesseract), str(path), "stdout", "hocr"],
                    capture_output=True,
                    timeout=600,
                    env=env,
                )
                ok = done.returncode == 0
            except (OSError, subprocess.TimeoutExpired):
                ok = False
            seconds = time.perf_counter() - began
            text, boxes = parse_hocr(done.stdout.decode("utf-8", "replace")) if ok else ("", np.zeros((0, 4)))
            system.reads[page.name] = Read(text, boxes, seconds)
            say(f"tesseract: {page.name}: {len(boxes)} lines, {seconds:.2f} s")
    return system


# --- report ----------------------------------------------------------------------------------------------------------


def percent(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}%"


def table(systems: list[System], groups: dict[str, list[Page]]) -> str:
    rows = ["| pages | n (lines) | system | page CER | page WER | line recall | s/page |"]
    rows.append("| --- | --- | --- | ---: | ---: | ---: | ---: |")
    for group, pages in groups.items():
        lines = sum(len(p.texts) for p in pages)
        for system in systems:
            if system.note and not system.reads:
                rows.append(f"| {group} | {len(pages)} ({lines}) | {system.name} | {system.note} | | | |")
                continue
            fig = figures(system, pages)
            cer_ = percent(fig.get("cer")) if "cer" in fig else system.note or "—"
            wer_ = percent(fig.get("wer")) if "wer" in fig else system.note or "—"
            rows.append(
                f"| {group} | {len(pages)} ({lines}) | {system.name} | {cer_} | {wer_} | {percent(fig.get('recall'))} |"
                f" {fig.get('seconds_per_page', float('nan')):.2f} |"
            )
    return "\n".join(rows)


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--model", default="printed", help="built-in name, hub id or folder (default: printed)")
    p.add_argument("--pages", type=int, default=12, help="synthetic pages (default: 12; 0: none)")
    p.add_argument("--seed", type=int, default=3, help="seed of the synthetic pages (default: 3)")
    p.add_argument("--data", default=None, help="take the synthetic pages from this make_pages.py folder instead")
    p.add_argument("--max-new-tokens", type=int, default=None, help="cap each line's text (default: the model's)")
    p.add_argument("--lines", default=str(DEFAULT_LINES), help="real scanned lines to set as pages ('' to skip)")
    p.add_argument("--lines-per-page", type=int, default=32, help="lines set on each such page (default: 32)")
    p.add_argument("--no-photo", dest="photo", action="store_false", help="leave scikit-image's page out")
    p.add_argument("--threads", type=int, default=2, help="threads for both systems (default: 2)")
    p.add_argument("--batch-size", type=int, default=16, help="ved's lines per batch (default: 16)")
    p.add_argument("--tesseract", default="tesseract", help="tesseract command (default: tesseract; '' to skip)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    p.add_argument("--dtype", default=None, help="fp32, fp16 or bf16 (default: fp32)")
    p.add_argument("--debug", default=None, help="write ved's layout drawing of every page to this folder")
    p.add_argument("--json", default=None, help="also write every figure and page text to this file")
    args = p.parse_args(argv)
    if args.threads < 1 or args.batch_size < 1 or args.lines_per_page < 1 or args.pages < 0:
        p.error("--threads, --batch-size and --lines-per-page must be at least 1, --pages at least 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sys.path.insert(0, str(ROOT))
    pages: list[Page] = []
    if args.pages:
        pages += synthetic_pages(args.seed, args.pages, args.data)
    if args.lines and (Path(args.lines) / "metadata.jsonl").exists():
        pages += line_pages(Path(args.lines), args.lines_per_page)
    elif args.lines:
        say(f"no real scanned lines at {args.lines}: that set is left out")
    pages += skimage_page() if args.photo else []
    if not pages:
        print("Error: no pages to measure (--pages 0, no lines folder, no scikit-image)", file=sys.stderr)
        return 2
    groups: dict[str, list[Page]] = {}
    for page in pages:
        groups.setdefault(page.kind.split(",")[0], []).append(page)
        if "," in page.kind:
            groups.setdefault(page.kind, []).append(page)
    systems = [run_ved(args, pages), run_tesseract(args, pages)]
    print(
        f"{len(pages)} pages; {args.threads} thread(s) each; greedy decoding, batch {args.batch_size}; "
        f"{os.cpu_count()} CPUs\n"
    )
    print(table(systems, dict(sorted(groups.items()))))
    print(
        "\nPage CER/WER: the whole page's text in reading order, whitespace collapsed. Line recall: IoU >= 0.5 of "
        "axis-aligned boxes in the image.\nved's s/page: from the decoded image to the page's text (line finding "
        "alone when no reader); tesseract's: one process per page, start-up and file reading included."
    )
    if args.json:
        report = {
            "model": args.model,
            "threads": args.threads,
            "systems": [
                {"name": s.name, "note": s.note, "figures": {g: figures(s, ps) for g, ps in groups.items()}}
                for s in systems
            ],
            "pages": [
                {
                    "name": p.name,
                    "kind": p.kind,
                    "text": p.text,
                    **{s.name: (s.reads[p.name].text, s.reads[p.name].seconds) for s in systems if p.name in s.reads},
                }
                for p in pages
            ],
        }
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
