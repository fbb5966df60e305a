"""Synthetic pages with known text and line boxes, for testing and measuring line finding (`vedcli.ocr`):

    python recipes/pages/make_pages.py OUT --count 50 --seed 1

writes OUT/0000.png + OUT/0000.json, ... Page i is a pure function of (seed, i), the installed fonts and the text.
A page has 1-3 columns, sometimes a title over all columns, sub-headings, small print, rules (some touching a line),
a picture block (a caption close under it), an inverted block (white text on a dark box); justified or ragged text.
Then it is either scanned (light skew, grey or binarised, noise) or photographed (skew up to +-10 degrees, slight
perspective, curl, uneven light with a shadow, dark margins of the table around the page, blur, noise, JPEG).

The truth (`.json`): `size`, `homography` (3x3, upright page -> image), `lines` in reading order (columns left to
right, lines top to bottom) each with `text`, `box` (x0, y0, x1, y1 on the upright page), `quad` (its four corners in
the image, clockwise from top-left), `block`, `size` (font px), and on a binarised scan `survival` (the share of the
line's stroke pixels the threshold kept) and `legible` (survival >= LEGIBLE: below it the line is dust that neither a
person nor tesseract reads); `kind` and the options drawn.
Fonts and text come from recipes/printed (`render.find_fonts`, `corpus.build_corpus`), as make_lines.py uses them.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "printed"))

from corpus import LineSampler, build_corpus  # noqa: E402
from render import _missing, find_fonts  # noqa: E402

LEGIBLE = 0.5  # a binarised line whose threshold kept less of its strokes than this is dust, not text

FALLBACK_FONTS = ["/usr/share/fonts/truetype/dejavu/DejaVuSerif.ttf", "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"]


def available_fonts() -> list[tuple[str, float]]:
    fonts = find_fonts()
    if not fonts:
        fonts = [(f, 1.0) for f in FALLBACK_FONTS if Path(f).exists()]
    return fonts


@dataclass
class Options:
    """What a page holds; None = drawn at random."""

    width: int | None = None  # pixels; height is width * 1.41
    columns: int | None = None
    heading: bool | None = None  # a title over all columns
    subheadings: bool | None = None
    small_print: bool | None = None
    rules: bool | None = None
    picture: bool | None = None
    inverted: bool | None = None
    justified: bool | None = None
    photo: bool | None = None  # photographed (else scanned)
    binarise: bool | None = None  # a scan put through a hard threshold (drawn: 30% of scans)
    skew: float | None = None  # degrees, + counter-clockwise
    body_size: int | None = None  # font px
    font: str | None = None  # font file for all text


@dataclass
class _Page:
    canvas: Image.Image
    draw: ImageDraw.ImageDraw
    lines: list[dict] = field(default_factory=list)
    block: int = 0


def _pick(value, draw):
    return draw() if value is None else value


class _Writer:
    """Lays text into a column: greedy line breaking, ragged or justified."""

    def __init__(
        self,
        page: _Page,
        rng: np.random.Generator,
        fonts: list[str],
        weights: np.ndarray,
        sampler: LineSampler,
        fixed_font: str | None,
    ):
        self.page, self.rng, self.fonts, self.weights = page, rng, fonts, weights
        self.sampler, self.fixed_font = sampler, fixed_font

    def font_path(self) -> str:
        if self.fixed_font:
            return self.fixed_font
        return self.fonts[int(self.rng.choice(len(self.fonts), p=self.weights))]

    def words(self, path: str, count: int) -> list[str]:
        missing = _missing(path) if path in {f for f in self.fonts} else frozenset()
        out: list[str] = []
        while len(out) < count:
            text = self.sampler.prose(200) if self.rng.random() < 0.9 else self.sampler.line(80)
            out += ["".join(ch for ch in w if ch not in missing) for w in text.split()]
            out = [w for w in out if w]
        return out[:count]

    def paragraph(
        self,
        x0: int,
        x1: int,
        y: int,
        y_max: int,
        size: int,
        path: str,
        n_lines: int,
        justified: bool,
        fill: int = 0,
        centred: bool = False,
    ) -> int:
        """Lays up to n_lines lines from y; returns the y after the last line (or y if none fitted)."""
        font = ImageFont.truetype(path, size)
        ascent, descent = font.getmetrics()
        leading = int(round((ascent + descent) * self.rng.uniform(1.05, 1.3)))
        words = self.words(path, n_lines * 20)
        space = font.getlength(" ")
        placed = 0
        while placed < n_lines and words and y + ascent + descent <= y_max:
            line: list[str] = []
            width = 0.0
            while words:
                w = font.getlength(words[0])
                if line and width + space + w > x1 - x0:
                    break
                if not line and w > x1 - x0:  # a word longer than the column: cut it
                    words.pop(0)
                    continue
                width += (space if line else 0) + w
                line.append(words.pop(0))
            if not line:
                break
            last = placed == n_lines - 1 or not words
            self.line(line, x0, x1, y, font, justified and not last and len(line) > 1, fill, centred, size)
            y += leading
            placed += 1
        self.page.block += 1
        return y

    def line(
        self, words: list[str], x0: int, x1: int, y: int, font, justified: bool, fill: int, centred: bool, size: int
    ) -> None:
        draw = self.page.draw
        if justified:
            widths = [font.getlength(w) for w in words]
            gap = (x1 - x0 - sum(widths)) / (len(words) - 1)
            x = float(x0)
            boxes = []
            for w, wd in zip(words, widths, strict=False):
                draw.text((round(x), y), w, font=font, fill=fill)
                boxes.append(draw.textbbox((round(x), y), w, font=font))
                x += wd + gap
            box = [
                min(b[0] for b in boxes),
                min(b[1] for b in boxes),
                max(b[2] for b in boxes),
                max(b[3] for b in boxes),
            ]
        else:
            text = " ".join(words)
            x = x0 + (x1 - x0 - font.getlength(text)) / 2 if centred else x0
            draw.text((round(x), y), text, font=font, fill=fill)
            box = list(draw.textbbox((round(x), y), text, font=font))
        self.page.lines.append(
            {"text": " ".join(words), "box": [int(v) for v in box], "block": self.page.block, "size": size}
        )


def _picture(rng: np.random.Generator, w: int, h: int) -> Image.Image:
    """A photo-like grey picture: a smooth random field, some shapes, texture."""
    small = rng.uniform(40, 220, (4, 4)).astype(np.float32)
    field_ = np.asarray(Image.fromarray(small, "F").resize((w, h), Image.BICUBIC))
    img = Image.fromarray(np.clip(field_, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(2, 7))):
        a, b = rng.uniform(0, w, 2), rng.uniform(0, h, 2)
        box = [min(a), min(b), max(a) + 5, max(b) + 5]
        shade = int(rng.uniform(10, 245))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=shade)
    arr = np.asarray(img, dtype=np.float32) + rng.normal(0, rng.uniform(3, 15), (h, w))
    out = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 2)))
    ImageDraw.Draw(out).rectangle([0, 0, w - 1, h - 1], outline=0, width=int(rng.integers(0, 3)))
    return out


def _layout(
    rng: np.random.Generator, opts: Options, fonts: list[tuple[str, float]], sampler: LineSampler
) -> tuple[Image.Image, list[dict], dict]:
    W = int(_pick(opts.width, lambda: int(rng.integers(1100, 2000))))
    H = int(round(W * 1.414))
    canvas = Image.new("L", (W, H), 255)
    page = _Page(canvas, ImageDraw.Draw(canvas))
    paths = [f for f, _ in fonts]
    weights = np.array([w for _, w in fonts], dtype=np.float64)
    weights /= weights.sum()
    writer = _Writer(page, rng, paths, weights, sampler, opts.font)
    n_cols = int(_pick(opts.columns, lambda: int(rng.choice([1, 2, 3], p=[0.4, 0.4, 0.2]))))
    mx, my = int(W * rng.uniform(0.05, 0.1)), int(H * rng.uniform(0.04, 0.08))
    cpl = rng.uniform(45, 80) if n_cols > 1 else rng.uniform(60, 100)  # characters per column line
    gutter_em = rng.uniform(1.5, 3.0)
    body = opts.body_size or int(max(9, (W - 2 * mx) / (n_cols * cpl * 0.5 + (n_cols - 1) * gutter_em)))
    gutter = int(gutter_em * body)
    col_w = (W - 2 * mx - (n_cols - 1) * gutter) // n_cols
    justified = bool(_pick(opts.justified, lambda: rng.random() < 0.5))
    drawn = {
        "columns": n_cols,
        "body": body,
        "justified": justified,
        "heading": bool(_pick(opts.heading, lambda: rng.random() < 0.7)),
        "subheadings": bool(_pick(opts.subheadings, lambda: rng.random() < 0.5)),
        "small_print": bool(_pick(opts.small_print, lambda: rng.random() < 0.4)),
        "rules": bool(_pick(opts.rules, lambda: rng.random() < 0.4)),
        "picture": bool(_pick(opts.picture, lambda: rng.random() < 0.35)),
        "inverted": bool(_pick(opts.inverted, lambda: rng.random() < 0.25)),
    }
    body_font = writer.font_path()
    y = my
    if drawn["heading"]:
        size = int(body * rng.uniform(1.6, 2.6))
        y = writer.paragraph(
            mx, W - mx, y, H - my, size, writer.font_path(), int(rng.integers(1, 3)), False, centred=rng.random() < 0.5
        )
        y += int(body * rng.uniform(0.8, 2.0))
    top = y
    picture_col = int(rng.integers(n_cols)) if drawn["picture"] else -1
    inverted_col = int(rng.integers(n_cols)) if drawn["inverted"] else -1
    for c in range(n_cols):
        x0 = mx + c * (col_w + gutter)
        x1 = x0 + col_w
        y = top
        items = 0
        while y < H - my - body * 2:
            r = rng.random()
            if c == picture_col and items == 1:
                ph = int(min(col_w * rng.uniform(0.4, 0.8), H - my - y - body * 3))
                if ph > body * 3:
                    page.canvas.paste(_picture(rng, col_w, ph), (x0, y))
                    y += ph + int(body * rng.choice([0.0, 0.15, 0.4]))  # the caption close under it, or touching
                    y = writer.paragraph(x0, x1, y, H - my, max(8, int(body * 0.8)), body_font, 1, False)
                    y += body
                    picture_col = -1
            elif c == inverted_col and items == 2:
                pad = int(body * rng.uniform(0.4, 1.0))
                n = int(rng.integers(2, 5))
                font = ImageFont.truetype(body_font, body)
                bh = 2 * pad + int(sum(font.getmetrics()) * 1.3 * n)
                if y + bh < H - my:
                    page.draw.rectangle([x0, y, x1, y + bh], fill=int(rng.integers(0, 70)))
                    writer.paragraph(
                        x0 + pad,
                        x1 - pad,
                        y + pad,
                        y + bh - pad // 2,
                        body,
                        body_font,
                        n,
                        justified,
                        fill=int(rng.integers(200, 256)),
                    )
                    y += bh + body
                inverted_col = -1
            elif drawn["subheadings"] and r < 0.2 and items > 0:
                y += int(body * 0.5)
                y = writer.paragraph(
                    x0, x1, y, H - my, int(body * rng.uniform(1.15, 1.5)), writer.font_path(), 1, False
                )
                y += int(body * 0.3)
            elif drawn["rules"] and r < 0.35:
                thick = int(rng.integers(1, 4))
                if page.lines and rng.random() < 0.5 and page.lines[-1]["box"][0] >= x0 - 1 and items > 0:
                    ry = page.lines[-1]["box"][3] - thick  # touching the line above (its descenders)
                    page.draw.rectangle([x0, ry, x1, ry + thick - 1], fill=0)
                    y += int(body * 0.6)
                else:
                    page.draw.rectangle([x0, y + body // 2, x1, y + body // 2 + thick - 1], fill=0)
                    y += body + thick
            elif drawn["small_print"] and r < 0.5:
                y = writer.paragraph(
                    x0,
                    x1,
                    y,
                    H - my,
                    max(8, int(body * rng.uniform(0.6, 0.8))),
                    body_font,
                    int(rng.integers(2, 6)),
                    justified,
                )
                y += int(body * 0.6)
            else:
                y = writer.paragraph(x0, x1, y, H - my, body, body_font, int(rng.integers(3, 12)), justified)
                y += int(body * rng.uniform(0.4, 1.2))
            items += 1
    return canvas, page.lines, drawn


def _homography(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """3x3 H with H @ [x, y, 1] ~ dst for four point pairs."""
    rows, rhs = [], []
    for (x, y), (u, v) in zip(src, dst, strict=False):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        rhs += [u, v]
    h = np.linalg.solve(np.array(rows, dtype=np.float64), np.array(rhs, dtype=np.float64))
    return np.append(h, 1.0).reshape(3, 3)


def _apply(hm: np.ndarray, pts: np.ndarray) -> np.ndarray:
    p = np.c_[pts, np.ones(len(pts))] @ hm.T
    return p[:, :2] / p[:, 2:]


def _degrade(
    rng: np.random.Generator, canvas: Image.Image, photo: bool, skew: float, binarise: bool | None = None
) -> tuple[Image.Image, np.ndarray, dict]:
    W, H = canvas.size
    corners = np.array([[0, 0], [W, 0], [W, H], [0, H]], dtype=np.float64)
    t = np.deg2rad(skew)
    rot = np.array([[np.cos(t), np.sin(t)], [-np.sin(t), np.cos(t)]])  # + = counter-clockwise on screen
    moved = (corners - [W / 2, H / 2]) @ rot.T
    info: dict = {}
    if photo:
        moved += rng.uniform(-0.015, 0.015, moved.shape) * W  # slight perspective
    margin = int(W * rng.uniform(0.02, 0.08)) if photo else 4
    moved -= moved.min(axis=0) - margin
    out_w, out_h = (moved.max(axis=0) + margin).astype(int)
    hm = _homography(corners, moved)
    inv = np.linalg.inv(hm)
    coeffs = (inv / inv[2, 2]).ravel()[:8]
    table = int(rng.integers(10, 90)) if photo else 255
    page = canvas.transform((int(out_w), int(out_h)), Image.PERSPECTIVE, tuple(coeffs), Image.BILINEAR, fillcolor=table)
    # where the page is (the rest is table / scanner lid)
    inside = Image.new("L", canvas.size, 255).transform(
        page.size, Image.PERSPECTIVE, tuple(coeffs), Image.BILINEAR, fillcolor=0
    )
    arr = np.asarray(page, dtype=np.float32) / 255.0
    on_page = np.asarray(inside, dtype=np.float32) / 255.0
    h, w = arr.shape
    if photo:
        ink, paper = rng.uniform(0.0, 0.3), rng.uniform(0.7, 1.0)
        arr = ink + (paper - ink) * arr
        arr = arr * on_page + (table / 255.0) * (1 - on_page)
        if rng.random() < 0.6:  # curl: the page bulges, lines bend
            amp = rng.uniform(0.002, 0.006) * h
            phase = rng.uniform(-0.5, 0.5)
            xs = np.arange(w)
            shift = amp * np.sin(np.pi * xs / w + phase)
            ys = np.clip(np.arange(h)[:, None] - shift[None, :], 0, h - 1)
            y0 = np.floor(ys).astype(int)
            y1 = np.minimum(y0 + 1, h - 1)
            f = ys - y0
            arr = arr[y0, xs] * (1 - f) + arr[y1, xs] * f
            info["curl"] = {"amp": float(amp), "phase": float(phase), "width": w}  # y += amp sin(pi x / width + phase)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        light = 1 - rng.uniform(0.1, 0.45) * (rng.uniform(-1, 1) * xx / w + rng.uniform(-1, 1) * yy / h) ** 2
        vignette = 1 - rng.uniform(0, 0.35) * (((xx - w / 2) / w) ** 2 + ((yy - h / 2) / h) ** 2) * 2
        light = light * vignette
        if rng.random() < 0.7:  # a shadow (hand, phone) with a soft edge
            shadow = Image.new("L", (w, h), 0)
            cx, cy = rng.uniform(0, w), rng.uniform(0, h)
            r = rng.uniform(0.2, 0.5) * w
            ImageDraw.Draw(shadow).ellipse([cx - r, cy - r * 1.5, cx + r, cy + r * 1.5], fill=255)
            soft = np.asarray(shadow.filter(ImageFilter.GaussianBlur(rng.uniform(5, 0.05 * w))), dtype=np.float32)
            light = light * (1 - rng.uniform(0.2, 0.5) * soft / 255)
        arr = arr * light
        arr = arr + rng.normal(0, rng.uniform(0.005, 0.04), arr.shape)
        rgb = np.stack([arr * rng.uniform(0.9, 1.0), arr * rng.uniform(0.9, 1.0), arr * rng.uniform(0.85, 1.0)], -1)
        image = Image.fromarray((rgb.clip(0, 1) * 255).astype(np.uint8), "RGB")
        image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.2)))
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=int(rng.integers(40, 92)))
        image = Image.open(io.BytesIO(buffer.getvalue()))
        image.load()
    else:
        clean = arr < 0.5  # the strokes before the scanner's noise and threshold
        arr = arr + rng.normal(0, rng.uniform(0, 0.06), arr.shape)
        if (rng.random() < 0.3) if binarise is None else binarise:
            arr = (arr > rng.uniform(0.4, 0.6)).astype(np.float32)
            info["binarised"] = True
            info["_strokes"] = (clean, arr < 0.5)
        image = Image.fromarray((arr.clip(0, 1) * 255).astype(np.uint8))
    return image, hm, info


def _survival(strokes: tuple[np.ndarray, np.ndarray], quad: np.ndarray) -> float:
    """Share of a line's stroke pixels (inside its quad's box) that the threshold kept."""
    clean, kept = strokes
    x0, y0 = np.floor(quad.min(axis=0)).astype(int)
    x1, y1 = np.ceil(quad.max(axis=0)).astype(int)
    box = (slice(max(0, y0), max(0, y1)), slice(max(0, x0), max(0, x1)))
    total = int(clean[box].sum())
    return float((clean[box] & kept[box]).sum() / total) if total else 1.0


def make_page(
    seed: int, paragraphs: list[str], fonts: list[tuple[str, float]] | None = None, options: Options | None = None
) -> tuple[Image.Image, dict]:
    """(page image, truth); a pure function of its arguments."""
    rng = np.random.default_rng(seed)
    opts = options or Options()
    fonts = fonts or available_fonts()
    sampler = LineSampler(paragraphs, random.Random(int(rng.integers(2**63))))
    canvas, lines, drawn = _layout(rng, opts, fonts, sampler)
    photo = bool(_pick(opts.photo, lambda: rng.random() < 0.5))
    skew = float(
        _pick(opts.skew, lambda: rng.uniform(-10, 10) if (photo or rng.random() < 0.3) else rng.normal(0, 0.7))
    )
    image, hm, info = _degrade(rng, canvas, photo, skew, opts.binarise)
    strokes = info.pop("_strokes", None)
    for line in lines:
        x0, y0, x1, y1 = line["box"]
        quad = _apply(hm, np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], float))
        if "curl" in info:
            c = info["curl"]
            quad[:, 1] += c["amp"] * np.sin(np.pi * quad[:, 0] / c["width"] + c["phase"])
        line["quad"] = np.round(quad, 1).tolist()
        if strokes is not None:  # a binarised scan: how much of the line's strokes the threshold kept
            line["survival"] = round(_survival(strokes, quad), 3)
            line["legible"] = line["survival"] >= LEGIBLE
    truth = {
        "size": list(image.size),
        "homography": hm.tolist(),
        "kind": "photo" if photo else "scan",
        "skew": skew,
        **drawn,
        **info,
        "lines": lines,
    }
    return image, truth


def load_paragraphs(cache: Path | None = None) -> list[str]:
    if cache is not None and cache.exists():
        return json.loads(cache.read_text())
    paragraphs = build_corpus()
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(paragraphs))
    return paragraphs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--count", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--width", type=int, default=None, help="page width in pixels (default: drawn)")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    paragraphs = load_paragraphs(out / "corpus.json")
    fonts = available_fonts()
    for i in range(args.count):
        image, truth = make_page(args.seed * 100003 + i, paragraphs, fonts, Options(width=args.width))
        image.save(out / f"{i:04d}.png")
        (out / f"{i:04d}.json").write_text(json.dumps(truth, ensure_ascii=False))
        print(
            f"{i + 1}/{args.count} {truth['kind']} {truth['columns']} col {len(truth['lines'])} lines",
            file=sys.stderr,
            flush=True,
        )


if __name__ == "__main__":
    main()
