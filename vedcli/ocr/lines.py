"""From components to lines: the usual glyph height, which components are glyphs, rules and pictures, pieces of
lines (glyphs joined across word gaps), and the small marks (dots, commas, accents) that join a finished line.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from .components import Components, _paint, label, runs


def text_height(comps: Components, shape: tuple[int, int]) -> float:
    """The usual glyph height (px; between x-height and cap height, about half an em); 0 without glyphs."""
    h, w = comps.height, comps.width
    ok = (h >= 3) & (comps.area >= 4) & (w <= 3 * h) & (h <= 12 * w) & (h <= max(shape) / 20)
    if not ok.any():
        return 0.0
    # first by ink (specks of noise are many but hold little ink), then the plain median of the glyphs near it
    hs, ws = h[ok], comps.area[ok].astype(np.float64)
    order = np.argsort(hs, kind="stable")
    cum = np.cumsum(ws[order])
    h0 = float(hs[order][np.searchsorted(cum, cum[-1] / 2)])
    sel = ok & (h >= 0.5 * h0) & (h <= 2 * h0)
    return float(np.median(h[sel])) if sel.any() else h0


def fragmented(comps: Components, h: float) -> bool:
    """Glyphs broken into specks (hairline strokes through a harsh threshold): much ink in marks under a third of
    a glyph high and wide (dots and commas hold a few percent)."""
    ok = comps.area >= 2
    small = ok & (comps.height < 0.35 * h) & (comps.width < 0.35 * h)
    return bool(comps.area[small].sum() > 0.05 * max(1, comps.area[ok].sum()))


def close3(mask: np.ndarray) -> np.ndarray:
    """Morphological closing with a 3 x 3 square: gaps of a pixel inside strokes filled."""

    def shifts(m: np.ndarray, op, pad_value: bool) -> np.ndarray:
        p = np.pad(m, 1, constant_values=pad_value)
        out = m.copy()
        for dy in (0, 1, 2):
            for dx in (0, 1, 2):
                op(out, p[dy : dy + m.shape[0], dx : dx + m.shape[1]], out=out)
        return out

    return shifts(shifts(mask, np.logical_or, False), np.logical_and, True)


def picture_blobs(comps: Components, h: float) -> np.ndarray:
    """Components that are pictures (large and dense) or lie inside one's box (the picture's other fragments)."""
    hh, ww = comps.height, comps.width
    fill = comps.area / np.maximum(hh * ww, 1)
    pic = (hh > 4 * h) & (ww > 4 * h) & (fill > 0.35)
    out = pic.copy()
    for i in np.flatnonzero(pic):
        out |= (
            (comps.x0 >= comps.x0[i])
            & (comps.x1 <= comps.x1[i])
            & (comps.y0 >= comps.y0[i])
            & (comps.y1 <= comps.y1[i])
        )
    return out


def skew_points(comps: Components, h: float, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x, y, weight) for the skew estimate: tops and bottoms of glyph-sized components, weighted by width."""
    hh, ww = comps.height, comps.width
    sel = keep & (hh >= 0.5 * h) & (hh <= 3 * h) & (ww <= 4 * h)
    xc = (comps.x0[sel] + comps.x1[sel]) / 2
    wt = ww[sel].astype(np.float64)
    return (
        np.concatenate([xc, xc]),
        np.concatenate([comps.y0[sel], comps.y1[sel]]).astype(np.float64),
        np.concatenate([wt, wt]),
    )


def remove_rules(mask: np.ndarray, length: int, horizontal: bool = True, vertical: bool = True) -> np.ndarray:
    """The mask without horizontal or vertical runs of at least `length` pixels (rules, frames, table lines)."""
    out = mask
    for transpose, wanted in ((False, horizontal), (True, vertical)):
        if not wanted:
            continue
        m = out.T if transpose else out
        r, s, e = runs(m)
        long = (e - s) >= length
        if long.any():
            hit = np.zeros(m.shape, dtype=bool)
            _paint(hit, r[long], s[long], e[long])
            m = m & ~hit
            out = m.T if transpose else m
    return np.ascontiguousarray(out)


