"""One synthetic text line: a font from Debian's packages, drawn on paper, then degraded as scanners, copiers and
phone cameras degrade print.

`render_line(text, font_path, rng)` -> (PIL image, target text). Everything random comes from the `numpy` Generator
passed in, so a line is a pure function of (text, font, seed).
"""

from __future__ import annotations

import glob
import io
import os
from functools import lru_cache

import numpy as np
from corpus import TYPOGRAPHIC
from PIL import Image, ImageDraw, ImageFilter, ImageFont, ImageOps

# Font families by how often they are drawn: the Times / Helvetica / Courier look-alikes dominate real documents.
# (glob under the Debian font folders, weight); Makefile `reader-fonts` installs the packages.
FONT_GLOBS = [
    ("opentype/urw-base35/NimbusRoman-*.otf", 6),
    ("truetype/liberation/LiberationSerif-*.ttf", 5),
    ("texmf/fonts/opentype/public/tex-gyre/texgyretermes-*.otf", 4),
    ("truetype/freefont/FreeSerif*.ttf", 3),
    ("opentype/urw-base35/NimbusSans-*.otf", 4),
    ("truetype/liberation/LiberationSans-*.ttf", 4),
    ("texmf/fonts/opentype/public/tex-gyre/texgyreheros-*.otf", 2),
    ("truetype/freefont/FreeSans*.ttf", 2),
    ("opentype/urw-base35/NimbusSansNarrow-*.otf", 1),
    ("truetype/liberation/LiberationSansNarrow-*.ttf", 1),
    ("opentype/urw-base35/NimbusMonoPS-*.otf", 2),
    ("truetype/liberation/LiberationMono-*.ttf", 2),
    ("truetype/freefont/FreeMono*.ttf", 1),
    ("texmf/fonts/opentype/public/tex-gyre/texgyrecursor-*.otf", 1),
    ("truetype/dejavu/DejaVuSerif*.ttf", 2),
    ("truetype/dejavu/DejaVuSans*.ttf", 2),
    ("truetype/noto/NotoSerif-*.ttf", 2),
    ("truetype/noto/NotoSans-*.ttf", 2),
    ("truetype/roboto/unhinted/RobotoTTF/Roboto-*.ttf", 1),
    ("truetype/roboto/unhinted/RobotoCondensed-*.ttf", 1),
    ("truetype/crosextra/Carlito-*.ttf", 2),
    ("truetype/crosextra/Caladea-*.ttf", 2),
    ("opentype/urw-base35/C059-*.otf", 2),
    ("opentype/urw-base35/P052-*.otf", 2),
    ("opentype/urw-base35/URWBookman-*.otf", 1),
    ("opentype/urw-base35/URWGothic-*.otf", 1),
    ("texmf/fonts/opentype/public/tex-gyre/texgyrepagella-*.otf", 1),
    ("texmf/fonts/opentype/public/tex-gyre/texgyreschola-*.otf", 1),
    ("texmf/fonts/opentype/public/tex-gyre/texgyrebonum-*.otf", 1),
]
# where the globs are looked for; READER_FONT_ROOTS (folders joined by ":") names others, e.g. fonts unpacked on a
# machine where nothing can be installed (gpu_train.sh)
DEFAULT_FONT_ROOTS = ("/usr/share/fonts", "/usr/share")
FONT_ROOTS = tuple(filter(None, os.environ.get("READER_FONT_ROOTS", "").split(":"))) or DEFAULT_FONT_ROOTS
MAX_HEIGHT = 64  # stored lines are at most this high


def find_fonts() -> list[tuple[str, float]]:
    """(font file, weight) for every installed font of FONT_GLOBS, sorted, so draws are reproducible."""
    fonts: list[tuple[str, float]] = []
    for pattern, weight in FONT_GLOBS:
        files = sorted({f for root in FONT_ROOTS for f in glob.glob(os.path.join(root, pattern))})
        files = [f for f in files if "-math" not in f.lower()]
        fonts += [(f, weight / len(files)) for f in files]
    return fonts


@lru_cache(maxsize=512)
def _font(path: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, size)


@lru_cache(maxsize=64)
def _missing(path: str) -> frozenset[str]:
    """Characters the font has no glyph for (PIL would draw the .notdef box)."""
    from corpus import CHARSET

    font = _font(path, 24)

    def glyph(ch: str) -> tuple:
        mask = font.getmask(ch)
        return mask.size, tuple(mask.getpixel((x, y)) for y in range(mask.size[1]) for x in range(mask.size[0]))

    notdef = glyph("\uffff")
    return frozenset(ch for ch in CHARSET if ch != " " and glyph(ch) == notdef)


