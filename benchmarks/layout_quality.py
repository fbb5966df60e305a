"""Line finding on synthetic pages with known lines (recipes/pages/make_pages.py): recall and precision of the found
lines (a found line matches a true one when their boxes overlap with IoU >= 0.5, one to one), reading order, and
seconds per page, by kind of page:

    python benchmarks/layout_quality.py --pages 40 --seed 7          # generated on the fly
    python benchmarks/layout_quality.py --data DIR                   # pages written by make_pages.py
    python benchmarks/layout_quality.py --pages 40 --debug out/dbg   # also the debug drawings of pages with misses

Boxes are compared on the upright page: each found line's corners are taken back through the page's curl and
perspective/rotation (both known), so skew is not counted against a box. Reading order: the share of consecutive
matched lines (in the order found) whose true order is increasing, and the share of pages with no pair out of order.
"Recall (legible)" leaves out the lines of binarised scans whose threshold kept less than half of their strokes
(make_pages.py's `legible`: dust that neither a person nor tesseract reads); the plain recall counts every line.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "recipes" / "pages"))

from vedcli.ocr.layout import find_lines  # noqa: E402


def upright_boxes(truth: dict, quads: list) -> np.ndarray:
    """Found quads (image pixels) -> boxes on the upright page."""
    if not quads:
        return np.zeros((0, 4))
    inv = np.linalg.inv(np.array(truth["homography"]))
    out = []
    for quad in quads:
        q = np.array(quad, dtype=np.float64)
        if "curl" in truth:
            c = truth["curl"]
            q[:, 1] -= c["amp"] * np.sin(np.pi * q[:, 0] / c["width"] + c["phase"])
        p = np.c_[q, np.ones(4)] @ inv.T
        p = p[:, :2] / p[:, 2:]
        out.append([p[:, 0].min(), p[:, 1].min(), p[:, 0].max(), p[:, 1].max()])
    return np.array(out)


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(len(a), len(b)) IoU of boxes x0, y0, x1, y1."""
    ix = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    iy = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = ix * iy
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def match(found: np.ndarray, true: np.ndarray, threshold: float = 0.5) -> list[tuple[int, int]]:
    """One-to-one (found, true) pairs, greedily by IoU."""
    if len(found) == 0 or len(true) == 0:
        return []
    m = iou(found, true)
    pairs = []
    used_f, used_t = set(), set()
    for flat in np.argsort(-m, axis=None):
        f, t = divmod(int(flat), m.shape[1])
        if m[f, t] < threshold:
            break
        if f not in used_f and t not in used_t:
            pairs.append((f, t))
            used_f.add(f)
            used_t.add(t)
    return sorted(pairs)


def score(truth: dict, layout) -> dict:
    true = np.array([line["box"] for line in truth["lines"]], dtype=np.float64).reshape(-1, 4)
    found = upright_boxes(truth, [line.quad for line in layout.lines])
    pairs = match(found, true)
    seq = [t for _, t in pairs]  # true indices in found order
    in_order = sum(b > a for a, b in zip(seq, seq[1:], strict=False))
    legible = [i for i, line in enumerate(truth["lines"]) if line.get("legible", True)]
    return {
        "true": len(true),
        "found": len(found),
        "matched": len(pairs),
        "legible": len(legible),
        "legible_matched": len(set(legible) & set(seq)),
        "pairs": max(len(seq) - 1, 0),
        "in_order": in_order,
        "missed": sorted(set(range(len(true))) - set(seq)),
    }


def pages(args):
    if args.data:
        for png in sorted(Path(args.data).glob("*.png")):
            yield png.stem, Image.open(png), json.loads(png.with_suffix(".json").read_text())
        return
    from make_pages import available_fonts, load_paragraphs, make_page

    paragraphs = load_paragraphs(ROOT / "out" / "pages-corpus.json")
    fonts = available_fonts()
    for i in range(args.pages):
        image, truth = make_page(args.seed * 100003 + i, paragraphs, fonts)
        yield f"{i:04d}", image, truth


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=30)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--data", help="a folder of pages written by recipes/pages/make_pages.py")
    parser.add_argument("--debug", help="write the debug drawing of every page with a miss here")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()
    rows = defaultdict(lambda: defaultdict(float))
    for name, image, truth in pages(args):
        image.load()
        start = time.perf_counter()
        layout = find_lines(image)
        seconds = time.perf_counter() - start
        s = score(truth, layout)
        kinds = ["all", truth["kind"], f"{truth['columns']} col"]
        kinds += [k for k in ("picture", "inverted", "rules") if truth.get(k)]
        if abs(truth["skew"]) > 3:
            kinds.append("skew >3")
        for k in kinds:
            r = rows[k]
            r["pages"] += 1
            r["seconds"] += seconds
            r["mpx"] += image.width * image.height / 1e6
            for key in ("true", "found", "matched", "pairs", "in_order", "legible", "legible_matched"):
                r[key] += s[key]
            r["pages_in_order"] += s["in_order"] == s["pairs"]
        miss = s["true"] - s["matched"]
        print(
            f"{name} {truth['kind']:5} {truth['columns']} col skew {truth['skew']:+5.1f} (found {layout.angle:+5.1f})"
            f" lines {s['matched']}/{s['true']} found {s['found']} order {s['in_order']}/{s['pairs']}"
            f" {seconds:.2f}s",
            file=sys.stderr,
            flush=True,
        )
        if args.debug and (miss or s["found"] > s["matched"] or s["in_order"] < s["pairs"]):
            from vedcli.ocr.debug import draw_layout

            Path(args.debug).mkdir(parents=True, exist_ok=True)
            draw_layout(image, layout).save(Path(args.debug) / f"{name}.png")
            (Path(args.debug) / f"{name}.txt").write_text(
                "\n".join(f"missed {i}: {truth['lines'][i]['box']} {truth['lines'][i]['text']}" for i in s["missed"])
            )
    print("| pages | n | recall | recall (legible) | precision | order (pairs) | pages in order | s/page | MPx/page |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    out = {}
    for k, r in rows.items():
        fig = {
            "pages": int(r["pages"]),
            "recall": r["matched"] / max(r["true"], 1),
            "recall_legible": r["legible_matched"] / max(r["legible"], 1),
            "illegible_lines": int(r["true"] - r["legible"]),
            "precision": r["matched"] / max(r["found"], 1),
            "order": r["in_order"] / max(r["pairs"], 1),
            "pages_in_order": r["pages_in_order"] / r["pages"],
            "seconds_per_page": r["seconds"] / r["pages"],
            "mpx_per_page": r["mpx"] / r["pages"],
        }
        out[k] = fig
        print(
            f"| {k} | {fig['pages']} | {fig['recall']:.2%} | {fig['recall_legible']:.2%} | {fig['precision']:.2%} |"
            f" {fig['order']:.2%} |"
            f" {fig['pages_in_order']:.0%} | {fig['seconds_per_page']:.2f} | {fig['mpx_per_page']:.1f} |"
        )
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
