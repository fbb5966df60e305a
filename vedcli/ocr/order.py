"""Reading order: a recursive X-Y cut over pieces of lines (columns left to right, lines top to bottom), whose
vertical cuts follow gutters that drift (a photographed page in perspective leans its columns).

The pieces come from `lines.segments`: runs of glyphs already joined across word gaps, with their horizontal extent
[x0, x1) and their levelled core [c0, c1) (the band between the usual tops and bottoms of their glyphs, which does
not overlap the next line's even where ascenders and descenders do). In a region:

1. pieces whose cores overlap form *bands* (one line of one column, or one row across columns), top to bottom;
2. a *gutter* is a chain of consecutive bands whose free intervals (at least `2 h` wide, h the usual glyph height,
   about half an em, or the band's own if larger) overlap band to band by that much, drifting at most h / 2 a band;
   space at a band's end counts, so a column that ends early or has a picture beside it does not break the chain.
   A chain that has pieces on both sides cuts the region: the bands above it, then everything left of it,
   everything right of it, then the bands below, each cut again;
3. what cannot be cut is an *area* (a column, or a run of full-width lines): its bands are its lines.

A gutter of only two bands must be `3 h` wide, and the text right of a gutter must start at one edge (band to band
within h, in most bands), so the word spaces of justified text that happen to line up do not split lines; a gutter
of three bands or fewer must also be the outstanding space of each of its bands (no other space in them three
quarters as wide: the spaces of a justified or monospace line are alike); a single band (a line with a wide gap) is
never cut.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

SHORT_GUTTER = 3  # bands: a gutter this short must also be its bands' widest space by far


def _bands(idx: np.ndarray, c0: np.ndarray, c1: np.ndarray) -> list[np.ndarray]:
    """Pieces with overlapping cores, top to bottom: a band grows while the next core starts above its bottom."""
    order = idx[np.argsort(c0[idx], kind="stable")]
    bands: list[list[int]] = []
    bottom = -np.inf
    for i in order:
        if bands and c0[i] < bottom:
            bands[-1].append(int(i))
            bottom = max(bottom, c1[i])
        else:
            bands.append([int(i)])
            bottom = c1[i]
    return [np.array(b) for b in bands]


def _free(
    band: np.ndarray, x0: np.ndarray, x1: np.ndarray, lo: float, hi: float, width: float
) -> list[tuple[float, float]]:
    """Intervals of [lo, hi] not covered by the band's pieces, at least `width` wide."""
    out = []
    at = lo
    for i in band[np.argsort(x0[band])]:
        if x0[i] - at >= width:
            out.append((at, float(x0[i])))
        at = max(at, float(x1[i]))
    if hi - at >= width:
        out.append((at, hi))
    return out


def _overlap(a: tuple[float, float], b: tuple[float, float]) -> float:
    return min(a[1], b[1]) - max(a[0], b[0])


@dataclass
class _Chain:
    first: int  # index of its first band
    track: tuple[float, float]  # where the gutter is now (clipped near the last band's)
    free: list[tuple[float, float]] = field(default_factory=list)  # per band, the free interval it passes through


def _chains(bands, x0, x1, c0, c1, lo, hi, h) -> list[_Chain]:
    done: list[_Chain] = []
    active: list[_Chain] = []
    for i, band in enumerate(bands):
        # a gutter is at least two glyphs wide, the band's own glyphs where they are larger (a heading's word
        # spaces are not gutters)
        size = max(h, float(np.median(c1[band] - c0[band])))
        free = _free(band, x0, x1, lo, hi, 2 * size)
        used: set[int] = set()
        still = []
        for ch in active:
            best, best_k = 0.0, -1
            for k, f in enumerate(free):
                ov = _overlap(f, ch.track)
                if ov >= 2 * h and ov > best:
                    best, best_k = ov, k
            if best_k < 0:
                done.append(ch)
                continue
            f = free[best_k]
            used.add(best_k)
            ch.free.append(f)
            # follow the gutter, but only half a glyph a band (perspective leans columns by far less; the rivers
            # of justified text wander more, and a wide free span at a band's end must not lead to another gutter)
            ch.track = (max(f[0], ch.track[0] - 0.5 * h), min(f[1], ch.track[1] + 0.5 * h))
            still.append(ch)
        for k, f in enumerate(free):
            if k not in used:
                still.append(_Chain(i, f, [f]))
        active = still
    return done + active