def _typographic(text: str, rng: np.random.Generator) -> str:
    """The glyphs to draw for `text`: sometimes curly quotes where the target has straight ones."""
    if rng.random() < 0.5:
        return text
    out = []
    opening = True
    for ch in text:
        if ch in TYPOGRAPHIC and rng.random() < 0.9:
            forms = TYPOGRAPHIC[ch]
            out.append(forms[0] if opening else forms[1])
            opening = not opening if ch == '"' else opening
        else:
            out.append(ch)
    return "".join(out)


def _spacing(drawn: str, font: ImageFont.FreeTypeFont, rng: np.random.Generator) -> list[float] | None:
    """Extra pixels after each word of `drawn` (split at single spaces), or None to draw it as set: justified lines
    (every gap widened alike) and tab stops (a number or label, then a wide gap: "2.2      Approach", table columns).
    The target keeps one space per gap, as ground truth of scanned pages does."""
    gaps = drawn.count(" ")
    if gaps == 0 or "  " in drawn:
        return None
    space, size = font.getlength(" "), font.size
    style = rng.random()
    if style < 0.07:  # justified: all gaps a little or much wider
        factor = rng.uniform(0.3, 2.5)
        return [space * factor * rng.uniform(0.8, 1.2) for _ in range(gaps)]
    if style < 0.14:  # one or two tab stops
        extra = [0.0] * gaps
        for gap in rng.choice(gaps, size=min(gaps, int(rng.integers(1, 3))), replace=False):
            extra[int(gap)] = size * rng.uniform(1.0, 8.0)
        return extra
    return None


def _draw_words(draw: ImageDraw.ImageDraw, xy: tuple[float, float], drawn: str, extra: list[float], font, stroke: int):
    x, y = xy
    for word, more in zip(drawn.split(" "), [*extra, 0.0], strict=True):
        draw.text((x, y), word, font=font, fill=0, stroke_width=stroke, stroke_fill=0)
        x += font.getlength(word + " ") + more