def classify(comps: Components, h: float) -> tuple[np.ndarray, np.ndarray]:
    """(core, small): glyph-sized components that make lines, and marks small enough to join one."""
    hh, ww = comps.height, comps.width
    fill = comps.area / np.maximum(hh * ww, 1)
    rule = (hh <= 0.35 * h) & (ww >= 3 * h)
    big = (hh > 8 * h) | ((hh > 4 * h) & (ww > 4 * h) & (fill > 0.45))
    ok = ~rule & ~big
    core = ok & (hh >= 0.35 * h)
    small = ok & ~core & (comps.area >= 2)
    return core, small


def segments(x0, y0, x1, y1, shape: tuple[int, int], h: float, gap: float = 1.2, shrink: float = 0.2) -> np.ndarray:
    """Piece id of every glyph: each glyph's box, its top and bottom fifth cut off (so lines whose ascenders and
    descenders touch stay apart), stretched right by `gap` times its height, taken between the usual glyph height `h`
    (the pieces of a glyph that a harsh threshold broke still reach the next) and 1.5 h (a bracket or a tall italic
    at a column's end does not reach over a narrow gutter); overlapping boxes are one piece."""
    n = x0.size
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    d = max(1, int(h // 6))  # grid step: a glyph stays about 6 cells high
    gh, gw = shape[0] // d + 2, shape[1] // d + 2
    hc = np.minimum(y1 - y0, 3 * h)
    r0 = np.floor((y0 + shrink * hc) / d).astype(np.int64)
    r1 = np.maximum(np.ceil((y1 - shrink * hc) / d).astype(np.int64), r0 + 1)
    c0 = np.floor(x0 / d).astype(np.int64)
    c1 = np.maximum(np.ceil((x1 + gap * np.clip(hc, h, 1.5 * h)) / d).astype(np.int64), c0 + 1)
    r1, c1 = np.minimum(r1, gh), np.minimum(c1, gw)
    canvas = Image.new("1", (gw, gh), 0)
    draw = ImageDraw.Draw(canvas)
    for box in np.stack([c0, r0, c1 - 1, r1 - 1], axis=1).tolist():
        draw.rectangle(box, fill=1)
    grid = np.asarray(canvas)
    pieces = label(grid)
    # the piece holding each glyph's first cell: runs are sorted, so find the run containing (r0, c0)
    key = pieces.run_rows * (gw + 1) + pieces.run_starts
    at = np.searchsorted(key, r0 * (gw + 1) + c0, side="right") - 1  # the run holding each box's first cell
    return pieces.run_label[at]


def bridges(x0, y0, x1, y1, shape: tuple[int, int], h: float) -> np.ndarray:
    """Tall components that join lines (descenders touching the ascenders below, ink run between lines): those
    whose height holds the cores of two or more pieces made of the ordinary glyphs."""
    tall = (y1 - y0) > 1.6 * h
    out = np.zeros(x0.size, dtype=bool)
    if not tall.any() or tall.all():
        return out
    norm = ~tall
    piece = segments(x0[norm], y0[norm], x1[norm], y1[norm], shape, h)
    n = int(piece.max()) + 1
    px0 = np.full(n, np.inf)
    px1 = np.full(n, -np.inf)
    np.minimum.at(px0, piece, x0[norm])
    np.maximum.at(px1, piece, x1[norm])
    mid = np.zeros(n)
    for p in range(n):  # the core's middle: median of its glyphs' middles
        sel = piece == p
        mid[p] = np.median((y0[norm][sel] + y1[norm][sel]) / 2)
    for i in np.flatnonzero(tall):
        near = (px0 < x1[i] + h) & (px1 > x0[i] - h) & (mid > y0[i]) & (mid < y1[i])
        if near.any():
            levels = np.sort(mid[near])
            out[i] = bool(levels[-1] - levels[0] > 1.2 * h)  # two distinct lines inside it
    return out


def attach(cx: np.ndarray, cy: np.ndarray, mh: np.ndarray, boxes: np.ndarray, heights: np.ndarray) -> np.ndarray:
    """Line index for each mark at (cx, cy), mh high (-1: none): inside a line's box widened by its glyph height
    sideways and 0.6 of it up and down, not much taller than its glyphs, the line whose box is vertically nearest."""
    if cx.size == 0 or boxes.size == 0:
        return np.full(cx.size, -1, dtype=np.int64)
    u0, v0, u1, v1 = (boxes[:, k][None, :] for k in range(4))
    lh = heights[None, :]
    x, y = cx[:, None], cy[:, None]
    inside = (x >= u0 - lh) & (x <= u1 + lh) & (y >= v0 - 0.6 * lh) & (y <= v1 + 0.6 * lh) & (mh[:, None] <= 1.8 * lh)
    dist = np.abs(y - np.clip(y, v0, v1)) + 1e-3 * np.abs(y - (v0 + v1) / 2)
    dist = np.where(inside, dist, np.inf)
    best = np.argmin(dist, axis=1)
    return np.where(np.isfinite(dist[np.arange(cx.size), best]), best, -1)


@dataclass(frozen=True)
class Flow:
    """What is left of the lines' slope after deskewing (perspective, curl): dv/du = a + b x + c y + d x y with
    x, y the frame position relative to its centre in units of `scale` px. `shift(u, v)` integrates it along u:
    how far below the centre's height a line through (u_ref, v) runs at u; subtracting it makes lines level."""

    a: float = 0.0
    b: float = 0.0
    c: float = 0.0
    d: float = 0.0
    u_ref: float = 0.0
    v_ref: float = 0.0
    scale: float = 1.0

    def shift(self, u, v):
        x = (np.asarray(u, float) - self.u_ref) / self.scale
        y = (np.asarray(v, float) - self.v_ref) / self.scale
        return self.scale * ((self.a + self.c * y) * x + (self.b + self.d * y) * x * x / 2)


def piece_slope(xc: np.ndarray, bottom: np.ndarray, h: float) -> float | None:
    """Slope of a row of glyphs from their bottoms (descenders and marks dropped as outliers); None if too few."""
    if xc.size < 4 or np.ptp(xc) < 4 * h:
        return None
    keep = np.ones(xc.size, dtype=bool)
    for _ in range(3):
        if keep.sum() < 3:
            return None
        slope, icpt = np.polyfit(xc[keep], bottom[keep], 1)
        res = bottom - (slope * xc + icpt)
        new = np.abs(res - np.median(res[keep])) <= max(0.2 * h, 1.0)
        if np.array_equal(new, keep):
            break
        keep = new
    return float(slope)


def fit_flow(xc: np.ndarray, yc: np.ndarray, slope: np.ndarray, weight: np.ndarray, shape: tuple[int, int]) -> Flow:
    """The smooth slope field through the pieces' slopes (weighted least squares, outliers dropped, ridge)."""
    v_ref, u_ref = shape[0] / 2, shape[1] / 2
    scale = max(shape) / 2
    if slope.size == 0:
        return Flow(u_ref=u_ref, v_ref=v_ref, scale=scale)
    if slope.size < 6:
        return Flow(float(np.average(slope, weights=weight)), u_ref=u_ref, v_ref=v_ref, scale=scale)
    x, y = (xc - u_ref) / scale, (yc - v_ref) / scale
    design = np.stack([np.ones_like(x), x, y, x * y], axis=1)
    keep = np.ones(slope.size, dtype=bool)
    coef = np.zeros(4)
    for _ in range(3):
        w = weight * keep
        a = design.T @ (design * w[:, None]) + np.diag([0, 1, 1, 1]) * 0.05 * w.sum()
        coef = np.linalg.solve(a, design.T @ (w * slope))
        res = slope - design @ coef
        mad = float(np.median(np.abs(res[keep]))) + 1e-4
        keep = np.abs(res) <= 4 * mad
    return Flow(*map(float, coef), u_ref=u_ref, v_ref=v_ref, scale=scale)


@dataclass
class FrameLines:
    """Lines found in the upright (working) frame, in reading order; top/bottom/baseline are levelled (the flow's
    shift subtracted): the line runs at v = top + flow.shift(u, top) ... and so on."""

    u0: np.ndarray
    u1: np.ndarray
    top: np.ndarray
    bottom: np.ndarray
    baseline: np.ndarray
    height: np.ndarray  # usual glyph height of the line
    area: list[int]
    flow: Flow
    pieces: np.ndarray | None = None  # (n, 4) u0, c0, u1, c1 of the pieces (levelled), for debugging


def build_lines(comps: Components, h: float, shape: tuple[int, int]) -> FrameLines:
    from .order import reading_order

    core, small = classify(comps, h)
    idx = np.flatnonzero(core)
    empty = FrameLines(*(np.zeros(0) for _ in range(6)), [], Flow())
    if idx.size == 0:
        return empty
    gx0, gy0, gx1, gy1 = (a[idx].astype(np.float64) for a in (comps.x0, comps.y0, comps.x1, comps.y1))
    bridge = bridges(gx0, gy0, gx1, gy1, shape, h)
    if bridge.any():
        idx = idx[~bridge]
        if idx.size == 0:
            return empty
        gx0, gy0, gx1, gy1 = gx0[~bridge], gy0[~bridge], gx1[~bridge], gy1[~bridge]
    gxc = (gx0 + gx1) / 2
    gh = gy1 - gy0
    # thin upright strokes ('l', '|', or the sliver along a box's edge) would join lines above and below when
    # stretched: they join a line at the end, as marks
    stick = ((gx1 - gx0) < 0.25 * gh) & (gh > h)
    if stick.all():
        stick[:] = False
    piece = np.full(gx0.size, -1, dtype=np.int64)
    piece[~stick] = segments(gx0[~stick], gy0[~stick], gx1[~stick], gy1[~stick], shape, h)
    order = np.argsort(piece, kind="stable")
    order = order[piece[order] >= 0]
    bounds = np.searchsorted(piece[order], np.arange(int(piece.max()) + 2))
    members = [order[s:e] for s, e in zip(bounds[:-1], bounds[1:], strict=False)]
    # the flow, from the slopes of long pieces; then every glyph levelled
    fits = [(m, piece_slope(gxc[m], gy1[m], h)) for m in members]
    fits = [(m, s) for m, s in fits if s is not None]
    flow = fit_flow(
        np.array([gxc[m].mean() for m, _ in fits]),
        np.array([gy1[m].mean() for m, _ in fits]),
        np.array([s for _, s in fits]),
        np.array([np.ptp(gxc[m]) for m, _ in fits]),
        shape,
    )
    drift = flow.shift(gxc, (gy0 + gy1) / 2)
    fy0, fy1 = gy0 - drift, gy1 - drift
    # pieces of one or two short marks (a comma or a quote apart from its word) join a line at the end
    is_mark = np.array([m.size <= 2 and gh[m].max() < 0.8 * h for m in members])
    marks = np.concatenate([members[p] for p in np.flatnonzero(is_mark)] + [np.flatnonzero(stick)])
    members = [m for m, mk in zip(members, is_mark, strict=False) if not mk]
    if not members:
        return empty
    p_x0 = np.array([gx0[m].min() for m in members])
    p_x1 = np.array([gx1[m].max() for m in members])
    p_c0 = np.array([np.median(fy0[m]) for m in members])
    p_c1 = np.array([np.median(fy1[m]) for m in members])
    thin = p_c1 - p_c0 < 0.5 * h  # a piece of short glyphs only: a core of a usual glyph's size
    p_c0, p_c1 = np.where(thin, p_c0 - 0.25 * h, p_c0), np.where(thin, p_c1 + 0.25 * h, p_c1)
    areas = reading_order(p_x0, p_x1, p_c0, p_c1, h)
    glyphs, area = [], []
    for a, bands in enumerate(areas):
        for band in bands:
            m = np.concatenate([members[p] for p in band])
            height = float(np.median(fy1[m] - fy0[m]))
            if m.size >= 2 or height >= 0.6 * h:  # a lone speck is not a line
                glyphs.append(m)
                area.append(a)
    if not glyphs:
        return empty
    boxes = np.array([[gx0[m].min(), fy0[m].min(), gx1[m].max(), fy1[m].max()] for m in glyphs])
    heights = np.array([np.median(fy1[m] - fy0[m]) for m in glyphs])
    baselines = np.array([np.median(fy1[m]) for m in glyphs])
    # small marks (dots, commas, accents) join the nearest line
    sidx = np.flatnonzero(small)
    mx0 = np.concatenate([comps.x0[sidx], gx0[marks]]).astype(np.float64)
    mx1 = np.concatenate([comps.x1[sidx], gx1[marks]]).astype(np.float64)
    my0 = np.concatenate([comps.y0[sidx], gy0[marks]]).astype(np.float64)
    my1 = np.concatenate([comps.y1[sidx], gy1[marks]]).astype(np.float64)
    scx, scy = (mx0 + mx1) / 2, (my0 + my1) / 2
    sd = flow.shift(scx, scy)
    to = attach(scx, scy - sd, my1 - my0, boxes, heights)
    hit = to >= 0
    if hit.any():
        np.minimum.at(boxes[:, 0], to[hit], mx0[hit])
        np.minimum.at(boxes[:, 1], to[hit], my0[hit] - sd[hit])
        np.maximum.at(boxes[:, 2], to[hit], mx1[hit])
        np.maximum.at(boxes[:, 3], to[hit], my1[hit] - sd[hit])
    return FrameLines(
        boxes[:, 0],
        boxes[:, 2],
        boxes[:, 1],
        boxes[:, 3],
        baselines,
        heights,
        area,
        flow,
        np.stack([p_x0, p_c0, p_x1, p_c1], axis=1),
    )


def picture_regions(
    comps: Components, h: float, regions: np.ndarray, tone: np.ndarray, step: int
) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """The turned-round regions that are dark pictures, not white text on a dark box: (region id, x and y samples
    of its pixels). A picture's dark ground has spread tones; turned round, text gives glyph-sized components covering
    a good share of its area, a picture specks and large dense blobs."""
    n_regions = int(regions.max())
    if n_regions == 0 or comps.n == 0:
        return []
    small = regions[::step, ::step]
    pixels = np.bincount(small.ravel(), minlength=n_regions + 1) * step * step
    cy = np.minimum((comps.y0 + comps.y1) // 2, regions.shape[0] - 1)
    cx = np.minimum((comps.x0 + comps.x1) // 2, regions.shape[1] - 1)
    where = regions[cy, cx]
    hh, ww = comps.height, comps.width
    fill = comps.area / np.maximum(hh * ww, 1)
    glyph = (hh >= 0.4 * h) & (hh <= 3 * h) & (ww <= 6 * h)
    blob = ((hh > 3 * h) | (ww > 6 * h)) & (fill > 0.3)
    text = np.bincount(where, weights=comps.area * glyph, minlength=n_regions + 1)
    blobs = np.bincount(where, weights=comps.area * blob, minlength=n_regions + 1)
    picture = ((tone[: n_regions + 1] > 0.3) | (text < 0.04 * pixels) | (blobs > text)) & (pixels > 0)
    out = []
    for k in np.flatnonzero(picture[1:]) + 1:
        ys, xs = np.nonzero(small == k)
        out.append((int(k), (xs + 0.5) * step, (ys + 0.5) * step))
    return out


def inside_boxes(x: np.ndarray, y: np.ndarray, boxes: list[tuple[float, float, float, float]]) -> np.ndarray:
    out = np.zeros(x.size, dtype=bool)
    for x0, y0, x1, y1 in boxes:
        out |= (x >= x0) & (x < x1) & (y >= y0) & (y < y1)
    return out
