"""`ved ocr --layout auto|page`: each image is a page whose lines are found (`vedcli.ocr.find_lines`), cut out
straightened, read through the pipeline in batches of similar shape, and written in the page's reading order.

Images are decoded whole here (not shrunk for the model's processor), so every box is in the input file's own
pixels (EXIF orientation applied). With `auto`, an image that `decide_layout` calls a single line, any image for a
model that reads whole pages (Donut, Nougat), and a line-shaped image (twice as wide as tall or more) where no line is
found are read whole, as `--layout line` reads them (above 16 megapixels their pixel values may differ from a
`--layout line` run by a level or two: it decodes them shrunk); their text and jsonl output is a line's
(`{"file", "text", "score"}`); in csv/tsv, hOCR and ALTO they are a page of one line covering the image.

Scores: a line's score is exp of its mean token log-probability (the end token counted), in 0..1.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from PIL import Image

from ..checkpoints.safety import check_output_not_input
from ..errors import OptionError, VedError, option
from .output import DelimitedWriter, ResultWriter, encodable, make_writer, printable

if TYPE_CHECKING:
    from ..ocr import PageLayout, PageText

PAGE_FORMATS = ("text", "jsonl", "csv", "tsv", "hocr", "alto")


def line_score(score: float, tokens: Sequence[int], num_beams: int, length_penalty: float) -> float:
    """exp(mean token log-probability) of a hypothesis, 0..1: a beam's score is length-penalised (sum / n**lp)."""
    n = len(tokens) + 1  # the end token's probability is part of the score
    total = score * n**length_penalty if num_beams > 1 else score
    if not math.isfinite(total):
        return 0.0
    return min(1.0, max(0.0, math.exp(total / n)))


def whole_image_layout(size: tuple[int, int]) -> PageLayout:
    """A page of one line covering the whole image (an image read as a single line)."""
    from ..ocr import Block, Line, PageLayout
    from ..ocr.deskew import Frame

    w, h = size
    box = (0, 0, w, h)
    line = Line(box, ((0.0, 0.0), (w, 0.0), (w, h), (0.0, h)), (0.0, 0.0, w, h), h, h, 0, 0, False)
    return PageLayout(size, 0.0, Frame.for_image(w, h, 0.0), (line,), (Block(box, (0,), 0),), float(h))


@dataclass
class ReadPage:
    """One input read as a page: its layout, the best hypothesis of each line, and whether it was read whole."""

    file: str
    layout: PageLayout
    hypotheses: list  # one Hypothesis per layout line
    whole: bool  # read as a single line (auto): text and jsonl write it as `--layout line` does

    def page_text(self, score) -> PageText:
        from ..ocr import LineText, PageText

        lines = tuple(LineText(h.text, score(h)) for h in self.hypotheses)
        return PageText(self.layout, lines, encodable(self.file))


class PageWriter:
    """Writes pages (or their errors) in input order, each as soon as it is read. hOCR and ALTO are one document:
    its header goes out with the first page, each page as it comes, and `close` ends it, also when the run stops
    early (Ctrl-C, an error), so what was written is a valid document. A run where every input was bad writes none.
    Use it as a context manager: leaving the block closes it."""

    def __init__(self, fmt: str, out: TextIO, *, single_input: bool, score, err: TextIO):
        if fmt not in PAGE_FORMATS:
            raise OptionError(f"unknown format {fmt!r}; choose one of {', '.join(PAGE_FORMATS)}", option("format"))
        self.fmt, self.out, self.single_input, self.score = fmt, out, single_input, score
        if fmt in ("csv", "tsv"):
            self.lines: ResultWriter = _LineRows(out, tabs=fmt == "tsv")
        else:
            self.lines = make_writer(
                "text" if fmt in ("hocr", "alto") else fmt, out, single_input=single_input, err=err
            )
        self.pages = 0  # pages written to the hOCR / ALTO document
        self.closed = False

    def __enter__(self) -> PageWriter:
        return self

    def __exit__(self, kind, error, traceback) -> None:
        if kind is None:
            self.close()
            return
        try:  # stopped early: end the document, without hiding why it stopped
            self.close()
        except OSError:
            pass

    def page(self, read: ReadPage) -> None:
        from ..ocr import json_record, plain_text

        if read.whole and self.fmt in ("text", "jsonl"):
            best = read.hypotheses[0]
            self.lines.results(read.file, [_Scored(best.text, best.score)])
            return
        page = read.page_text(self.score)
        if self.fmt == "text":
            text = plain_text(page)
            if not self.single_input:
                name = printable(read.file)
                text = "".join(f"{name}: {row}\n" if row else "\n" for row in text.splitlines())
            self.out.write(text)
        elif self.fmt == "jsonl":
            self.out.write(json.dumps({"file": encodable(read.file), **json_record(page)}, ensure_ascii=False) + "\n")
        elif self.fmt in ("csv", "tsv"):
            assert isinstance(self.lines, _LineRows)
            for i, (line, text) in enumerate(zip(page.layout.lines, page.lines, strict=True)):
                score = "" if text.score is None else repr(round(text.score, 4))
                box = " ".join(map(str, line.box))
                self.lines.row([encodable(read.file), str(i), box, text.text, score, ""])
        else:
            self._document_page(page)
        self.out.flush()  # a page is whole on disk as soon as it is read

    def _document_page(self, page: PageText) -> None:
        """One page of the hOCR / ALTO document, its header first, written in one piece."""
        from ..ocr.alto import alto_header, alto_page
        from ..ocr.hocr import hocr_header, hocr_page

        self.pages += 1
        if self.fmt == "hocr":
            text = (hocr_header() if self.pages == 1 else "") + hocr_page(page, self.pages)
        else:
            text = (alto_header(page.image) if self.pages == 1 else "") + alto_page(page, self.pages)
        self.out.write(text)

    def error(self, file: str, error: VedError) -> None:
        self.lines.error(file, error)

    def flush(self) -> None:
        self.out.flush()

    def close(self) -> None:
        """Ends the hOCR / ALTO document (if a page was written); once."""
        from ..ocr import alto, hocr

        if self.closed:
            return
        self.closed = True
        if self.fmt in ("hocr", "alto") and self.pages:
            self.out.write(hocr.FOOTER if self.fmt == "hocr" else alto.FOOTER)
        self.out.flush()


