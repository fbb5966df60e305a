"""The page writers of vedcli.ocr: hOCR (parsed back as XML, classes and bbox numbers checked), ALTO, plain text
and JSON records, on a layout found on a rendered page."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFont

from vedcli.ocr import LineText, PageText, find_lines, json_record, plain_text, to_alto, to_hocr

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
pytestmark = pytest.mark.skipif(not Path(FONT).exists(), reason="DejaVu fonts not installed")
XHTML = "{http://www.w3.org/1999/xhtml}"
ALTO = "{http://www.loc.gov/standards/alto/ns-v4#}"


@pytest.fixture(scope="module")
def page() -> PageText:
    """Two paragraphs and a heading, read as known texts with known scores."""
    image = Image.new("L", (700, 420), 255)
    draw = ImageDraw.Draw(image)
    draw.text((40, 30), "A heading of the page", font=ImageFont.truetype(FONT, 34), fill=0)
    body = ImageFont.truetype(FONT, 20)
    texts = [
        "The first paragraph holds two lines",
        "of plain text set in a sans face.",
        "A second paragraph, after a gap, has",
        'three lines: <tags> & "quotes" are',
        "escaped in every writer.",
    ]
    for i, y in enumerate([110, 140, 220, 250, 280]):
        draw.text((40, y), texts[i], font=body, fill=0)
    layout = find_lines(image)
    assert len(layout.lines) == 6
    reads = [LineText("A heading of the page", 0.99)] + [LineText(t, 0.5 + 0.1 * i) for i, t in enumerate(texts)]
    return PageText(layout, tuple(reads), image='scan "7"; a.png')


def title(el) -> dict[str, list[str]]:
    return {p.split()[0]: p.split()[1:] for p in (s.strip() for s in el.get("title").split(";")) if p}


def by_class(root, cls):
    return [el for el in root.iter() if el.get("class") == cls]


def test_hocr_parses_with_the_right_structure_and_boxes(page):
    root = ET.fromstring(to_hocr([page, page], title="two pages"))
    assert root.tag == XHTML + "html"
    pages = by_class(root, "ocr_page")
    assert len(pages) == 2
    t = title(pages[0])
    assert t["bbox"] == ["0", "0", "700", "420"] and t["ppageno"] == ["0"]
    assert re.search(r'image "scan \\"7\\"; a\.png"', pages[0].get("title"))  # quoted, quotes escaped
    lines = by_class(pages[0], "ocr_line")
    assert len(lines) == len(page.layout.lines) == 6
    for el, line, read in zip(lines, page.layout.lines, page.lines, strict=False):
        assert [int(v) for v in title(el)["bbox"]] == list(line.box)
        slope, offset = (float(v) for v in title(el)["baseline"])
        assert abs(slope) < 0.01 and -0.5 * (line.box[3] - line.box[1]) < offset <= 0  # above the box's bottom
        words = by_class(el, "ocrx_word")
        assert " ".join(w.text for w in words) == read.text
        x_prev = -1
        for w in words:
            x0, y0, x1, y1 = (int(v) for v in title(w)["bbox"])
            assert line.box[0] <= x0 < x1 <= line.box[2] and line.box[1] <= y0 < y1 <= line.box[3]
            assert x0 >= x_prev  # left to right, not overlapping much
            x_prev = x1 - 2
            assert title(w)["x_wconf"] == [str(round(100 * read.score))]
    assert len(by_class(pages[0], "ocr_par")) == 3  # the heading and two paragraphs
    assert len(by_class(pages[0], "ocr_carea")) >= 1
    ids = [el.get("id") for el in root.iter() if el.get("id")]
    assert len(ids) == len(set(ids))  # ids unique across pages


def test_hocr_words_split_in_proportion_to_characters(page):
    line = page.layout.lines[1]
    words = by_class(ET.fromstring(to_hocr([page])), "ocrx_word")
    first_line = [w for w in words if w.text in ("The", "first", "paragraph", "holds", "two", "lines")]
    x0 = [int(title(w)["bbox"][0]) for w in first_line]
    width = line.box[2] - line.box[0]
    # "paragraph" starts after "The first " : 10 of 35 characters
    assert abs(x0[2] - (line.box[0] + width * 10 / 35)) <= 3


def test_writers_keep_text_safe(page):
    odd = PageText(
        page.layout, tuple(LineText(t.text + "\x00\x1b<b>", float("nan")) for t in page.lines), "x\udce9.png"
    )
    root = ET.fromstring(to_hocr([odd]))
    words = by_class(root, "ocrx_word")
    assert any("<b>" in (w.text or "") for w in words) and all("\x00" not in (w.text or "") for w in words)
    assert {title(w)["x_wconf"][0] for w in words} == {"0"}
    assert "x\\udce9.png" in by_class(root, "ocr_page")[0].get("title")
    ET.fromstring(to_alto([odd]))


def test_alto_parses_with_lines_and_strings(page):
    root = ET.fromstring(to_alto([page]))
    lines = list(root.iter(ALTO + "TextLine"))
    assert len(lines) == 6
    for el, line, read in zip(lines, page.layout.lines, page.lines, strict=False):
        assert [int(el.get(k)) for k in ("HPOS", "VPOS")] == list(line.box[:2])
        assert int(el.get("WIDTH")) == line.box[2] - line.box[0]
        assert " ".join(s.get("CONTENT") for s in el.iter(ALTO + "String")) == read.text
        assert float(el.find(ALTO + "String").get("WC")) == pytest.approx(read.score, abs=0.005)
    assert len(list(root.iter(ALTO + "TextBlock"))) == 3
    page_el = next(root.iter(ALTO + "Page"))
    assert (page_el.get("WIDTH"), page_el.get("HEIGHT")) == ("700", "420")


def test_plain_text_and_json_record(page):
    text = plain_text(page)
    assert text.split("\n\n") == [
        "A heading of the page",
        "\n".join(t.text for t in page.lines[1:3]),
        "\n".join(t.text for t in page.lines[3:]) + "\n",
    ]
    record = json.loads(json.dumps(json_record(page)))
    assert record["size"] == [700, 420] and record["text"] == text
    assert [line["text"] for line in record["lines"]] == [t.text for t in page.lines]
    assert record["lines"][0]["box"] == list(page.layout.lines[0].box)


def test_blank_page_writes_an_empty_page():
    blank = PageText(find_lines(Image.new("L", (300, 200), 255)), (), "blank.png")
    assert plain_text(blank) == ""
    root = ET.fromstring(to_hocr([blank]))
    assert len(by_class(root, "ocr_page")) == 1 and not by_class(root, "ocr_line")
    ET.fromstring(to_alto([blank]))
    with pytest.raises(ValueError):
        PageText(blank.layout, (LineText("ghost"),))
