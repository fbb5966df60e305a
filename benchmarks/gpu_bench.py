"""ved against the reference on a CUDA GPU, side by side in one run: the six workloads of bench.py in fp16 or bf16.

    python benchmarks/gpu_bench.py                                  # fp16 and bf16, batch 8 and 32
    python benchmarks/gpu_bench.py --dtypes fp16 --batches 8 --workloads trocr-base:1 --json out/gpu.jsonl
    python benchmarks/gpu_bench.py --quick                          # tiny shapes (on the CPU too): a smoke test

Columns per workload, dtype and batch: the reference's ms per image (transformers' generate, its dynamic cache),
ved with CUDA graphs (the default on CUDA: a static cache, each decoding step replayed), ved without them
(VED_CUDA_GRAPHS=0), the ratios over the reference, and how many generated tokens agree with the reference's
(fp16 and bf16 round differently in the two, so ids need not be identical). Times are medians of --repeats runs
alternating between the three, each ended by torch.cuda.synchronize(); the first run of each (capture, cuBLAS
start-up) is not timed. The checkpoints are bench.py's: real shapes, random weights, written by transformers.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench import (  # noqa: E402
    QUICK,
    ROOT,
    WORKLOADS,
    Workload,
    agreement,
    checkpoint,
    load_reference,
    pixels,
    timed_interleaved,
)

DTYPES = {"fp16": "float16", "bf16": "bfloat16", "fp32": "float32"}


def synced(fn, device):
    import torch

    def run():
        out = fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return out

    return run


def with_graphs(on: bool, fn):
    def run():
        old = os.environ.get("VED_CUDA_GRAPHS")
        os.environ["VED_CUDA_GRAPHS"] = "1" if on else "0"
        try:
            return fn()
        finally:
            if old is None:
                os.environ.pop("VED_CUDA_GRAPHS")
            else:
                os.environ["VED_CUDA_GRAPHS"] = old

    return run


def bench_one(workload: Workload, dtype: str, batch: int, device, args) -> dict:
    import torch

    from vedcli.checkpoints.load import load_model

    folder = checkpoint(workload.model, args.cache)
    px = pixels(folder, batch).to(device, getattr(torch, DTYPES[dtype]))
    kw = workload.generate_kwargs()
    ref = load_reference(folder).to(device, getattr(torch, DTYPES[dtype]))
    ved = load_model(folder, device=str(device), dtype=dtype)
    fns = {
        "ref": synced(lambda: ref.generate(px, **kw), device),
        "graphs": synced(with_graphs(True, lambda: ved.generate(px, **kw)), device),
        "eager": synced(with_graphs(False, lambda: ved.generate(px, **kw)), device),
    }
    with torch.inference_mode():
        outs = {name: fn() for name, fn in fns.items()}  # warm-up: capture, cuBLAS handles, autotuning
        ms = {name: 1000 * t / batch for name, t in timed_interleaved(fns, args.repeats).items()}
    row = dict(workload=workload.name, dtype=dtype, batch=batch, device=torch.cuda.get_device_name(device)
               if device.type == "cuda" else "cpu", **{f"{k}_ms": v for k, v in ms.items()})  # fmt: skip
    row["agree_graphs"] = agreement(outs["graphs"].cpu(), outs["ref"].cpu())
    row["agree_eager"] = agreement(outs["eager"].cpu(), outs["ref"].cpu())
    row["graphs_same_as_eager"] = bool(torch.equal(outs["graphs"], outs["eager"]))
    return row


def table(rows: list[dict]) -> str:
    lines = ["| workload | dtype | batch | reference ms/img | ved graphs | ved eager | graphs / ref | eager / ref "
             "| tokens = ref (graphs, eager) | graphs ids = eager |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]  # fmt: skip
    for r in rows:
        ref = r["ref_ms"]
        lines.append(f"| {r['workload']} | {r['dtype']} | {r['batch']} | {ref:.2f} | {r['graphs_ms']:.2f} "
                     f"| {r['eager_ms']:.2f} | {ref / r['graphs_ms']:.2f}x | {ref / r['eager_ms']:.2f}x "
                     f"| {100 * r['agree_graphs']:.1f} %, {100 * r['agree_eager']:.1f} % "
                     f"| {'yes' if r['graphs_same_as_eager'] else 'no'} |")  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workloads", nargs="+", metavar="SHAPE:BEAMS", help=f"default: {' '.join(WORKLOADS)}")
    ap.add_argument("--dtypes", nargs="+", default=["fp16", "bf16"], choices=sorted(DTYPES))
    ap.add_argument("--batches", nargs="+", type=int, default=[8, 32])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--cache", type=Path, default=ROOT / "out" / "bench")
    ap.add_argument("--json", type=Path, help="append the rows to this file (JSON lines)")
    ap.add_argument("--quick", action="store_true", help="tiny shapes, fp32, batch 2, one repeat (CPU if no GPU)")
    args = ap.parse_args(argv)
    import torch

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if args.quick:
        args.workloads, args.dtypes, args.batches, args.repeats = args.workloads or QUICK, ["fp32"], [2], 1
    elif device.type != "cuda":
        raise SystemExit("no CUDA device: this benchmark is for a GPU (bench.py measures the CPU)")
    args.cache.mkdir(parents=True, exist_ok=True)
    rows = []
    for text in args.workloads or WORKLOADS:
        for dtype in args.dtypes:
            for batch in args.batches:
                rows.append(bench_one(Workload.parse(text), dtype, batch, device, args))
                if device.type == "cuda":
                    torch.cuda.empty_cache()  # the models of the row are gone
                print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
                if args.json:
                    with args.json.open("a") as f:
                        f.write(json.dumps(rows[-1]) + "\n")
    print(table(rows))


if __name__ == "__main__":
    main()
