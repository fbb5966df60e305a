"""Write N synthetic printed text lines as an imagefolder (`metadata.jsonl` + PNGs) that `ved train --data` reads.

    python recipes/printed/make_lines.py OUT --count 200000 --seed 1 --workers 2

Line i is a pure function of (seed, i) and the installed fonts and corpus, so a run can be split over machines with
--start and extended later without repeating lines. `OUT/info.json` records the fonts and the corpus digest.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from corpus import LineSampler, build_corpus, corpus_digest  # noqa: E402
from render import find_fonts, render_line  # noqa: E402

CHUNK = 500  # lines per task and per shard folder

_state: dict = {}


def _init(corpus_file: str, fonts: list[tuple[str, float]]) -> None:
    _state["paragraphs"] = json.loads(Path(corpus_file).read_text())
    _state["fonts"] = fonts


def _chunk(args: tuple[str, int, int, int]) -> list[dict]:
    out_dir, seed, start, count = args
    fonts = _state["fonts"]
    paths = [f for f, _ in fonts]
    weights = np.array([w for _, w in fonts])
    weights = weights / weights.sum()
    rows = []
    folder = Path(out_dir) / f"{start // CHUNK:06d}"
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(start, start + count):
        rng = np.random.default_rng([seed, i])
        sampler = LineSampler(_state["paragraphs"], random.Random(int(rng.integers(2**63))))
        text = sampler.line()
        font = paths[int(rng.choice(len(paths), p=weights))]
        image, target = render_line(text, font, rng)
        # binarised scans compress well as PNG; photos (noise, colour) are stored as high-quality JPEG
        lossless = image.mode == "L" and len(image.getcolors(4) or []) in (1, 2)
        name = f"{folder.name}/{i:08d}.{'png' if lossless else 'jpg'}"
        if lossless:
            image.save(Path(out_dir) / name, compress_level=6)
        else:
            image.save(Path(out_dir) / name, quality=92)
        rows.append({"file_name": name, "text": target, "font": Path(font).name})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--start", type=int, default=0, help="index of the first line (to extend a set)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    fonts = find_fonts()
    if not fonts:
        sys.exit("no fonts found: install them with `make reader-fonts`")
    corpus_file = out / "corpus.json"
    if not corpus_file.exists():
        corpus_file.write_text(json.dumps(build_corpus()))
    paragraphs = json.loads(corpus_file.read_text())
    info = {
        "seed": args.seed,
        "corpus": corpus_digest(paragraphs),
        "paragraphs": len(paragraphs),
        "fonts": [Path(f).name for f, _ in fonts],
    }
    (out / "info.json").write_text(json.dumps(info, indent=1))
    tasks = [
        (str(out), args.seed, s, min(CHUNK, args.start + args.count - s))
        for s in range(args.start, args.start + args.count, CHUNK)
    ]
    mode = "a" if args.start else "w"
    with (
        ProcessPoolExecutor(args.workers, initializer=_init, initargs=(str(corpus_file), fonts)) as pool,
        open(out / "metadata.jsonl", mode, encoding="utf-8") as meta,
    ):
        for n, rows in enumerate(pool.map(_chunk, tasks), start=1):
            for row in rows:
                meta.write(json.dumps({"file_name": row["file_name"], "text": row["text"]}, ensure_ascii=False) + "\n")
            meta.flush()
            print(f"{min(n * CHUNK, args.count)}/{args.count} lines", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
