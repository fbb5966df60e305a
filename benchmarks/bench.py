"""Speed and memory of ved against the reference (transformers) and ONNX Runtime, side by side, in one run.

    make bench                                                 # the six workloads, CPU fp32, batch 8
    .venv/bin/python benchmarks/bench.py --quick               # tiny shapes, seconds: a smoke test (the suite runs it)
    .venv/bin/python benchmarks/bench.py --workloads trocr-small:1 trocr-small:4 --variants int8 bf16 --json out/b.jsonl
    .venv/bin/python benchmarks/bench.py --table out/b.jsonl   # the table of earlier runs, merged

Each workload is a checkpoint with the real shapes of a published model and random weights, written here by
transformers (the hub cannot be reached from the machines ved is built on) into --cache, then loaded by ved and by the
reference in this process. Every generated sequence has exactly its `new tokens` (min = max), so both do the same work.
Runs alternate between the two (ref, ved, ved, ref, ...) and each figure is the median of --repeats. Beside them:

- the machine's matmul peak, measured (fp32 and bf16 GFLOP/s of a square matmul), and the FLOPs one image takes,
  counted by torch's FlopCounterMode on ved's run (attention included), so `% of floor` = (FLOPs / peak) / time;
- the memory read bandwidth, measured (GB/s of a sum over 1 GB), and a floor that counts what decoding at a small
  batch is bound by: the encoder's FLOPs at the matmul peak plus the bytes decoding must read (every decoder weight
  once per step for the whole batch, each image's cross-attention keys and values once per step) at that bandwidth;
- peak RSS of each, each measured in a fresh process that loads the model and generates once (VmHWM);
- whether the ids are identical to the reference's;
- ONNX Runtime: optimum's export of the same checkpoint, run by optimum's ORTModelForVision2Seq in a child process.
  optimum-onnx needs transformers < 4.58, so it lives apart from the venv (`make bench-onnx-deps` installs it into
  out/onnx-deps); without it the column says "not installed";
- --variants: ved's opt-in fast paths (int8, bf16, fp16, auto), each with its time and how many generated
  tokens agree with ved fp32's, position by position.

Nothing here is a pass/fail test: the ratios are read, in one run, on one machine. Timings on a busy machine are worth
little: the load average before the run is printed with the table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ONNX_DEPS = ROOT / "out" / "onnx-deps"

# name -> (encoder class and fields, (decoder kind, fields)): the shapes of the published models
SHAPES = {
    # nlpconnect/vit-gpt2-image-captioning: ViT-base/16 at 224 + GPT-2 small
    "vit-gpt2": (
        ("vit", dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072)),
        ("gpt2", dict(n_embd=768, n_layer=12, n_head=12, vocab_size=50257, n_positions=1024)),
    ),
    # microsoft/trocr-small-printed: DeiT-small/16 at 384 + TrOCR decoder (256 wide, 6 layers, sinusoidal positions)
    "trocr-small": (
        (
            "deit",
            dict(hidden_size=384, num_hidden_layers=12, num_attention_heads=6, intermediate_size=1536, image_size=384),
        ),  # fmt: skip
        (
            "trocr",
            dict(
                d_model=256,
                decoder_layers=6,
                decoder_attention_heads=8,
                decoder_ffn_dim=1024,
                vocab_size=64044,
                cross_attention_hidden_size=384,
                use_learned_position_embeddings=False,
            ),
        ),
    ),  # fmt: skip
    # microsoft/trocr-base-printed: ViT-base/16 at 384 + TrOCR decoder (1024 wide, 12 layers)
    "trocr-base": (
        (
            "vit",
            dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072, image_size=384),
        ),  # fmt: skip
        (
            "trocr",
            dict(
                d_model=1024,
                decoder_layers=12,
                decoder_attention_heads=16,
                decoder_ffn_dim=4096,
                vocab_size=50265,
                cross_attention_hidden_size=768,
                scale_embedding=False,
            ),
        ),
    ),  # fmt: skip
    # --quick: the same kinds of parts, tiny
    "tiny-gpt2": (
        (
            "vit",
            dict(
                hidden_size=32,
                num_hidden_layers=2,
                num_attention_heads=2,
                intermediate_size=64,
                image_size=32,
                patch_size=8,
            ),
        ),  # fmt: skip
        ("gpt2", dict(n_embd=32, n_layer=2, n_head=2, vocab_size=300, n_positions=64)),
    ),
    "tiny-trocr": (
        (
            "deit",
            dict(
                hidden_size=32,
                num_hidden_layers=2,
                num_attention_heads=2,
                intermediate_size=64,
                image_size=32,
                patch_size=8,
            ),
        ),  # fmt: skip
        (
            "trocr",
            dict(
                d_model=48,
                decoder_layers=2,
                decoder_attention_heads=4,
                decoder_ffn_dim=64,
                vocab_size=300,
                cross_attention_hidden_size=32,
                use_learned_position_embeddings=False,
            ),
        ),
    ),  # fmt: skip
}
SHOWN_AS = {
    "vit-gpt2": "nlpconnect/vit-gpt2-image-captioning",
    "trocr-small": "microsoft/trocr-small-printed",
    "trocr-base": "microsoft/trocr-base-printed",
}
NEW_TOKENS = {"vit-gpt2": 16, "trocr-small": 24, "trocr-base": 24}  # as the table; tiny shapes: 4
WORKLOADS = ["vit-gpt2:1", "vit-gpt2:4", "trocr-small:1", "trocr-small:4", "trocr-base:1", "trocr-base:4"]
QUICK = ["tiny-gpt2:1", "tiny-trocr:4"]
VARIANTS = {  # name -> load_model / generate settings of ved's opt-in paths
    "int8": dict(quantize="int8"),
    "bf16": dict(dtype="bf16"),
    "fp16": dict(dtype="fp16"),
    "auto": dict(dtype="auto"),
}


@dataclass
class Workload:
    model: str
    beams: int
    new_tokens: int

    @classmethod
    def parse(cls, text: str) -> Workload:
        model, _, beams = text.partition(":")
        if model not in SHAPES:
            raise SystemExit(f"unknown model shape {model!r} (known: {', '.join(SHAPES)})")
        return cls(model, int(beams or 1), NEW_TOKENS.get(model, 4))

    @property
    def name(self) -> str:
        return f"{self.model}:{self.beams}"

    def generate_kwargs(self) -> dict:
        return dict(num_beams=self.beams, max_new_tokens=self.new_tokens, min_new_tokens=self.new_tokens)


# ------------------------------------------------------------------------------------------------ checkpoints


def checkpoint(model: str, cache: Path) -> Path:
    """The folder of a random checkpoint with `model`'s shapes, written by transformers once and kept in `cache`."""
    folder = cache / model
    if (folder / ".complete").exists():
        return folder
    import torch
    import transformers as T

    (enc_kind, enc_kw), (dec_kind, dec_kw) = SHAPES[model]
    enc = (T.DeiTConfig if enc_kind == "deit" else T.ViTConfig)(**enc_kw)
    common = dict(is_decoder=True, add_cross_attention=True, pad_token_id=1, bos_token_id=0, eos_token_id=2)
    dec = T.GPT2Config(**dec_kw, **common) if dec_kind == "gpt2" else T.TrOCRConfig(**dec_kw, **common)
    cfg = T.VisionEncoderDecoderConfig.from_encoder_decoder_configs(enc, dec)
    cfg.decoder_start_token_id, cfg.pad_token_id, cfg.eos_token_id = 2, 1, 2
    torch.manual_seed(0)
    T.VisionEncoderDecoderModel(cfg).save_pretrained(folder)
    (folder / ".complete").touch()
    return folder