class _LineRows(DelimitedWriter):
    """csv / tsv rows of page lines: file, line (0-based index in reading order), box ("x0 y0 x1 y1"), text,
    score, error."""

    def __init__(self, out: TextIO, *, tabs: bool):  # noqa: D107 - the header differs from a line run's
        self.out, self.ranked, self.tabs = out, False, tabs
        self.csv = csv.writer(out, lineterminator="\n")
        self._row(["file", "line", "box", "text", "score", "error"])

    def row(self, fields: list[str]) -> None:
        self._row(fields)

    def error(self, file: str, error: VedError) -> None:
        self._row([encodable(file), "", "", "", "", encodable(error.message)])


@dataclass
class _Scored:
    text: str
    score: float


def read_pages(rows, pipeline, options, mode: str, batch_size: int, debug: DebugDrawings | None) -> Iterator[ReadPage]:
    """The pages of decoded inputs (`rows`: (item, image) pairs) in order, each yielded as soon as its lines are read.
    Lines are read in batches of `batch_size` crops of similar width/height ratio: a page of `batch_size` lines or
    more alone, smaller pages (and single lines) gathered until they fill a batch; each line is put back in its page's
    order."""
    from ..ocr import cut_line, decide_layout, find_lines

    whole_pages = reads_whole_pages(pipeline.processor)
    pending: list[ReadPage] = []
    crops: list[tuple[int, int, Image.Image]] = []  # (pending page, line, crop)
    rows = list(rows)
    for n, (item, image) in enumerate(rows):
        layout = find_lines(image)
        if debug is not None:
            debug.save(item.path, image, layout)
        # auto reads an image whole when it is one line, when the model reads whole pages, or when no line is found
        # in a line-shaped image (a line crop the finder misses is still read, as before)
        line_shaped = not layout.lines and image.width >= 2 * image.height
        whole = mode == "auto" and (whole_pages or line_shaped or decide_layout(image, layout) == "line")
        if whole:
            layout = whole_image_layout(image.size)
            crops.append((len(pending), 0, image))
        else:
            crops.extend((len(pending), i, cut_line(image, line)) for i, line in enumerate(layout.lines))
        pending.append(ReadPage(item.path, layout, [None] * len(layout.lines), whole))
        if len(crops) < batch_size and n < len(rows) - 1:
            continue
        crops.sort(key=lambda c: c[2].width / max(1, c[2].height))  # similar shapes share a batch (less padding)
        for start in range(0, len(crops), batch_size):
            chunk = crops[start : start + batch_size]
            for (page, line, _crop), hyps in zip(chunk, pipeline.run([c[2] for c in chunk], options), strict=True):
                pending[page].hypotheses[line] = hyps[0]
        yield from pending
        pending, crops = [], []


def reads_whole_pages(processor) -> bool:
    """Whether the model reads whole pages (Donut, Nougat): a page processor whose input is not wider than tall (a
    line reader with a page processor, such as the built-in one at 32 x 1280, is wide)."""
    config = getattr(processor, "config", None)
    if config is None or not config.is_page:
        return False
    size = config.output_size()
    return size is not None and size[0] >= size[1] / 2


class DebugDrawings:
    """`--debug-layout PATH`: the found layout drawn on each page; PATH is the file for a single input, else a folder
    that gets `<name>.png` per input (`<name>-2.png`, ... where names repeat or would be an input's)."""

    def __init__(self, path: str, inputs: Sequence[str]):
        self.path = Path(path)
        self.single = single_input = len(inputs) == 1
        self.inputs = {os.path.abspath(p) for p in inputs}  # never drawn over (a name is skipped instead)
        self.used: set[str] = set()
        if single_input:
            try:
                check_output_not_input(path, inputs)
            except OptionError as error:
                raise OptionError(error.raw_message, where=option("debug_layout")) from None
        if not single_input:
            if self.path.exists() and not self.path.is_dir():
                raise OptionError("with several inputs this must be a folder, and it is a file", where=path)
            try:
                self.path.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise OptionError(f"cannot create the folder: {error.strerror or error}", where=path) from None
        elif self.path.is_dir():
            raise OptionError("with a single input this must be a file name, and it is a folder", where=path)

    def save(self, file: str, image: Image.Image, layout: PageLayout) -> None:
        from ..ocr import draw_layout

        target = self.path
        if not self.single:
            stem = Path(file).stem or "image"
            name, n = f"{stem}.png", 1
            while name in self.used or os.path.abspath(self.path / name) in self.inputs:
                n += 1
                name = f"{stem}-{n}.png"
            self.used.add(name)
            target = self.path / name
        try:
            draw_layout(image, layout).save(target, format="PNG")
        except OSError as error:
            raise OptionError(f"cannot write {target}: {error.strerror or error}", option("debug_layout")) from None
