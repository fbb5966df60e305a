"""Full-page OCR support, numpy and Pillow only: find the text lines of a page and their reading order
(`find_lines`), cut each straightened for a line reader (`cut_line`), tell a page from a single line
(`decide_layout`, for `--layout auto`), and write what was read (`to_hocr`, `to_alto`, or page by page with
`hocr_header` / `hocr_page` / `alto_header` / `alto_page`; `plain_text`, `json_record`; `draw_layout` for
`--debug-layout`). See layout.py for the steps.
"""

from .alto import alto_header, alto_page, to_alto
from .debug import draw_layout
from .hocr import hocr_header, hocr_page, to_hocr
from .layout import Block, Line, PageLayout, cut_line, decide_layout, find_lines
from .results import LineText, PageText, Word, json_record, plain_text

__all__ = [
    "Block",
    "Line",
    "LineText",
    "PageLayout",
    "PageText",
    "Word",
    "alto_header",
    "alto_page",
    "cut_line",
    "decide_layout",
    "draw_layout",
    "find_lines",
    "hocr_header",
    "hocr_page",
    "json_record",
    "plain_text",
    "to_alto",
    "to_hocr",
]
