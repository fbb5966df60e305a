"""ALTO XML v4 (what libraries and eScriptorium / Transkribus exchange): one Page per image, a ComposedBlock per
area, a TextBlock per block, TextLine with its box and baseline, String per word with WC (0..1) and SP between
words. Word boxes as in hOCR (`results.split_words`). Written whole (`to_alto`) or page by page (`alto_header`,
`alto_page` as each page is read, `FOOTER`).
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from .layout import Box
from .results import PageText, clean, split_words

NS = "http://www.loc.gov/standards/alto/ns-v4#"


def _pos(box: Box) -> str:
    x0, y0, x1, y1 = box
    return f'HPOS="{x0}" VPOS="{y0}" WIDTH="{x1 - x0}" HEIGHT="{y1 - y0}"'


def _union(boxes: list[Box]) -> Box:
    return (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))


def alto_header(file_name: str = "") -> str:
    """The document's start, up to `<Layout>` (`file_name`: the source image named in the description)."""
    name = escape(clean(file_name), quote=False)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<alto xmlns="{NS}" xmlns:xlink="http://www.w3.org/1999/xlink" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        f'xsi:schemaLocation="{NS} http://www.loc.gov/alto/v4/alto-4-2.xsd">\n'
        " <Description>\n  <MeasurementUnit>pixel</MeasurementUnit>\n"
        f"  <sourceImageInformation>\n   <fileName>{name}</fileName>\n  </sourceImageInformation>\n"
        '  <OCRProcessing ID="OCR_0">\n   <ocrProcessingStep>\n    <processingSoftware>\n'
        "     <softwareName>ved</softwareName>\n    </processingSoftware>\n   </ocrProcessingStep>\n"
        "  </OCRProcessing>\n </Description>\n <Layout>\n"
    )


FOOTER = " </Layout>\n</alto>\n"


def alto_page(page: PageText, number: int = 1) -> str:
    """The Page element of one page (1-based `number`; every ID in it is the page's own)."""
    p_no = number
    w, h = page.layout.size
    lines = page.layout.lines
    out = [
        f'  <Page ID="page_{p_no}" PHYSICAL_IMG_NR="{p_no}" WIDTH="{w}" HEIGHT="{h}">\n'
        f'   <PrintSpace HPOS="0" VPOS="0" WIDTH="{w}" HEIGHT="{h}">\n'
    ]
    n_line = n_word = 0
    areas: dict[int, list[int]] = {}
    for i, line in enumerate(lines):
        areas.setdefault(line.area, []).append(i)
    for a_no, members in enumerate(areas.values(), start=1):
        out.append(f'    <ComposedBlock ID="cblock_{p_no}_{a_no}" {_pos(_union([lines[i].box for i in members]))}>\n')
        blocks: dict[int, list[int]] = {}
        for i in members:
            blocks.setdefault(lines[i].block, []).append(i)
        for b, in_block in blocks.items():
            out.append(f'     <TextBlock ID="block_{p_no}_{b + 1}" {_pos(_union([lines[i].box for i in in_block]))}>\n')
            for i in in_block:
                line, read = lines[i], page.lines[i]
                n_line += 1
                (bx0, by0), (bx1, by1) = line.quad[3], line.quad[2]  # the bottom edge, as a baseline sketch
                out.append(
                    f'      <TextLine ID="line_{p_no}_{n_line}" {_pos(line.box)} '
                    f'BASELINE="{bx0:.0f},{by0:.0f} {bx1:.0f},{by1:.0f}">\n'
                )
                words = split_words(line, read)
                for k, word in enumerate(words):
                    n_word += 1
                    if k:
                        prev = words[k - 1].box
                        out.append(
                            f'       <SP WIDTH="{max(0, word.box[0] - prev[2])}" HPOS="{prev[2]}" '
                            f'VPOS="{line.box[1]}"/>\n'
                        )
                    wc = "" if word.score is None else f' WC="{max(0.0, min(1.0, word.score)):.2f}"'
                    out.append(
                        f'       <String ID="string_{p_no}_{n_word}" {_pos(word.box)}{wc} '
                        f'CONTENT="{escape(clean(word.text), quote=True)}"/>\n'
                    )
                out.append("      </TextLine>\n")
            out.append("     </TextBlock>\n")
        out.append("    </ComposedBlock>\n")
    out.append("   </PrintSpace>\n  </Page>\n")
    return "".join(out)


def to_alto(pages: Sequence[PageText]) -> str:
    """One ALTO document for the pages (file name: the first page's image)."""
    body = "".join(alto_page(page, n) for n, page in enumerate(pages, start=1))
    return alto_header(pages[0].image if pages else "") + body + FOOTER