def render_line(text: str, font_path: str, rng: np.random.Generator) -> tuple[Image.Image, str]:
    """Draw `text` and degrade it; returns the image and the text it shows (characters the font lacks removed)."""
    missing = _missing(font_path)
    text = "".join(ch for ch in text if ch not in missing).strip() or "0"
    drawn = _typographic(text, rng)
    size = int(rng.choice([rng.integers(14, 30), rng.integers(30, 64)], p=[0.55, 0.45]))
    font = _font(font_path, size)
    stroke = 1 if (size > 26 and rng.random() < 0.1) else 0
    left, top, right, bottom = font.getbbox(drawn, stroke_width=stroke)
    ascent, descent = font.getmetrics()
    extra = _spacing(drawn, font, rng)
    width = right - left + int(sum(extra or []))
    line_h = ascent + descent
    # margins: tight crops (glyphs cut at the edge) to loose ones
    pad_x = [int(line_h * rng.uniform(-0.05, 0.6)) for _ in range(2)]
    pad_y = [int(line_h * rng.uniform(-0.08, 0.35)) for _ in range(2)]
    w = max(8, width + pad_x[0] + pad_x[1])
    h = max(8, line_h + pad_y[0] + pad_y[1])
    inverted = rng.random() < 0.06
    ink, paper = _colours(rng)
    canvas = Image.new("L", (w, h), 255)
    draw = ImageDraw.Draw(canvas)
    if extra is None:
        draw.text((pad_x[0] - left, pad_y[0]), drawn, font=font, fill=0, stroke_width=stroke, stroke_fill=0)
    else:
        _draw_words(draw, (pad_x[0] - left, pad_y[0]), drawn, extra, font, stroke)
    if rng.random() < 0.04:  # a rule or underline touching the line
        y = int(rng.uniform(0.8, 1.0) * h) - 1
        draw.line([(0, y), (w, y)], fill=0, width=max(1, size // 16))
    image = _geometry(canvas, rng)
    image = _strokes(image, rng, size)
    arr = np.asarray(image, dtype=np.float32) / 255.0  # 1 paper, 0 ink
    if inverted:
        ink, paper = paper, ink
    style = rng.random()
    if style < 0.35:
        out = _scan(arr, rng)  # binarised 300 dpi scan, grey
        out = ImageOps.invert(out) if inverted else out
    else:
        out = _photo(arr, ink, paper, rng)  # colour, light, blur, noise, JPEG
    if out.height > MAX_HEIGHT:  # the reader sees lines 32 px high: keep the stored files small
        out = out.resize((max(1, round(out.width * MAX_HEIGHT / out.height)), MAX_HEIGHT), Image.BILINEAR)
    return out, " ".join(text.split())  # runs of spaces are drawn as wide gaps; the target has one space for each


def _colours(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    if rng.random() < 0.7:
        ink = np.full(3, rng.uniform(0, 0.25))
        paper = np.full(3, rng.uniform(0.8, 1.0))
    else:
        ink = rng.uniform(0, 0.45, 3)
        paper = rng.uniform(0.65, 1.0, 3)
    return ink, paper


def _geometry(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Slight rotation, shear and a vertical wave (page curl)."""
    w, h = image.size
    if rng.random() < 0.5:
        shear = rng.uniform(-0.25, 0.25) if rng.random() < 0.3 else 0.0
        angle = rng.normal(0, 0.6)
        image = image.transform(
            (w, h), Image.AFFINE, (1, shear, -shear * h / 2, 0, 1, 0), Image.BILINEAR, fillcolor=255
        )
        image = image.rotate(angle, Image.BILINEAR, expand=False, fillcolor=255)
    if rng.random() < 0.15:
        arr = np.asarray(image, dtype=np.float32)
        amp = rng.uniform(0.5, 0.06 * h)
        period = rng.uniform(0.5, 2.0) * w
        phase = rng.uniform(0, 2 * np.pi)
        shifts = amp * np.sin(2 * np.pi * np.arange(w) / period + phase)
        ys = np.clip(np.arange(h)[:, None] - shifts[None, :], 0, h - 1)
        y0 = np.floor(ys).astype(int)
        y1 = np.minimum(y0 + 1, h - 1)
        frac = ys - y0
        cols = np.arange(w)[None, :]
        arr = arr[y0, cols] * (1 - frac) + arr[y1, cols] * frac
        image = Image.fromarray(arr.clip(0, 255).astype(np.uint8))
    return image


def _strokes(image: Image.Image, rng: np.random.Generator, size: int) -> Image.Image:
    """Bold (touching glyphs) or thin (broken glyphs) strokes."""
    r = rng.random()
    if r < 0.12 and size >= 18:
        return image.filter(ImageFilter.MinFilter(3))  # ink spreads
    if r < 0.22 and size >= 24:
        return image.filter(ImageFilter.MaxFilter(3))  # ink thins, glyphs break
    return image


def _scan(arr: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """A binarised scan: smudge, threshold with a little noise, specks; sometimes at lower resolution."""
    h, w = arr.shape
    if rng.random() < 0.5:
        image = Image.fromarray((arr * 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.2)))
        arr = np.asarray(image, dtype=np.float32) / 255
    arr = arr + rng.normal(0, rng.uniform(0, 0.12), arr.shape)
    binary = (arr > rng.uniform(0.35, 0.65)).astype(np.float32)
    if rng.random() < 0.3:  # specks of dust and dropouts
        specks = rng.random(arr.shape) < rng.uniform(0.0005, 0.004)
        binary[specks] = 1 - binary[specks]
    out = Image.fromarray((binary * 255).astype(np.uint8))
    if rng.random() < 0.3:
        scale = rng.uniform(0.5, 0.9)
        small = out.resize((max(4, int(w * scale)), max(4, int(h * scale))), Image.BILINEAR)
        out = small if rng.random() < 0.5 else small.resize((w, h), Image.BILINEAR)
    return out.convert("RGB") if rng.random() < 0.2 else out


def _photo(arr: np.ndarray, ink: np.ndarray, paper: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """A photo or a grey scan: coloured ink on paper, uneven light, blur, noise, JPEG."""
    h, w = arr.shape
    rgb = ink[None, None, :] + (paper - ink)[None, None, :] * arr[:, :, None]
    if rng.random() < 0.5:  # uneven light: a gradient across the line
        gx = np.linspace(0, 1, w)[None, :, None]
        gy = np.linspace(0, 1, h)[:, None, None]
        light = 1 - rng.uniform(0, 0.45) * (rng.uniform(0, 1) * gx + rng.uniform(0, 1) * gy) / 1.5
        rgb = rgb * light
    rgb = rgb + rng.normal(0, rng.uniform(0, 0.06), rgb.shape)
    image = Image.fromarray((rgb.clip(0, 1) * 255).astype(np.uint8), "RGB")
    if rng.random() < 0.5:
        image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.2, 1.4)))
    if rng.random() < 0.25:
        scale = rng.uniform(0.45, 0.9)
        image = image.resize((max(4, int(w * scale)), max(4, int(h * scale))), Image.BILINEAR)
    if rng.random() < 0.5:
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=int(rng.integers(20, 90)))
        image = Image.open(io.BytesIO(buffer.getvalue()))
        image.load()
    if rng.random() < 0.5:
        image = image.convert("L")
    return image
