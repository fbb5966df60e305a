"""Line finding on pages (vedcli.ocr): synthetic pages with known lines from recipes/pages/make_pages.py, and
scikit-image's photographed page."""

from __future__ import annotations

import importlib.util
import sys
from functools import cache
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont, ImageOps

from vedcli.ocr import cut_line, decide_layout, draw_layout, find_lines
from vedcli.ocr.components import label

ROOT = Path(__file__).resolve().parents[1]

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSerif.ttf"
PARAGRAPHS = [
    "The quick brown fox jumps over the lazy dog while the cat watches from the window and the rain keeps "
    "falling on the roof of the old house by the river, where nobody has lived for many years now.",
    "Printed pages come in many shapes: one column or several, headings set larger than the text, small print "
    "at the foot, pictures and rules between the paragraphs, and sometimes white letters on a dark box.",
    "A line reader sees one line at a time, so the page has to be cut into its lines first, in the order a "
    "person reads them: the columns from left to right and the lines of each column from top to bottom.",
]

needs_font = pytest.mark.skipif(not Path(FONT).exists(), reason="DejaVu fonts not installed")


@cache
def make_pages():
    """recipes/pages/make_pages.py, loaded from its file (a recipe, not a package)."""
    spec = importlib.util.spec_from_file_location("make_pages", ROOT / "recipes" / "pages" / "make_pages.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["make_pages"] = module  # its dataclasses look themselves up there
    spec.loader.exec_module(module)
    return module


def page(seed: int = 1, **options):
    mp = make_pages()
    plain = dict(
        width=900,
        columns=2,
        heading=True,
        subheadings=False,
        small_print=False,
        rules=False,
        picture=False,
        inverted=False,
        photo=False,
        skew=0.0,
        justified=False,
        font=FONT,
    )
    plain.update(options)
    return mp.make_page(seed, PARAGRAPHS, [(FONT, 1.0)], mp.Options(**plain))


def matched(truth: dict, layout) -> list[int]:
    """For each found line (reading order), the index of the true line its box overlaps with IoU >= 0.5 (-1:
    none), compared on the upright page."""
    inv = np.linalg.inv(np.array(truth["homography"]))
    true = np.array([line["box"] for line in truth["lines"]], dtype=float)
    out = []
    for line in layout.lines:
        q = np.c_[np.array(line.quad), np.ones(4)] @ inv.T
        q = q[:, :2] / q[:, 2:]
        box = np.array([q[:, 0].min(), q[:, 1].min(), q[:, 0].max(), q[:, 1].max()])
        ix = np.clip(np.minimum(box[2], true[:, 2]) - np.maximum(box[0], true[:, 0]), 0, None)
        iy = np.clip(np.minimum(box[3], true[:, 3]) - np.maximum(box[1], true[:, 1]), 0, None)
        inter = ix * iy
        union = (box[2] - box[0]) * (box[3] - box[1]) + (true[:, 2] - true[:, 0]) * (true[:, 3] - true[:, 1]) - inter
        iou = inter / union
        out.append(int(np.argmax(iou)) if iou.max() >= 0.5 else -1)
    return out


@needs_font
def test_two_columns_and_a_heading_in_reading_order():
    image, truth = page(columns=2, heading=True)
    assert truth["columns"] == 2 and len(truth["lines"]) > 20
    layout = find_lines(image)
    found = matched(truth, layout)
    assert -1 not in found  # every found line is a true line
    assert sorted(found) == list(range(len(truth["lines"])))  # every true line found once
    assert found == sorted(found)  # heading, then the left column top to bottom, then the right column
    assert layout.lines[0].height > 1.15 * np.median([ln.height for ln in layout.lines[1:]])  # a larger heading
    left = [ln for ln in layout.lines[1:] if ln.box[2] < image.width / 2]
    right = [ln for ln in layout.lines[1:] if ln.box[0] > image.width / 2]
    assert left and right and len(left) + len(right) == len(layout.lines) - 1
    assert layout.lines.index(left[-1]) < layout.lines.index(right[0])


@needs_font
@pytest.mark.parametrize("skew", [7.0, -7.0])
def test_skew_is_recovered(skew):
    image, truth = page(seed=2, columns=1, skew=skew)
    layout = find_lines(image)
    assert abs(layout.angle - skew) <= 0.5
    found = matched(truth, layout)
    assert found == list(range(len(truth["lines"])))


@needs_font
@pytest.mark.parametrize("seed", [2, 3])
def test_justified_monospace_lines_are_not_cut_at_their_word_spaces(seed):
    mono = str(Path(FONT).with_name("DejaVuSansMono.ttf"))
    image, truth = page(seed=seed, columns=2, justified=True, font=mono, width=1000)
    # the wide, alike spaces of justified monospace text line up for a few lines: no gutter, lines stay whole
    assert matched(truth, find_lines(image)) == list(range(len(truth["lines"])))


@needs_font
@pytest.mark.parametrize("seed", [2, 3])
def test_a_grainy_table_round_a_photographed_page_gives_no_lines(seed):
    image, truth = page(seed=seed, columns=2)
    rng = np.random.default_rng(seed)
    w, h = image.size
    m = 90  # the table shows round the page, mid-grey and grainy (lighter than 25% of the paper)
    photo = rng.normal(95, 12, (h + 2 * m, w + 2 * m))
    photo[m : m + h, m : m + w] = np.asarray(image, dtype=np.float64) * 0.85 + rng.normal(0, 3, (h, w))
    layout = find_lines(Image.fromarray(np.clip(photo, 0, 255).astype(np.uint8)))
    moved = np.array([[1, 0, m], [0, 1, m], [0, 0, 1.0]]) @ np.array(truth["homography"])
    assert matched({**truth, "homography": moved.tolist()}, layout) == list(range(len(truth["lines"])))


@needs_font
def test_binarised_pages_say_how_much_of_each_line_survived():
    _, truth = page(seed=1, columns=1, binarise=True)
    assert all(0.5 <= line["survival"] <= 1 and line["legible"] for line in truth["lines"])
    _, grey = page(seed=1, columns=1, binarise=False)
    assert all("survival" not in line and "legible" not in line for line in grey["lines"])


@needs_font
def test_cut_line_straightens_a_skewed_line():
    image, truth = page(seed=2, columns=1, skew=7.0)
    layout = find_lines(image)
    line = layout.lines[3]
    crop = np.asarray(cut_line(image, line).convert("L"))
    assert crop.shape[1] > 8 * crop.shape[0]  # long and low: the line, not a slanted band of the page
    ink_rows = (crop < 128).mean(axis=1)
    assert ink_rows[: max(1, crop.shape[0] // 8)].max() < 0.05  # margins above and below hold no ink
    assert ink_rows[-max(1, crop.shape[0] // 8) :].max() < 0.05


@needs_font
def test_white_on_black_page():
    image, truth = page(seed=3, columns=1, heading=False)
    layout = find_lines(ImageOps.invert(image))
    found = matched(truth, layout)
    assert found == list(range(len(truth["lines"])))
    assert all(line.inverted for line in layout.lines)
    crop = np.asarray(cut_line(ImageOps.invert(image), layout.lines[0]))
    assert crop.mean() > 160  # handed to the reader as dark text on light


@needs_font
def test_inverted_block_picture_and_rules_on_a_page():
    image, truth = page(seed=4, columns=2, heading=True, inverted=True, picture=True, rules=True)
    layout = find_lines(image)
    found = matched(truth, layout)
    hits = [f for f in found if f >= 0]
    assert len(set(hits)) >= 0.95 * len(truth["lines"])
    assert hits == sorted(hits)
    assert any(line.inverted for line in layout.lines)


@needs_font
def test_a_single_line_is_a_line_and_a_page_is_a_page():
    font = ImageFont.truetype(FONT, 28)
    line = Image.new("L", (720, 48), 255)
    ImageDraw.Draw(line).text((10, 6), "A single line of printed text, read as one.", font=font, fill=0)
    assert decide_layout(line) == "line"
    assert len(find_lines(line).lines) == 1
    image, _ = page(columns=1)
    assert decide_layout(image) == "page"


def test_blank_and_tiny_images_give_no_lines():
    for image in (
        Image.new("L", (800, 600), 255),
        Image.new("RGB", (640, 480), (40, 40, 40)),
        Image.new("L", (1, 1), 0),
        Image.new("RGBA", (300, 200), (0, 0, 0, 0)),
    ):
        layout = find_lines(image)
        assert layout.lines == () and layout.blocks == ()
        assert decide_layout(image, layout) == "page"  # read as nothing, never as one garbled line
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 256, (300, 400), dtype=np.uint8))
    assert len(find_lines(noise).lines) <= 3  # not a page of text


@needs_font
def test_large_pages_are_analysed_shrunk_with_boxes_in_their_own_pixels():
    image, truth = page(seed=5, columns=2, width=1400)
    full = find_lines(image)
    shrunk = find_lines(image, max_pixels=image.width * image.height // 5)  # analysed at 1/3
    assert len(shrunk.lines) == len(full.lines)
    for a, b in zip(full.lines, shrunk.lines, strict=False):
        assert np.abs(np.array(a.box) - np.array(b.box)).max() <= 8


@needs_font
def test_debug_drawing_has_the_page_size():
    image, _ = page(columns=2)
    drawing = draw_layout(image, find_lines(image))
    assert drawing.size == image.size and drawing.mode == "RGB"
    assert np.asarray(drawing).std(axis=2).max() > 50  # coloured boxes drawn on the grey page


def test_components_match_scipy():
    ndimage = pytest.importorskip("scipy.ndimage")
    rng = np.random.default_rng(0)
    for _ in range(20):
        mask = rng.random((int(rng.integers(1, 50)), int(rng.integers(1, 50)))) < rng.uniform(0.1, 0.7)
        comps = label(mask)
        labels, n = ndimage.label(mask, structure=np.ones((3, 3)))
        assert comps.n == n
        boxes = ndimage.find_objects(labels)
        expected = sorted(
            (s[1].start, s[0].start, s[1].stop, s[0].stop, int((labels[s] == i + 1).sum())) for i, s in enumerate(boxes)
        )
        got = sorted(
            zip(
                comps.x0.tolist(),
                comps.y0.tolist(),
                comps.x1.tolist(),
                comps.y1.tolist(),
                comps.area.tolist(),
                strict=False,
            )
        )
        assert got == expected


def test_photographed_page_from_scikit_image():
    skimage = pytest.importorskip("skimage")
    image = Image.open(Path(skimage.__file__).parent / "data" / "page.png")
    layout = find_lines(image)
    assert len(layout.lines) == 7  # heading, five lines of text, the code line (the cut-off line below is left out)
    tops = [line.upright[1] for line in layout.lines]
    assert tops == sorted(tops)
    assert layout.lines[0].height == max(line.height for line in layout.lines)  # the heading
    assert all(line.box[2] - line.box[0] > 150 for line in layout.lines[:5])  # whole lines, not words
    # from their first glyph: the shadow over the page's left side is paper, not the table round it
    assert [line.box[0] for line in layout.lines] == pytest.approx([6, 5, 5, 5, 6, 7, 19], abs=3)