def pixels(model_folder: Path, batch: int):
    import torch

    cfg = json.loads((model_folder / "config.json").read_text())["encoder"]
    size = cfg.get("image_size", 224)
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(0))


def load_ved(folder: Path, variant: dict | None = None):
    from vedcli.checkpoints.load import load_model

    return load_model(folder, **(variant or {}))


def load_reference(folder: Path):
    sys.path.insert(0, str(ROOT / "tests"))
    from support.checkpoints import reference  # transformers, with its TrOCR loading bug worked around

    return reference(folder)


# ------------------------------------------------------------------------------------------------ measuring


def matmul_peak(dtype_name: str, n: int, seconds: float) -> float:
    """GFLOP/s of an n x n x n matmul in `dtype_name`, the best of repeated timings over about `seconds`."""
    import torch

    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype_name]
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    torch.mm(a, b)
    best, spent = float("inf"), 0.0
    while spent < seconds:
        start = time.perf_counter()
        torch.mm(a, b)
        took = time.perf_counter() - start
        best, spent = min(best, took), spent + took
    return 2 * n**3 / best / 1e9


def read_bandwidth(megabytes: int, seconds: float) -> float:
    """GB/s at which this machine's threads read memory: the best of repeated sums over a buffer much larger than
    any cache (a decoding step at a small batch streams every decoder weight once, at about this speed)."""
    import torch

    x = torch.ones(megabytes * 2**20 // 4)
    x.sum()
    best, spent = float("inf"), 0.0
    while spent < seconds:
        start = time.perf_counter()
        x.sum()
        took = time.perf_counter() - start
        best, spent = min(best, took), spent + took
    return x.numel() * 4 / best / 1e9


def decode_bytes(model, px, kw: dict) -> float:
    """Bytes one image's decoding must read at the least: every decoder weight once per step (shared by the batch)
    and the image's cross-attention keys and values once per step (shared by its beams)."""
    import torch

    steps = kw["max_new_tokens"]
    weights = sum(p.numel() * p.element_size() for p in model.decoder.parameters())
    with torch.inference_mode():
        cache = model.new_cache(model.encode(px[:1]), group=1, max_len=2)
    cross = sum(t.numel() * t.element_size() for pair in cache.cross for t in pair)
    return steps * (weights / px.shape[0] + cross)


def count_flops(fn) -> int:
    """FLOPs of `fn()` as torch's FlopCounterMode counts them, with the CPU's fused attention kernel counted too."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

    def cpu_sdpa(query_shape, key_shape, value_shape, *args, **kwargs) -> int:
        return sdpa_flop_count(query_shape, key_shape, value_shape)

    aten = torch.ops.aten
    mapping = {aten._scaled_dot_product_flash_attention_for_cpu: cpu_sdpa}
    with FlopCounterMode(display=False, custom_mapping=mapping) as counter:
        fn()
    return counter.get_total_flops()


def timed_interleaved(fns: dict, repeats: int) -> dict[str, float]:
    """Median seconds per name; the runs alternate between the names, reversed every round (a, b, b, a, ...)."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    order = list(fns)
    for round_ in range(repeats):
        for name in order if round_ % 2 == 0 else reversed(order):
            start = time.perf_counter()
            fns[name]()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def child(kind: str, workload: Workload, args: argparse.Namespace, extra: list[str] | None = None) -> dict:
    """Run this script as `--child KIND` in a fresh process; its JSON answer."""
    cmd = [sys.executable, __file__, "--child", kind, "--workloads", workload.name, "--batch", str(args.batch),
           "--cache", str(args.cache), "--threads", str(args.threads), "--repeats", str(args.repeats)]  # fmt: skip
    env = dict(os.environ)
    if kind == "onnx":
        env["PYTHONPATH"] = str(args.onnx_deps) + os.pathsep + env.get("PYTHONPATH", "")
    done = subprocess.run(cmd + (extra or []), capture_output=True, text=True, env=env, cwd=ROOT)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": f"{kind} child failed: {tail[:200]}"}
    return json.loads(lines[-1])


def peak_rss_mib() -> float:
    """This process's peak resident memory since it started. Linux keeps ru_maxrss across exec, so a child forked
    from a big parent would report the parent's size; VmHWM (of this program's own address space) starts afresh."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    unit = 1024 * 1024 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, kB elsewhere
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / unit


def run_child(kind: str, args: argparse.Namespace) -> None:
    """In the child: load, generate once (ONNX: also time it), print peak RSS (and ids / time) as JSON."""
    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    workload = Workload.parse(args.workloads[0])
    folder = checkpoint(workload.model, args.cache)
    px = pixels(folder, args.batch)
    kw = workload.generate_kwargs()
    answer: dict = {}
    if kind == "onnx":
        answer.update(run_onnx(folder, px, kw, args))
    else:
        model = load_ved(folder) if kind == "ved" else load_reference(folder)
        with torch.inference_mode():
            model.generate(px, **kw)
    answer["rss_mib"] = peak_rss_mib()
    if "ids" in answer:
        np.save(args.cache / f"{workload.model}-onnx-ids.npy", answer.pop("ids"))
    print(json.dumps(answer))


def run_onnx(folder: Path, px, kw: dict, args: argparse.Namespace) -> dict:
    """optimum's export of `folder` (once, kept beside it), run by ONNX Runtime: median seconds and the ids."""
    import onnxruntime as ort
    import transformers
    from optimum.onnxruntime import ORTModelForVision2Seq

    exported = folder.parent / f"{folder.name}-onnx"
    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    if not (exported / ".complete").exists():
        model = ORTModelForVision2Seq.from_pretrained(folder, export=True)
        model.save_pretrained(exported)
        (exported / ".complete").touch()
    model = ORTModelForVision2Seq.from_pretrained(exported, session_options=options, use_cache=True)
    ids = model.generate(pixel_values=px, **kw)  # warm-up
    seconds = timed_interleaved({"onnx": lambda: model.generate(pixel_values=px, **kw)}, args.repeats)["onnx"]
    return {"seconds": seconds, "ids": ids.numpy(), "version": f"onnxruntime {ort.__version__}, optimum-onnx "
            f"(transformers {transformers.__version__})"}  # fmt: skip


def onnx_available(args: argparse.Namespace) -> bool:
    return (args.onnx_deps / "onnxruntime").is_dir() and (args.onnx_deps / "optimum" / "onnxruntime").is_dir()


# ------------------------------------------------------------------------------------------------ the run


def machine() -> dict:
    import torch

    flags = set()
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    shown = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_int8", "avx512_vnni") if f in flags]
    import transformers

    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "flags": " ".join(shown) or "none of avx2/avx512",
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "threads": torch.get_num_threads(),
        "load": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "capability": torch.backends.cpu.get_cpu_capability(),
    }


