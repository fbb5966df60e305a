"""Page layout: `find_lines(image) -> PageLayout` (blocks and lines in reading order, with boxes), `cut_line` (a
line's straightened image for the reader) and `decide_layout` (a page or a single line, for `--layout auto`).

The steps (each in its own module): ink mask (`binarize`: light-on-dark regions turned round, shading divided
out, Sauvola) -> components (`components`; strokes broken into specks mended first) -> glyph height; specks, the
page's edge and dark pictures dropped -> skew (`deskew`) -> the kept ink turned upright, rules and frames removed
(long runs) -> components again -> glyphs joined into pieces of lines (`lines.segments`), levelled by the slope
left in them (perspective, curl) -> reading order and lines (`order`) -> small marks joined -> paragraphs -> boxes
back in the image's coordinates. Pages above `max_pixels` are analysed shrunk by a whole factor; boxes are in the
original's pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageOps

from . import binarize
from .components import label
from .deskew import Frame, estimate_angle
from .lines import (
    FrameLines,
    build_lines,
    close3,
    fragmented,
    inside_boxes,
    picture_blobs,
    picture_regions,
    remove_rules,
    skew_points,
    text_height,
)

MAX_PIXELS = 12_000_000  # pages above this are analysed shrunk (memory and time stay bounded)

Box = tuple[int, int, int, int]
Quad = tuple[tuple[float, float], tuple[float, float], tuple[float, float], tuple[float, float]]


@dataclass(frozen=True)
class Line:
    """One text line. `box` is axis-aligned in the image's pixels; `quad` its straightened box's corners (top-left,
    top-right, bottom-right, bottom-left, image pixels); `upright` the same box in the page's deskewed frame."""

    box: Box
    quad: Quad
    upright: tuple[float, float, float, float]  # u0, v0, u1, v1 in PageLayout.frame
    baseline: float  # v of the baseline in the frame
    height: float  # usual glyph height (image px)
    block: int  # index into PageLayout.blocks
    area: int  # column-level region (an hOCR ocr_carea)
    inverted: bool  # light text on a dark ground


@dataclass(frozen=True)
class Block:
    """Consecutive lines of one area with even spacing and size (a paragraph or a heading)."""

    box: Box
    lines: tuple[int, ...]  # indices into PageLayout.lines
    area: int


@dataclass(frozen=True)
class PageLayout:
    size: tuple[int, int]  # image width, height
    angle: float  # skew of the lines, degrees counter-clockwise
    frame: Frame  # the upright frame of the image (scale 1)
    lines: tuple[Line, ...] = ()  # reading order
    blocks: tuple[Block, ...] = ()
    text_height: float = 0.0  # usual glyph height on the page (image px)
    info: dict = field(default_factory=dict, compare=False)  # timings and intermediate figures


def _empty(size: tuple[int, int], angle: float = 0.0, h: float = 0.0, info: dict | None = None) -> PageLayout:
    return PageLayout(size, angle, Frame.for_image(size[0], size[1], angle), (), (), h, info or {})


def _working(image: Image.Image, max_pixels: int) -> tuple[np.ndarray, int]:
    """Grey array to analyse and its shrink factor."""
    factor = max(1, math.ceil(math.sqrt(image.width * image.height / max_pixels)))
    if factor > 1:
        image = (
            image.reduce(factor) if image.mode in ("L", "RGB", "RGBA", "LA") else image.convert("RGB").reduce(factor)
        )
    return binarize.grey(image), factor


