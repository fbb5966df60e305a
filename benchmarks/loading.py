"""Feeding the model: how fast large JPEGs are decoded (and preprocessed) ahead of it, by threads (what ved does) or
by worker processes.

    .venv/bin/python benchmarks/loading.py --images 24 --size 4000x3000 --workers 2 4

Two cases, as `ved` reads images:
- `caption`: each image for a ViT at 384 x 384 (TrOCR's processor): decoded shrunk (JPEG draft, then a whole-factor
  reduce), then resized and normalised into the (3, 384, 384) tensor the model takes;
- `page`: each image decoded whole, as `ved ocr --layout page` reads pages (boxes in the file's pixels).

Ways: `serial` (one thread does everything), `threads N` (ved's read-ahead: N threads decode, the consumer
preprocesses, as before), `threads N + preprocess` (the threads also make the tensor), `processes N` (a process pool
does it all and sends back the tensor or the decoded page; spawned and warmed up before timing). Prints images/s
(median of --repeat runs).
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from vedcli.commands import caption
from vedcli.commands.inputs import InputItem
from vedcli.processing.image import ImageProcessor, ImageProcessorConfig, open_image

TROCR = {
    "image_processor_type": "ViTImageProcessor",
    "do_resize": True,
    "size": {"height": 384, "width": 384},
    "resample": 2,
    "do_rescale": True,
    "rescale_factor": 1 / 255,
    "do_normalize": True,
    "image_mean": [0.5, 0.5, 0.5],
    "image_std": [0.5, 0.5, 0.5],
}
PROCESSOR = ImageProcessor(ImageProcessorConfig.from_dict(TROCR))


def make_jpegs(folder: Path, count: int, width: int, height: int) -> list[Path]:
    """Photo-like JPEGs (smooth shapes plus grain, quality 90): what a camera or a scanner gives."""
    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        base = Image.fromarray(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)).resize((width, height), 3)
        grain = rng.normal(0, 12, (height, width, 1))
        pixels = np.clip(np.asarray(base, dtype=np.float32) + grain, 0, 255).astype(np.uint8)
        path = folder / f"{i:03d}.jpg"
        Image.fromarray(pixels).save(path, quality=90)
        paths.append(path)
    return paths


def for_model(path: Path):
    """One input as the caption run feeds the model: the processor's tensor."""
    return PROCESSOR.process(open_image(path, None, PROCESSOR))


def whole_page(path: Path):
    return open_image(path, None, None)


class _Ahead:
    """caption._Reader's face for the read-ahead: decode (shrunk for the processor, or whole), maybe preprocess."""

    def __init__(self, processor: ImageProcessor | None, preprocess: bool):
        self.processor, self.preprocess = processor, preprocess

    def cost(self, item: InputItem) -> int:
        from vedcli.processing.image import decoding_bytes

        return decoding_bytes(item.path, None)

    def __call__(self, item: InputItem):
        image = open_image(item.path, None, self.processor)
        return item, PROCESSOR.process(image) if self.preprocess else image, None


def run(way: str, workers: int, paths: list[Path], case: str) -> float:
    """Seconds to deliver every input of `paths` to a consumer, in order."""
    processor = PROCESSOR if case == "caption" else None
    start = time.perf_counter()
    if way == "serial":
        for path in paths:
            for_model(path) if case == "caption" else whole_page(path)
    elif way.startswith("threads"):
        preprocess = way.endswith("preprocess") and case == "caption"
        caption.READ_THREADS = workers
        items = [InputItem(str(p)) for p in paths]
        for _item, image, _error in caption._read_ahead(items, _Ahead(processor, preprocess), window=16):
            if case == "caption" and not preprocess:
                PROCESSOR.process(image)  # the consumer's (the model's) thread
    else:
        for _out in POOLS[workers].map(for_model if case == "caption" else whole_page, paths):
            pass
    return time.perf_counter() - start


POOLS: dict[int, ProcessPoolExecutor] = {}


def start_pools(sizes: list[int]) -> None:
    """Worker processes started ahead (as a run would keep them): spawned, since a process forked after torch has
    run its thread pools can hang (it does here: the workers wait forever on the parent's OpenMP locks)."""
    for n in sizes:
        POOLS[n] = ProcessPoolExecutor(n, mp_context=multiprocessing.get_context("spawn"))
        list(POOLS[n].map(abs, range(4 * n)))  # every worker up


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--size", default="4000x3000", help="WIDTHxHEIGHT of each JPEG")
    parser.add_argument("--workers", type=int, nargs="+", default=[2, 4])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--cases", nargs="+", default=["caption", "page"])
    args = parser.parse_args()
    width, height = map(int, args.size.lower().split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        paths = make_jpegs(Path(tmp), args.images, width, height)
        megabytes = sum(p.stat().st_size for p in paths) / 2**20
        start_pools(args.workers)
        for n in args.workers:  # each worker imports torch and vedcli before the clock starts
            list(POOLS[n].map(for_model, paths[:n]))
        print(f"{args.images} JPEGs of {width}x{height} ({megabytes:.0f} MB), median of {args.repeat}")
        print("| case | way | workers | images/s |")
        print("| --- | --- | ---: | ---: |")
        for case in args.cases:
            ways = [("serial", 1)]
            for n in args.workers:
                ways += [("threads", n), ("threads + preprocess", n), ("processes", n)]
            for way, n in ways:
                if case == "page" and way == "threads + preprocess":
                    continue
                seconds = statistics.median(run(way, n, paths, case) for _ in range(args.repeat))
                print(f"| {case} | {way} | {n} | {args.images / seconds:.1f} |", flush=True)


if __name__ == "__main__":
    main()
