"""hOCR (the HTML that tesseract writes and OCRmyPDF, hocr-tools and gImageReader read): one ocr_page per image,
ocr_carea per area (a column, or a run of full-width lines), ocr_par per block, ocr_line with bbox, baseline and
x_size, ocrx_word with bbox and x_wconf. A document can be written whole (`to_hocr`) or page by page (`hocr_header`,
`hocr_page` as each page is read, `FOOTER`). Word boxes are the reader's, or cut from the line in proportion to the
characters (`results.split_words`) when it gives none.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

from .layout import Box, Line
from .results import PageText, clean, split_words

HEADER = """<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN"
    "http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd">
<html xmlns="http://www.w3.org/1999/xhtml" xml:lang="en" lang="en">
 <head>
  <title>{title}</title>
  <meta http-equiv="Content-Type" content="text/html;charset=utf-8"/>
  <meta name="ocr-system" content="ved"/>
  <meta name="ocr-capabilities" content="ocr_page ocr_carea ocr_par ocr_line ocrx_word ocrp_wconf"/>
{count} </head>
 <body>
"""
FOOTER = """ </body>
</html>
"""


def _bbox(box: Box) -> str:
    return "bbox {} {} {} {}".format(*box)


def _union(boxes: list[Box]) -> Box:
    return (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))


def _baseline(line: Line, frame) -> str:
    """hOCR baseline: slope and offset of y = slope * x + offset from the bbox's bottom-left corner (pixels)."""
    (x0, y0), (x1, y1) = line.quad[0], line.quad[1]
    slope = (y1 - y0) / (x1 - x0) if x1 != x0 else 0.0
    # a point on the baseline: the middle of the line at baseline height, in image pixels
    um = (line.upright[0] + line.upright[2]) / 2
    bx, by = frame.to_image(um, line.baseline)
    at_left = float(by) + slope * (line.box[0] - float(bx))
    return f"baseline {slope:.3f} {round(at_left - line.box[3])}"


def _conf(score: float | None) -> int:
    return 0 if score is None or not math.isfinite(score) else max(0, min(100, round(100 * score)))


def hocr_page(page: PageText, number: int = 1) -> str:
    """The ocr_page div of one page (1-based `number`)."""
    layout = page.layout
    w, h = layout.size
    name = escape(clean(page.image), quote=True).replace("&quot;", "\\&quot;")
    out = [
        f'  <div class="ocr_page" id="page_{number}" title="image &quot;{name}&quot;; bbox 0 0 {w} {h}; '
        f'ppageno {number - 1}">\n'
    ]
    n_line = n_word = 0
    lines = layout.lines
    areas: dict[int, list[int]] = {}
    for i, line in enumerate(lines):
        areas.setdefault(line.area, []).append(i)
    for a_no, (_, members) in enumerate(areas.items(), start=1):
        out.append(
            f'   <div class="ocr_carea" id="block_{number}_{a_no}" '
            f'title="{_bbox(_union([lines[i].box for i in members]))}">\n'
        )
        blocks: dict[int, list[int]] = {}
        for i in members:
            blocks.setdefault(lines[i].block, []).append(i)
        for b, in_block in blocks.items():
            out.append(
                f'    <p class="ocr_par" id="par_{number}_{b + 1}" '
                f'title="{_bbox(_union([lines[i].box for i in in_block]))}">\n'
            )
            for i in in_block:
                line, read = lines[i], page.lines[i]
                n_line += 1
                out.append(
                    f'     <span class="ocr_line" id="line_{number}_{n_line}" title="{_bbox(line.box)}; '
                    f'{_baseline(line, layout.frame)}; x_size {line.height:.0f}">'
                )
                words = split_words(line, read)
                for k, word in enumerate(words):
                    n_word += 1
                    sep = "" if k == 0 else " "
                    out.append(
                        f'{sep}<span class="ocrx_word" id="word_{number}_{n_word}" title="{_bbox(word.box)}; '
                        f'x_wconf {_conf(word.score)}">{escape(clean(word.text), quote=False)}</span>'
                    )
                out.append("</span>\n")
            out.append("    </p>\n")
        out.append("   </div>\n")
    out.append("  </div>\n")
    return "".join(out)


def hocr_header(title: str = "", pages: int | None = None) -> str:
    """The document's start, up to `<body>`; `pages` (the ocr-number-of-pages meta) is left out when unknown (a
    document written page by page)."""
    count = "" if pages is None else f'  <meta name="ocr-number-of-pages" content="{pages}"/>\n'
    return HEADER.format(title=escape(clean(title), quote=False), count=count)


def to_hocr(pages: Sequence[PageText], title: str = "") -> str:
    """A whole hOCR document for the pages, in order."""
    body = "".join(hocr_page(page, n) for n, page in enumerate(pages, start=1))
    return hocr_header(title, len(pages)) + body + FOOTER