def find_lines(image: Image.Image, max_pixels: int = MAX_PIXELS) -> PageLayout:
    """Blocks and lines of a page (or of a single line, or of nothing: a blank image gives no lines)."""
    size = image.size
    if min(size) < 4:
        return _empty(size)
    g, factor = _working(image, max_pixels)
    ink = binarize.ink(g)
    comps = label(ink.mask)
    h = text_height(comps, g.shape)
    if h == 0:
        return _empty(size)
    if fragmented(comps, h):  # a harsh scan broke the strokes: mend them before anything is measured
        mask = close3(ink.mask)
        comps = label(mask)
        h = text_height(comps, g.shape) or h
    keep = ~picture_blobs(comps, h) & (comps.area >= max(2.0, 0.015 * h * h))  # specks of noise out
    near = ink.near_table()
    if near.any():
        keep &= ~comps.touching(near)
    pictures = picture_regions(comps, h, ink.regions, ink.tone, max(1, ink.cell // 8)) if ink.inverted.any() else []
    if pictures:  # their own components out of the skew estimate; their boxes (upright) out of everything below
        cy = np.minimum((comps.y0 + comps.y1) // 2, g.shape[0] - 1)
        cx = np.minimum((comps.x0 + comps.x1) // 2, g.shape[1] - 1)
        in_pic = np.isin(ink.regions[cy, cx], [k for k, _, _ in pictures])
        x, y, w = skew_points(comps, h, keep & ~in_pic)
    else:
        x, y, w = skew_points(comps, h, keep)
    angle = estimate_angle(x, y, w, bin_px=max(1.0, h / 10))
    if abs(angle) < 0.05:
        angle = 0.0
    frame = Frame.for_image(g.shape[1], g.shape[0], angle)
    if pictures:
        boxes = []
        for _, px_, py_ in pictures:
            u, v = frame.to_frame(px_, py_)
            boxes.append((u.min(), v.min(), u.max(), v.max()))
        cu, cv = frame.to_frame((comps.x0 + comps.x1) / 2, (comps.y0 + comps.y1) / 2)
        keep &= ~inside_boxes(cu, cv, boxes)
    kept = comps.mask(g.shape, keep)
    if angle:
        upright = np.asarray(frame.warp(Image.fromarray(kept.view(np.uint8) * 255, "L"))) > 127
    else:
        upright = kept
    rule = max(int(8 * h), 24)
    long_side = np.maximum(comps.width, comps.height)[keep]  # rules are long whichever way the page is turned
    if long_side.size and long_side.max() >= rule:
        upright = remove_rules(upright, rule)
    comps = label(upright)
    h = text_height(comps, upright.shape) or h
    found = _drop_cut(build_lines(comps, h, upright.shape), frame, g.shape, h)
    inv_up = None
    if ink.inverted.any():
        inv_img = Image.fromarray(ink.inverted.view(np.uint8) * 255, "L")
        inv_up = np.asarray(frame.warp(inv_img)) > 127 if angle else ink.inverted
    return _to_image(
        size,
        factor,
        frame,
        found,
        h,
        inv_up,
        {"cell": ink.cell, "flow": found.flow, "pieces": found.pieces, "working_frame": frame, "factor": factor},
    )


def _drop_cut(found: FrameLines, frame: Frame, shape: tuple[int, int], h: float) -> FrameLines:
    """Without the lines the image's edge cuts through (glyphs visibly shorter than the page's): they read as
    garbage."""
    keep = []
    for i in range(len(found.area)):
        us = np.array([found.u0[i], found.u1[i], found.u1[i], found.u0[i]])
        vs = np.array([found.top[i], found.top[i], found.bottom[i], found.bottom[i]])
        x, y = frame.to_image(us, vs + found.flow.shift(us, vs))
        at_edge = y.min() <= 1 or y.max() >= shape[0] - 1 or x.min() <= 1 or x.max() >= shape[1] - 1
        keep.append(not (at_edge and found.height[i] < 0.7 * h))
    if all(keep):
        return found
    k = np.array(keep)
    return FrameLines(
        found.u0[k],
        found.u1[k],
        found.top[k],
        found.bottom[k],
        found.baseline[k],
        found.height[k],
        [a for a, ok in zip(found.area, keep, strict=False) if ok],
        found.flow,
        found.pieces,
    )


def _paragraphs(found: FrameLines) -> list[list[int]]:
    """Lines of an area split where the spacing opens up or the size changes."""
    blocks: list[list[int]] = []
    for i in range(len(found.area)):
        if blocks and found.area[blocks[-1][-1]] == found.area[i]:
            prev = blocks[-1][-1]
            same_size = 0.75 < found.height[i] / max(found.height[prev], 1e-6) < 1.33
            pitch = found.baseline[i] - found.baseline[prev]
            gap = found.top[i] - found.bottom[prev]
            typical = [found.baseline[b] - found.baseline[a] for a, b in zip(blocks[-1], blocks[-1][1:], strict=False)]
            usual = float(np.median(typical)) if typical else 2.6 * found.height[prev]
            if same_size and 0 < pitch <= 1.35 * usual + 1 and gap < 1.5 * found.height[prev]:
                blocks[-1].append(i)
                continue
        blocks.append([i])
    return blocks


def _to_image(size, factor, frame: Frame, found: FrameLines, h: float, inv_up, info) -> PageLayout:
    """Lines from the working frame to the original image and its own upright frame."""
    final = Frame.for_image(size[0], size[1], frame.angle)
    blocks = _paragraphs(found)
    block_of = {i: b for b, members in enumerate(blocks) for i in members}
    flow = found.flow
    lines = []
    for i in range(len(found.area)):
        u0, u1, top, bottom = found.u0[i], found.u1[i], found.top[i], found.bottom[i]
        us = np.array([u0, u1, u1, u0])
        vs = np.array([top, top, bottom, bottom])
        vs = vs + flow.shift(us, vs)
        x, y = frame.to_image(us, vs)
        x, y = x * factor, y * factor
        qu, qv = final.to_frame(x, y)
        quad = tuple((round(float(a), 1), round(float(b), 1)) for a, b in zip(x, y, strict=False))
        box = (
            max(0, int(np.floor(x.min()))),
            max(0, int(np.floor(y.min()))),
            min(size[0], int(np.ceil(x.max()))),
            min(size[1], int(np.ceil(y.max()))),
        )
        um = (u0 + u1) / 2
        bx, by = frame.to_image(np.array([um]), np.array([found.baseline[i] + flow.shift(um, found.baseline[i])]))
        _, base_v = final.to_frame(bx * factor, by * factor)
        inverted = False
        if inv_up is not None:
            r0, r1 = int(max(0, top + flow.shift(um, top))), int(min(inv_up.shape[0], bottom + flow.shift(um, bottom)))
            c0, c1 = int(max(0, u0)), int(min(inv_up.shape[1], u1))
            inverted = bool(r1 > r0 and c1 > c0 and inv_up[r0:r1, c0:c1].mean() > 0.5)
        lines.append(
            Line(
                box,
                quad,
                (float(qu.min()), float(qv.min()), float(qu.max()), float(qv.max())),
                float(base_v[0]),
                float(found.height[i] * factor),
                block_of[i],
                int(found.area[i]),
                inverted,
            )
        )
    out_blocks = []
    for members in blocks:
        bb = np.array([lines[i].box for i in members])
        out_blocks.append(
            Block(
                (int(bb[:, 0].min()), int(bb[:, 1].min()), int(bb[:, 2].max()), int(bb[:, 3].max())),
                tuple(members),
                lines[members[0]].area,
            )
        )
    return PageLayout(size, frame.angle, final, tuple(lines), tuple(out_blocks), h * factor, info)


def cut_line(image: Image.Image, line: Line, pad: float = 0.3, upright: bool = True) -> Image.Image:
    """The line's image, straightened along its quad, with `pad` x its glyph height of margin all round;
    light-on-dark lines are turned to dark-on-light when `upright`."""
    (x0, y0), (x1, y1), _, (x3, y3) = line.quad
    a = math.radians(_quad_angle(line.quad))
    c, s = math.cos(a), math.sin(a)  # along the line: (c, -s) in image pixels; across it, downwards: (s, c)
    length = math.hypot(x1 - x0, y1 - y0)
    height = (x3 - x0) * s + (y3 - y0) * c
    p = pad * line.height
    ox, oy = x0 - p * c - p * s, y0 + p * s - p * c  # the top-left corner moved out by the margin
    w, h = max(1, round(length + 2 * p)), max(1, round(height + 2 * p))
    if image.mode not in ("L", "RGB"):
        image = image.convert("L") if image.mode in ("1", "I", "I;16", "F") else image.convert("RGB")
    dark = line.inverted
    fill = (0 if dark else 255) if image.mode == "L" else ((0, 0, 0) if dark else (255, 255, 255))
    out = image.transform((w, h), Image.AFFINE, (c, s, ox, -s, c, oy), Image.BICUBIC, fillcolor=fill)
    return ImageOps.invert(out) if (dark and upright) else out


def _quad_angle(quad: Quad) -> float:
    (x0, y0), (x1, y1) = quad[0], quad[1]
    return math.degrees(math.atan2(-(y1 - y0), x1 - x0))


def decide_layout(image: Image.Image, layout: PageLayout | None = None) -> str:
    """ "line" when the image is one text line (its lines side by side, nearly filling its height), else "page"
    (a blank image is a page: it reads as nothing)."""
    layout = layout or find_lines(image)
    if not layout.lines:
        return "page"
    tops = [ln.upright[1] for ln in layout.lines]
    bottoms = [ln.upright[3] for ln in layout.lines]
    one_band = max(tops) < min(bottoms)  # every line overlaps every other vertically
    tallest = max(b - t for t, b in zip(tops, bottoms, strict=False))
    return "line" if one_band and image.height <= 3.0 * tallest else "page"