def bench_workload(workload: Workload, args: argparse.Namespace) -> dict:
    import torch

    folder = checkpoint(workload.model, args.cache)
    px = pixels(folder, args.batch)
    kw = workload.generate_kwargs()
    row: dict = {"workload": workload.name, "model": workload.model, "beams": workload.beams,
                 "new_tokens": workload.new_tokens, "batch": args.batch}  # fmt: skip
    expected = timings(row, folder, px, kw, args)  # the models are gone once it returns: the children need memory
    if args.rss:
        for kind in ("ref", "ved"):
            row[f"{kind}_rss"] = child(kind, workload, args).get("rss_mib")
    if args.onnx and onnx_available(args):
        answer = child("onnx", workload, args)
        if "error" in answer:
            row["onnx"] = answer["error"]
        else:
            import numpy as np

            ids = torch.from_numpy(np.load(args.cache / f"{workload.model}-onnx-ids.npy"))
            row.update(onnx_ms=1000 * answer["seconds"] / args.batch, onnx_rss=answer["rss_mib"],
                       onnx_same_ids=torch.equal(ids, expected), onnx=answer["version"])  # fmt: skip
    else:
        row["onnx"] = "not installed" if args.onnx else "not run"
    return row


def timings(row: dict, folder: Path, px, kw: dict, args: argparse.Namespace):
    """Fill `row` with the reference's, ved's and the variants' times, ids and FLOPs; the reference's ids."""
    import torch

    ref, ved = load_reference(folder), load_ved(folder)
    variants = {name: load_ved(folder, VARIANTS[name]) for name in args.variants}
    with torch.inference_mode():
        expected = ref.generate(px, **kw)  # warm-up, and the ids everything is compared with
        got = ved.generate(px, **kw)
        row["same_ids"] = torch.equal(got, expected)
        fns = {"ref": lambda: ref.generate(px, **kw), "ved": lambda: ved.generate(px, **kw)}
        for name, model in variants.items():
            out = model.generate(px, **kw)  # warm-up
            row[f"{name}_agree"] = agreement(out, got)
            fns[name] = lambda model=model: model.generate(px, **kw)
        seconds = timed_interleaved(fns, args.repeats)
        row["flops"] = count_flops(lambda: ved.generate(px, **kw)) / args.batch
        row["encoder_flops"] = count_flops(lambda: ved.encode(px)) / args.batch
    row["decode_bytes"] = decode_bytes(ved, px, kw)
    for name, s in seconds.items():
        row[f"{name}_ms"] = 1000 * s / args.batch
    return expected


