"""A read page: its layout plus what the reader made of each line; the shapes every writer (text, JSON, hOCR,
ALTO) takes. Word boxes are the reader's when it gives them, else cut from the line's box in proportion to the
characters (spaces included) before, in and after each word, along the line's straightened box.
"""

from __future__ import annotations

from dataclasses import dataclass

from .layout import Box, Line, PageLayout


@dataclass(frozen=True)
class Word:
    text: str
    box: Box  # image pixels, axis-aligned
    score: float | None = None  # 0..1


@dataclass(frozen=True)
class LineText:
    text: str
    score: float | None = None  # 0..1, the reader's confidence in the line
    words: tuple[Word, ...] | None = None  # the reader's word boxes, if it has them


@dataclass(frozen=True)
class PageText:
    layout: PageLayout
    lines: tuple[LineText, ...]  # one per layout line, same order
    image: str = ""  # the input's name, as the writers should show it

    def __post_init__(self):
        if len(self.lines) != len(self.layout.lines):
            raise ValueError(f"{len(self.lines)} texts for {len(self.layout.lines)} lines")


def clean(text: str) -> str:
    """Text safe for XML and any UTF-8 writer: no control characters, undecodable bytes (surrogates) escaped."""
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return "".join(
        ch for ch in text if ch in "\t\n" or (ch >= " " and ch != "\x7f" and not 0xFFFE <= ord(ch) <= 0xFFFF)
    )


def split_words(line: Line, read: LineText) -> tuple[Word, ...]:
    """The line's words: the reader's boxes, else proportional to character counts along the straightened box."""
    if read.words is not None:
        return read.words
    text = read.text
    n = len(text)
    if n == 0 or not text.strip():
        return ()
    (x0, y0), (x1, y1), (x2, y2), (x3, y3) = line.quad
    words = []
    at = 0
    for token in text.split():
        start = text.index(token, at)
        end = start + len(token)
        at = end
        a, b = start / n, end / n
        # the sub-quad from fraction a to b along the top (0 -> 1) and bottom (3 -> 2) edges
        xs = [x0 + (x1 - x0) * a, x0 + (x1 - x0) * b, x3 + (x2 - x3) * b, x3 + (x2 - x3) * a]
        ys = [y0 + (y1 - y0) * a, y0 + (y1 - y0) * b, y3 + (y2 - y3) * b, y3 + (y2 - y3) * a]
        box = (
            max(line.box[0], int(min(xs))),
            max(line.box[1], int(min(ys))),
            min(line.box[2], int(round(max(xs)))),
            min(line.box[3], int(round(max(ys)))),
        )
        words.append(Word(token, box, read.score))
    return tuple(words)


def plain_text(page: PageText) -> str:
    """One line per line, a blank line between blocks (paragraphs, headings, columns); empty for a blank page."""
    out: list[str] = []
    previous = None
    for line, read in zip(page.layout.lines, page.lines, strict=False):
        if previous is not None and line.block != previous:
            out.append("")
        out.append(clean(read.text))
        previous = line.block
    return "\n".join(out) + ("\n" if out else "")


def json_record(page: PageText) -> dict:
    """One JSON-ready record: the page's size and skew, its lines (box, quad, block, text, score) in order."""
    layout = page.layout
    return {
        "image": page.image,
        "size": list(layout.size),
        "angle": round(layout.angle, 2),
        "text": plain_text(page),
        "lines": [
            {
                "box": list(line.box),
                "quad": [list(p) for p in line.quad],
                "block": line.block,
                "text": clean(read.text),
                "score": None if read.score is None else round(read.score, 4),
            }
            for line, read in zip(layout.lines, page.lines, strict=False)
        ],
    }
