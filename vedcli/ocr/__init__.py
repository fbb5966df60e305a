"""Full-page OCR support, numpy and Pillow only: find the text lines of a page and their reading order
(`find_lines`), cut each straightened for a line reader (`cut_line`), tell a page from a single line
(`decide_layout`, for `--layout auto`), and write what was read (`to_hocr`, `to_alto`, `plain_text`, `json_record`;
`draw_layout` for `--debug-layout`). See layout.py for the steps.
"""

from .alto import to_alto
from .debug import draw_layout
from .hocr import to_hocr
from .layout import Block, Line, PageLayout, cut_line, decide_layout, find_lines
from .results import LineText, PageText, Word, json_record, plain_text

__all__ = [
    "Block",
    "Line",
    "LineText",
    "PageLayout",
    "PageText",
    "Word",
    "cut_line",
    "decide_layout",
    "draw_layout",
    "find_lines",
    "json_record",
    "plain_text",
    "to_alto",
    "to_hocr",
]