def _split(ch: _Chain, bands, x0, x1, h) -> tuple[list[int], list[int]] | None:
    """Pieces left and right of the gutter, or None when it does not separate anything (space beside ragged lines,
    too short or too narrow)."""
    n = len(ch.free)
    if n < 2 or (n == 2 and min(e - s for s, e in ch.free) < 3 * h):
        return None
    left: list[int] = []
    right: list[int] = []
    rows_both = 0
    starts = []  # where the text right of the gutter starts, band by band
    for band, (s, _e) in zip(bands[ch.first : ch.first + n], ch.free, strict=False):
        lm = band[x1[band] <= s + 1e-6]
        rm = band[x0[band] > s + 1e-6]
        left += lm.tolist()
        right += rm.tolist()
        rows_both += bool(lm.size and rm.size)
        if rm.size:
            starts.append(float(x0[rm].min()))
    if not left or not right or rows_both == 0:
        return None
    # a column's lines start at one edge (leaning a little at most); words after the wide spaces of justified text
    # that happen to line up start anywhere
    steps = np.abs(np.diff(starts))
    if steps.size >= 2 and np.mean(steps <= h) < 0.6:
        return None
    # a short gutter (a few bands: little evidence of alignment) must be its bands' outstanding space: the word
    # spaces of justified (or monospace) text are as wide as each other, so one of them is no gutter
    if n <= SHORT_GUTTER:
        for band, (s, e) in zip(bands[ch.first : ch.first + n], ch.free, strict=False):
            rivals = [b - a for a, b in _gaps(band, x0, x1) if b <= s or a >= e]  # the band's other spaces
            if any(r >= 0.75 * (e - s) for r in rivals):
                return None
    return left, right


def _gaps(band: np.ndarray, x0: np.ndarray, x1: np.ndarray) -> list[tuple[float, float]]:
    """The spaces between a band's pieces, left to right."""
    out = []
    at = None
    for i in band[np.argsort(x0[band])]:
        if at is not None and x0[i] > at:
            out.append((at, float(x0[i])))
        at = float(x1[i]) if at is None else max(at, float(x1[i]))
    return out


def reading_order(x0: np.ndarray, x1: np.ndarray, c0: np.ndarray, c1: np.ndarray, h: float) -> list[list[np.ndarray]]:
    """Areas in reading order; each a list of bands (top to bottom), each band the piece indices left to right."""
    x0, x1, c0, c1 = (np.asarray(a, dtype=np.float64) for a in (x0, x1, c0, c1))
    areas: list[list[np.ndarray]] = []
    if x0.size:
        _cut(np.arange(x0.size), x0, x1, c0, c1, h, areas)
    return areas


def _cut(idx, x0, x1, c0, c1, h, areas) -> None:
    bands = _bands(idx, c0, c1)
    if len(bands) >= 2:
        lo, hi = float(x0[idx].min()), float(x1[idx].max())
        best = None
        for ch in sorted(_chains(bands, x0, x1, c0, c1, lo, hi, h), key=lambda c: -len(c.free)):
            parts = _split(ch, bands, x0, x1, h)
            if parts is not None:
                best = (ch, parts)
                break
        if best is not None:
            ch, (left, right) = best
            n = len(ch.free)
            above, below = bands[: ch.first], bands[ch.first + n :]
            for part in (above, None, below):
                if part is None:
                    _cut(np.array(left), x0, x1, c0, c1, h, areas)
                    _cut(np.array(right), x0, x1, c0, c1, h, areas)
                elif part:
                    _cut(np.concatenate(part), x0, x1, c0, c1, h, areas)
            return
    areas.append([b[np.argsort(x0[b], kind="stable")] for b in bands])
