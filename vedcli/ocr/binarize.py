"""Ink mask of a page: greyscale, light-on-dark regions turned round, uneven light divided out, then a Sauvola
threshold.

Everything is measured on a grid of cells `cell` pixels wide (about 1/64 of the page's longer side), so the cost
stays a few passes over the pixels whatever the page holds:

- per cell, the 10th / 50th / 90th grey percentiles. Text on paper has its median near the bright end (paper is
  the majority, ink the minority); white text on a dark box has it near the dark end. Cells of the second kind, and
  blank cells whose grey matches their dark background, mark the regions to invert (per region, not per page);
- the background is the 90th percentile per cell, closed over 3 x 3 cells (a bold stroke wider than a cell does not
  darken it) and spread smoothly over the pixels; dividing by it removes shading and vignetting; where it is too
  dark to be paper (under 25% of the page's paper: the table round a photographed page), and in cells that are
  dim, flat and reach the image's border (a lighter table: `table_cells`), nothing is ink;
- Sauvola's threshold `mean * (1 + k * (std / 128 - 1))` over a window of about one cell, with local statistics
  taken on blocks of a tenth of the window (the threshold is one value per block); pixels below 45% of the paper
  are ink whatever the window says (the inside of strokes wider than the window).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image


def grey(image: Image.Image) -> np.ndarray:
    """(H, W) float32 in 0..255; transparency is laid on white, 16-bit and float images are scaled to their range."""
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        paper = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(paper, rgba)
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        arr = np.asarray(image.convert("F"), dtype=np.float32)
        lo, hi = float(arr.min(initial=0.0)), float(arr.max(initial=0.0))
        if hi > 255 or lo < 0:
            arr = (arr - lo) * (255.0 / max(hi - lo, 1e-6))
        return arr
    return np.asarray(image.convert("L"), dtype=np.float32)


def _resize(a: np.ndarray, size: tuple[int, int], resample=Image.BILINEAR) -> np.ndarray:
    """Resize a float array to size=(width, height) with PIL (C speed)."""
    return np.asarray(Image.fromarray(np.ascontiguousarray(a, dtype=np.float32), "F").resize(size, resample))


def cells_to_pixels(cells: np.ndarray, cell: int, shape: tuple[int, int]) -> np.ndarray:
    """Spread a (ny, nx) cell map over the pixels, bilinear between cell centres."""
    ny, nx = cells.shape
    full = _resize(cells, (nx * cell, ny * cell))
    return full[: shape[0], : shape[1]]


def _shifted(a: np.ndarray, op) -> np.ndarray:
    """3 x 3 max or min of a small array (edges replicated)."""
    p = np.pad(a, 1, mode="edge")
    out = p[1:-1, 1:-1].copy()
    for dy in (0, 1, 2):
        for dx in (0, 1, 2):
            out = op(out, p[dy : dy + a.shape[0], dx : dx + a.shape[1]])
    return out


def cell_percentiles(g: np.ndarray, cell: int, q=(10, 50, 90)) -> np.ndarray:
    """(len(q), ny, nx) grey percentiles per cell, from at most ~16 x 16 samples of each cell."""
    step = max(1, cell // 16)
    sub = g[::step, ::step]
    c = cell // step
    ny, nx = -(-g.shape[0] // cell), -(-g.shape[1] // cell)
    sub = sub[: ny * c, : nx * c]
    sub = np.pad(sub, ((0, ny * c - sub.shape[0]), (0, nx * c - sub.shape[1])), mode="edge")
    blocks = sub.reshape(ny, c, nx, c).transpose(0, 2, 1, 3).reshape(ny, nx, c * c)
    return np.percentile(blocks, q, axis=-1).astype(np.float32)


def box_mean(a: np.ndarray, radius: int) -> np.ndarray:
    """Mean over a (2r+1)^2 window, edges replicated (integral image, float64)."""
    p = np.pad(a.astype(np.float64), ((radius + 1, radius), (radius + 1, radius)), mode="edge")
    p[0, :] = 0
    p[:, 0] = 0
    s = p.cumsum(0).cumsum(1)
    k = 2 * radius + 1
    total = s[k:, k:] - s[:-k, k:] - s[k:, :-k] + s[:-k, :-k]
    return (total / (k * k)).astype(np.float32)


@dataclass
class Ink:
    """The ink mask and what was learnt on the way (kept for the debug drawing and the tests)."""

    mask: np.ndarray  # (H, W) bool, True = ink
    inverted: np.ndarray  # (H, W) bool: pixels that were light-on-dark and got turned round
    regions: np.ndarray  # (H, W) int32: k > 0 on the pixels of the k-th turned-round region
    tone: np.ndarray  # (regions + 1,) spread of each region's dark tones (see invert_regions)
    cell: int
    paper: np.ndarray  # (h, w) bool at 1/step scale: bright enough to be paper (not the table round a photo)
    step: int

    def near_table(self) -> np.ndarray:
        """(H, W) bool: within half a cell of what is not paper: ink there is the page's edge, not text."""
        shape = self.mask.shape
        if self.paper.all():
            return np.zeros(shape, dtype=bool)
        near = box_mean((~self.paper).astype(np.float32), max(1, self.cell // (2 * self.step))) > 0
        full = np.repeat(np.repeat(near, self.step, axis=0), self.step, axis=1)
        full = np.pad(full, ((0, max(0, shape[0] - full.shape[0])), (0, max(0, shape[1] - full.shape[1]))), "edge")
        return full[: shape[0], : shape[1]]


def cell_size(shape: tuple[int, int]) -> int:
    return int(np.clip(round(max(shape) / 64), 8, 96))


def invert_regions(
    g: np.ndarray, cell: int, p10: np.ndarray, p50: np.ndarray, p90: np.ndarray, min_contrast: float = 24.0
) -> np.ndarray:
    """Light-on-dark regions: (H, W) int32, 0 outside, k > 0 on the pixels of the k-th region."""
    none = np.zeros(g.shape, dtype=np.int32), np.zeros(1, dtype=np.float32)
    contrast = p90 - p10
    skew = (2 * p50 - p10 - p90) / np.maximum(contrast, 1.0)  # +1: bright majority (paper), -1: dark majority
    strong = contrast >= min_contrast
    inv = strong & (skew < -0.3)
    if inv.sum() < 2:
        return none
    norm = strong & (skew > 0.3)
    dark = float(np.median(p10[inv]))
    paper = float(np.median(p90[norm])) if norm.any() else 255.0
    # blank (or undecided) cells next to such cells follow the background they look like (the margins inside a
    # dark box; not a whole shadow)
    undecided = ~(inv | norm)
    alike = undecided & (np.abs(p50 - dark) < np.abs(p50 - paper))
    boxes = _boxes_only(inv | alike)  # judged with every dark-looking cell: the table round a page reaches the border
    near = _shifted(inv.astype(np.float32), np.maximum) > 0
    inv = (inv | (alike & near)) & boxes
    if not inv.any():
        return none
    region = _shifted(inv.astype(np.float32), np.maximum) > 0  # one cell more, for boxes that straddle cells
    thresh = np.where(strong, (p10 + p90) / 2, (dark + paper) / 2).astype(np.float32)
    # the dark pixels of those cells (box-blurred over half a cell, so white strokes count as their box), at a
    # reduced scale, each connected region numbered
    step = max(1, cell // 8)
    small = g[::step, ::step]
    blurred = box_mean(small, max(1, cell // (2 * step)))
    sub_cell = cell / step
    ny, nx = region.shape
    rows = np.minimum((np.arange(small.shape[0]) / sub_cell).astype(int), ny - 1)
    cols = np.minimum((np.arange(small.shape[1]) / sub_cell).astype(int), nx - 1)
    in_region = region[rows][:, cols]
    t_small = _resize(thresh, (nx * cell, ny * cell))[::step, ::step][: small.shape[0], : small.shape[1]]
    dark_px = in_region & (blurred < t_small)
    from .components import label

    parts = label(dark_px)
    ids = np.zeros(dark_px.shape, dtype=np.int32)
    for k, r, s0, e0 in zip(parts.run_label, parts.run_rows, parts.run_starts, parts.run_ends, strict=False):
        ids[r, s0:e0] = k + 1
    for k in range(1, parts.n + 1):  # holes (where the white text is dense) belong to their box
        y0, y1 = parts.y0[k - 1], parts.y1[k - 1]
        x0, x1 = parts.x0[k - 1], parts.x1[k - 1]
        crop = ids[y0:y1, x0:x1]
        gaps = label(crop != k)
        inner = (gaps.x0 > 0) & (gaps.y0 > 0) & (gaps.x1 < crop.shape[1]) & (gaps.y1 < crop.shape[0])
        if inner.any():
            crop[gaps.mask(crop.shape, inner) & (crop == 0)] = k
    # how evenly dark each region's ground is: in its cells, (median - 10th) / (90th - 10th) is small under white
    # text on a flat box (the strokes are the bright minority) and about a half in a picture's continuous tones
    tone = np.zeros(parts.n + 1, dtype=np.float32)
    ratio = (p50 - p10) / np.maximum(p90 - p10, 1.0)
    t_cells = thresh
    for k in range(1, parts.n + 1):
        ys, xs = np.nonzero(ids == k)
        cells = np.unique(rows[ys] * nx + cols[xs])
        tone[k] = float(np.median(ratio.ravel()[cells]))
        # a dark box is one dark ground; a bold heading whose cells are mostly ink is dark letters apart
        r0, r1, c0, c1 = ys.min() * step, (ys.max() + 1) * step, xs.min() * step, (xs.max() + 1) * step
        crop = g[r0:r1, c0:c1]
        inside = np.repeat(np.repeat(ids[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1] == k, step, 0), step, 1)
        inside = inside[: crop.shape[0], : crop.shape[1]]
        cr = np.minimum(np.arange(r0, r0 + crop.shape[0]) // cell, ny - 1)
        cc = np.minimum(np.arange(c0, c0 + crop.shape[1]) // cell, nx - 1)
        dark = (crop < t_cells[cr][:, cc]) & inside
        pieces = label(dark)
        if pieces.n and pieces.area.max() < 0.5 * pieces.area.sum():
            ids[ids == k] = 0
    full = np.repeat(np.repeat(ids, step, axis=0), step, axis=1)[: g.shape[0], : g.shape[1]]
    return full, tone


def _boxes_only(inv: np.ndarray, min_cells: int = 4) -> np.ndarray:
    """Dark regions worth turning round: boxes of a few cells or more inside the image, or most of the image (a
    dark screen). A dark region touching the border is the table round a photographed page, not text."""
    from .components import label

    comps = label(inv)
    ny, nx = inv.shape
    border = (comps.x0 == 0) | (comps.y0 == 0) | (comps.x1 == nx) | (comps.y1 == ny)
    ok = (comps.area >= min_cells) & (~border | (comps.area > 0.5 * inv.size))
    return comps.mask(inv.shape, ok)


BORDER = 0.12  # the table round a photographed page lies within this share of the image's sides


def table_cells(p10: np.ndarray, p50: np.ndarray, p90: np.ndarray, paper: float) -> np.ndarray:
    """(ny, nx) bool: the table round a photographed page, when it is not much darker than the paper. Its cells are
    dimmer than 60% of the paper (`paper`: its brightness) and flat (their 10th and 90th percentiles within 15%, or
    grain spread evenly round the median, within 10% of the paper's brightness each way: no ink, so no text is lost,
    and a shadow over text stops the region), near the image's sides (within BORDER of them: a dim picture inside the
    page is not table) and connected to its border; and the page's edge is a step: most cells along the region
    (not in it) are half as bright again as it (a shadow or vignetting on the paper darkens it gradually)."""
    from .components import label

    spread = p90 - p10
    noise = (p50 - p10 < 0.1 * paper) & (p90 - p50 < 0.1 * paper)  # grain spread evenly round its middle
    flat = (p90 < 0.6 * paper) & ((spread < 0.15 * p90) | noise)
    ny, nx = flat.shape
    ry, rx = max(1, round(BORDER * ny)), max(1, round(BORDER * nx))
    ring = np.ones_like(flat)
    ring[ry:-ry, rx:-rx] = False
    flat &= ring
    out = np.zeros_like(flat)
    if not flat.any():
        return out
    comps = label(flat)
    border = (comps.x0 == 0) | (comps.y0 == 0) | (comps.x1 == nx) | (comps.y1 == ny)
    for k in np.flatnonzero(border):
        region = comps.mask(flat.shape, np.arange(comps.n) == k)
        beside = (_shifted(region.astype(np.float32), np.maximum) > 0) & ~flat
        if beside.any() and np.mean(p90[beside] >= 1.5 * np.median(p90[region])) >= 0.5:
            out |= region
    return out


def background(p: np.ndarray, cell: int) -> np.ndarray:
    """(ny, nx) paper brightness per cell: the 90th percentile, closed over 3 x 3 cells."""
    p90 = cell_percentiles(p, cell, (90,))[0]
    return np.maximum(_shifted(_shifted(p90, np.maximum), np.minimum), 1.0)


def ink(image: Image.Image | np.ndarray, k: float = 0.2, r: float = 128.0) -> Ink:
    g = image if isinstance(image, np.ndarray) else grey(image)
    H, W = g.shape
    cell = cell_size(g.shape)
    p10, p50, p90 = cell_percentiles(g, cell)
    regions, tone = invert_regions(g, cell, p10, p50, p90)
    inverted = regions > 0
    p = g
    if inverted.any():
        # light text on a dark ground: stretched between the cell's dark and light ends, turned round, so faint
        # text in a dim box keeps its contrast (255 - g would leave it grey on white)
        # (never stretched by more than twice the page's contrast: a cell holding little text would make noise)
        in_cells = (regions[cell // 2 :: cell, cell // 2 :: cell] > 0)[: p10.shape[0], : p10.shape[1]]
        dark = float(np.median(p10[: in_cells.shape[0], : in_cells.shape[1]][in_cells])) if in_cells.any() else 0.0
        floor = max(40.0, 0.5 * (float(np.percentile(p90, 90)) - dark))
        lo = cells_to_pixels(p10, cell, g.shape)
        span = np.maximum(cells_to_pixels(p90, cell, g.shape) - lo, floor)
        turned = 255.0 * np.clip(1.0 - (g - lo) / span, 0.0, 1.0)
        p = np.where(inverted, turned, g).astype(np.float32)
    # statistics at 1/step of the size (whole blocks of step x step pixels): the background and the window's
    # mean and spread are smooth
    window = max(15, cell | 1)
    step = max(1, window // 10)
    hs, ws = -(-H // step), -(-W // step)
    padded = np.pad(p, ((0, hs * step - H), (0, ws * step - W)), mode="edge") if (hs * step, ws * step) != (H, W) else p
    blocks = padded.reshape(hs, step, ws, step)
    m_p = blocks.mean(axis=(1, 3), dtype=np.float32)
    sq_p = np.einsum("aibj,aibj->ab", blocks, blocks, dtype=np.float32) / (step * step)
    ny, nx = -(-H // cell), -(-W // cell)
    bg = _resize(background(p, cell), (nx * cell // step, ny * cell // step))
    bg = np.pad(bg, ((0, max(0, hs - bg.shape[0])), (0, max(0, ws - bg.shape[1]))), "edge")[:hs, :ws]
    radius = max(1, window // (2 * step))
    mean = box_mean(m_p / bg, radius) * 255.0  # of the flattened page (paper = 255)
    sq = box_mean(sq_p / (bg * bg), radius) * (255.0 * 255.0)
    std = np.sqrt(np.maximum(sq - mean * mean, 0.0))
    # Sauvola on the flattened page, or under 45% of the paper (inside strokes wider than the window), brought
    # back to the page's own grey: ink where p < threshold
    flat_t = np.maximum(mean * (1 + k * (std / r - 1)), 0.45 * 255.0)
    # too dark to be paper (the table round a photographed page): dividing would only amplify its noise
    level = float(np.percentile(bg, 95))
    paper = bg >= 0.25 * level
    if inverted.any():  # the table is judged on the page as turned round (a dark screen is no table)
        p10, p50, p90 = cell_percentiles(p, cell)
    table = table_cells(p10, p50, p90, level)
    if table.any():  # a lighter table round the page: no ink either, and what touches it is the page's edge
        rows = np.minimum(np.arange(hs) * step // cell, table.shape[0] - 1)
        cols = np.minimum(np.arange(ws) * step // cell, table.shape[1] - 1)
        paper &= ~table[rows][:, cols]
    threshold = np.where(paper, np.minimum(flat_t, 255.0) * bg / 255.0, -1.0).astype(np.float32)
    mask = (blocks < threshold[:, None, :, None]).reshape(hs * step, ws * step)[:H, :W]
    return Ink(mask, inverted, regions, tone, cell, paper, step)
