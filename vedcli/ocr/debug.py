"""The debug drawing (`--debug-layout out.png`): the page with its found blocks and lines, so a user sees what
line finding did: each line's straightened box (a colour per area, i.e. column), its reading-order number, and each
block's box; light-on-dark lines dashed."""

from __future__ import annotations

from PIL import Image, ImageDraw, ImageFont

from .layout import PageLayout

COLOURS = [
    (230, 25, 75),
    (60, 180, 75),
    (0, 130, 200),
    (245, 130, 48),
    (145, 30, 180),
    (70, 240, 240),
    (240, 50, 230),
    (128, 128, 0),
    (0, 128, 128),
    (170, 110, 40),
]


def draw_layout(image: Image.Image, layout: PageLayout) -> Image.Image:
    """An RGB copy of the page (same size) with the layout drawn on it."""
    out = image.convert("RGB")
    # washed out so the boxes stand out
    out = Image.blend(out, Image.new("RGB", out.size, (255, 255, 255)), 0.35)
    draw = ImageDraw.Draw(out)
    width = max(1, round(max(out.size) / 800))
    for block in layout.blocks:
        x0, y0, x1, y1 = block.box
        pad = 2 * width
        draw.rectangle([x0 - pad, y0 - pad, x1 + pad, y1 + pad], outline=(150, 150, 150), width=width)
    size = max(10, round(max(out.size) / 90))
    try:
        font = ImageFont.load_default(size)
    except TypeError:  # Pillow without FreeType sizes
        font = ImageFont.load_default()
    for n, line in enumerate(layout.lines):
        colour = COLOURS[line.area % len(COLOURS)]
        points = [*line.quad, line.quad[0]]
        if line.inverted:
            for a, b in zip(points, points[1:], strict=False):
                _dashed(draw, a, b, colour, width)
        else:
            draw.line(points, fill=colour, width=width)
        x, y = line.quad[0]
        draw.text((x - width, y), str(n + 1), fill=colour, font=font, anchor="rs")
    return out


def _dashed(draw: ImageDraw.ImageDraw, a, b, colour, width: int) -> None:
    (x0, y0), (x1, y1) = a, b
    length = max(1.0, ((x1 - x0) ** 2 + (y1 - y0) ** 2) ** 0.5)
    step = 6 * width
    t = 0.0
    while t < length:
        t1 = min(length, t + step / 2)
        draw.line(
            [
                (x0 + (x1 - x0) * t / length, y0 + (y1 - y0) * t / length),
                (x0 + (x1 - x0) * t1 / length, y0 + (y1 - y0) * t1 / length),
            ],
            fill=colour,
            width=width,
        )
        t += step