def agreement(got, fp32) -> float:
    """Share of generated positions (after the start token) where `got` holds fp32's token."""
    n = min(got.shape[1], fp32.shape[1])
    return float((got[:, 1:n] == fp32[:, 1:n]).float().mean()) if n > 1 else 1.0


# ------------------------------------------------------------------------------------------------ the table


def table(header: dict, rows: list[dict], variants: list[str]) -> str:
    peak32, peak16 = header.get("peak_fp32"), header.get("peak_bf16")
    batch = rows[0]["batch"] if rows else "?"
    lines = [
        f"machine: {header['cpu']}, {header['cores']} cores ({header['flags']}; torch kernels: "
        f"{header['capability']}), {header['threads']} threads, load average before the run {header['load']}",
        f"torch {header['torch']}, transformers {header['transformers']}; fp32, batch {batch}, median of "
        f"{header['repeats']} interleaved runs; matmul peak measured: fp32 {peak32:.3g} GFLOP/s, bf16 {peak16:.3g} "
        f"GFLOP/s; memory read bandwidth measured: {header.get('bandwidth', float('nan')):.3g} GB/s",
        "compute floor: all FLOPs at the fp32 matmul peak; floor: the encoder's FLOPs at that peak plus the bytes "
        "decoding must read (decoder weights once per step for the batch, each image's cross-attention keys and "
        "values once per step) at the measured bandwidth",
        "",
    ]
    cols = ["shapes of", "beams", "new tokens", "reference ms/img", "ved ms/img", "ved / reference",
            "ONNX Runtime ms/img", "ved / ORT", "GFLOP/img", "ved % of compute floor", "floor ms/img", "ved % of floor",
            "reference RSS MiB", "ved RSS MiB", "ORT RSS MiB", "same ids (ved, ORT)"]  # fmt: skip
    for v in variants:
        cols += [f"ved {v} ms/img", f"{v} / reference", f"{v} tokens = fp32"]
    lines += ["| " + " | ".join(cols) + " |", "|" + " --- |" * len(cols)]
    for r in rows:
        floor_ms = 1000 * r["flops"] / (peak32 * 1e9)
        onnx_ms = r.get("onnx_ms")
        cells = [
            f"`{SHOWN_AS.get(r['model'], r['model'])}`",
            str(r["beams"]),
            str(r["new_tokens"]),
            f"{r['ref_ms']:.0f}",
            f"{r['ved_ms']:.0f}",
            f"{r['ref_ms'] / r['ved_ms']:.2f}x",
            f"{onnx_ms:.0f}" if onnx_ms else r.get("onnx", "not run"),
            f"{onnx_ms / r['ved_ms']:.2f}x" if onnx_ms else "—",
            f"{r['flops'] / 1e9:.3g}",
            f"{100 * floor_ms / r['ved_ms']:.0f} %",
            *_floor(r, peak32, header.get("bandwidth")),
            _mib(r.get("ref_rss")),
            _mib(r.get("ved_rss")),
            _mib(r.get("onnx_rss")),
            ("yes" if r["same_ids"] else "NO")
            + (", " + ("yes" if r["onnx_same_ids"] else "no") if "onnx_same_ids" in r else ""),  # fmt: skip
        ]
        for v in variants:
            ms = r.get(f"{v}_ms")
            cells += [f"{ms:.0f}", f"{r['ref_ms'] / ms:.2f}x", f"{100 * r[f'{v}_agree']:.1f} %"] if ms else ["—"] * 3
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _floor(r: dict, peak32: float, bandwidth: float | None) -> list[str]:
    """The floor's cells: encoder FLOPs at the matmul peak + decoding's bytes at the bandwidth; ved's share of it."""
    if not bandwidth or "encoder_flops" not in r:
        return ["—", "—"]
    floor_ms = 1000 * (r["encoder_flops"] / (peak32 * 1e9) + r["decode_bytes"] / (bandwidth * 1e9))
    return [f"{floor_ms:.3g}", f"{100 * floor_ms / r['ved_ms']:.0f} %"]


def _mib(value) -> str:
    return f"{value:.0f}" if isinstance(value, int | float) else "—"


def print_tables(paths: list[Path]) -> None:
    header, rows, variants = None, [], []
    for path in paths:
        for line in path.read_text().splitlines():
            record = json.loads(line)
            if "workload" in record:
                rows.append(record)
            else:
                header = header or record
                variants += [v for v in record.get("variants", []) if v not in variants]
    print(table(header, rows, variants))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workloads", nargs="+", metavar="SHAPE:BEAMS", help=f"default: {' '.join(WORKLOADS)}")
    ap.add_argument("--batch", type=int, default=8, help="images per generate call (default 8)")
    ap.add_argument("--repeats", type=int, default=5, help="timed runs of each, after a warm-up (default 5)")
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads (default: all cores)")
    ap.add_argument("--variants", nargs="*", default=[], choices=sorted(VARIANTS), help="ved's opt-in fast paths")
    ap.add_argument("--cache", type=Path, default=ROOT / "out" / "bench", help="where the checkpoints are kept")
    ap.add_argument("--no-rss", dest="rss", action="store_false", help="skip the peak-RSS processes")
    ap.add_argument("--no-onnx", dest="onnx", action="store_false", help="skip ONNX Runtime")
    ap.add_argument("--onnx-deps", type=Path, default=ONNX_DEPS, help="where optimum-onnx is installed")
    ap.add_argument("--json", type=Path, help="append the figures to this file (JSON lines; --table prints them)")
    ap.add_argument("--table", type=Path, nargs="+", help="print the table of earlier --json files and stop")
    ap.add_argument("--quick", action="store_true", help="tiny shapes, batch 2, one repeat: a smoke test")
    ap.add_argument("--child", choices=["ref", "ved", "onnx"], help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.table:
        print_tables(args.table)
        return
    if args.quick:
        args.workloads = args.workloads or QUICK
        args.batch, args.repeats, args.threads = min(args.batch, 2), 1, 1
    args.workloads = args.workloads or WORKLOADS
    args.cache.mkdir(parents=True, exist_ok=True)
    if args.child:
        run_child(args.child, args)
        return

    import torch

    torch.set_num_threads(args.threads)
    header = machine()  # the load average before any work
    n, seconds = (128, 0.05) if args.quick else (1024, 1.0)
    header.update(peak_fp32=matmul_peak("fp32", n, seconds), peak_bf16=matmul_peak("bf16", n, seconds),
                  bandwidth=read_bandwidth(64 if args.quick else 1024, seconds),
                  repeats=args.repeats, variants=args.variants)  # fmt: skip
    rows = []
    for text in args.workloads:
        rows.append(bench_workload(Workload.parse(text), args))
        print(f"{text}: done", file=sys.stderr, flush=True)
    if args.json:
        with args.json.open("a") as f:
            for record in [header, *rows]:
                f.write(json.dumps(record) + "\n")
    print(table(header, rows, args.variants))


if __name__ == "__main__":
    main()
