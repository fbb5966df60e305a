"""One `ved caption` / `ved ocr` run: inputs read in order and batched, the pipeline run on each batch, results and
error rows written as each batch completes, a progress bar on a terminal.

What can be checked without the model comes first (flags, inputs), then the model folder is found (a missing model is
reported before torch is imported), then the model loads (a status line on a terminal). Images are decoded by a few
threads ahead of the model, as many as fit in READ_AHEAD_BYTES (at least one), each shrunk right after decoding to
what the model's processor needs (image.open_image), so big images do not pile up in memory.
"""

from __future__ import annotations

import io
import os
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, TextIO

from PIL import Image

from .. import interrupts
from ..checkpoints.safety import check_output_not_input
from ..errors import InputError, OptionError, option
from ..terminal import is_terminal
from .inputs import InputItem, expand_inputs
from .output import make_writer, open_output

if TYPE_CHECKING:
    from ..generation.options import DecodingOptions
    from ..processing.image import ImageProcessor

READ_THREADS = 4  # threads decoding input images ahead of the model
READ_AHEAD_BYTES = 512 * 2**20  # memory that images decoded ahead of the model may take (one image may take more)


@dataclass(frozen=True)
class RunSettings:
    """Everything one `ved caption` / `ved ocr` run needs, parsed from the command line."""

    inputs: list[str]
    model: str
    revision: str | None = None
    device: str = "auto"
    dtype: str | None = None  # None: the pipeline's default (fp32 on CPU)
    batch_size: int = 8
    format: str = "text"
    output: str | None = None  # None: stdout
    options: DecodingOptions | None = None  # None: every option at the checkpoint's default
    max_pixels: int | None = None  # refuse bigger images; None: open_image's default (image.MAX_PIXELS); 0: no limit
    layout: str | None = None  # ved ocr: "auto" | "page": find the lines of pages (pages.py); None, "line": whole
    debug_layout: str | None = None  # where the layout drawings go (a file for one input, else a folder)


def caption_inputs(settings: RunSettings, stdin: TextIO, stdout: TextIO, stderr: TextIO) -> int:
    """Caption every input, writing results as each batch completes; returns how many inputs were bad.
    Raises VedError for a bad run (model, options, no inputs) before any image is read."""
    if settings.batch_size < 1:
        raise OptionError(f"{option('batch_size')} must be at least 1", where=option("batch_size"))
    if settings.max_pixels is not None and settings.max_pixels < 0:
        raise OptionError(f"{option('max_pixels')} must be at least 0 (0: no limit)", where=option("max_pixels"))
    from ..generation.options import DecodingOptions
    from ..generation.pipeline import Pipeline

    options = settings.options or DecodingOptions()
    options.check()  # values no checkpoint can make right: before any model is read
    items = expand_inputs(settings.inputs, stdin)
    if not items:
        raise _no_inputs(settings.inputs)
    check_output_not_input(settings.output, (item.path for item in items))  # never write over an input
    pages = settings.layout in ("auto", "page")
    if not pages and settings.format in ("hocr", "alto"):
        raise OptionError(f"{option('format')} {settings.format} needs {option('layout')} auto or page (ved ocr)",
                          where=option("format"))  # fmt: skip
    if not pages and settings.debug_layout is not None:
        raise OptionError(f"{option('debug_layout')} needs {option('layout')} auto or page (ved ocr)",
                          where=option("debug_layout"))  # fmt: skip
    debug = None
    if pages and settings.debug_layout is not None:
        from .pages import DebugDrawings

        debug = DebugDrawings(settings.debug_layout, [item.path for item in items])
    # The model first, and the options checked against it, so a bad run fails before any image is read.
    with _Status(stderr, f"loading {settings.model}"):
        pipeline = Pipeline.load(settings.model, settings.revision, device=settings.device, dtype=settings.dtype)
    resolved = pipeline.resolve(options)
    if pages and resolved.num_return_sequences > 1:
        raise OptionError(f"{option('num_return_sequences')} above 1 needs {option('layout')} line",
                          where=option("num_return_sequences"))  # fmt: skip
    interrupts.started()  # from here Ctrl-C stops cleanly, keeping what was written
    out = stdout if settings.output in (None, "-") else open_output(settings.output)
    # A progress bar when stderr is a terminal that the results are not printed on as well.
    show_bar = is_terminal(stderr) and not (out is stdout and is_terminal(stdout))
    bar = None
    bad = 0
    try:
        bar = _ProgressBar(len(items), stderr) if show_bar else None
        if pages:
            return _read_pages(settings, pipeline, resolved, options, items, out, bar, stderr, debug)
        writer = make_writer(
            settings.format,
            out,
            single_input=len(items) == 1,
            ranked=resolved.num_return_sequences > 1,
            err=bar.above if bar else stderr,
        )
        reader = _Reader(settings.max_pixels, pipeline.processor)
        for batch in _batches(items, settings.batch_size, reader):
            images = [image for _item, image, _error in batch if image is not None]
            results = iter(pipeline.run(images, options) if images else [])
            for item, _image, error in batch:
                if error is not None:
                    writer.error(item.path, error)
                    bad += 1
                else:
                    writer.results(item.path, next(results))
            writer.flush()
            if bar:
                bar.advance(len(batch))
    finally:
        if bar:
            bar.stop()
        if out is not stdout:
            out.close()
    return bad


def _read_pages(settings, pipeline, resolved, options, items, out, bar, stderr, debug) -> int:
    """The `--layout auto|page` run: pages decoded whole (boxes in the files' pixels), lines read in batches."""
    from .pages import PageWriter, line_score, read_pages

    def score(hyp) -> float:
        return line_score(hyp.score, hyp.tokens, resolved.num_beams, resolved.length_penalty)

    bad = 0
    # each page is written as soon as it is read; leaving the block (also by Ctrl-C) ends an hOCR / ALTO document
    with PageWriter(
        settings.format, out, single_input=len(items) == 1, score=score, err=bar.above if bar else stderr
    ) as writer:
        for batch in _batches(items, settings.batch_size, _Reader(settings.max_pixels, None)):
            rows = [(item, image) for item, image, error in batch if error is None]
            read = read_pages(rows, pipeline, options, settings.layout, settings.batch_size, debug)
            for item, _image, error in batch:
                if error is not None:
                    writer.error(item.path, error)
                    bad += 1
                else:
                    writer.page(next(read))
            writer.flush()
            if bar:
                bar.advance(len(batch))
    return bad


def _no_inputs(args: list[str]) -> OptionError:
    """The error for a run without images, naming the folder (or the list) that held none."""
    if len(args) == 1 and args[0] != "-" and os.path.isdir(args[0]):
        return OptionError("no inputs: the folder holds no image files", where=args[0])
    if args == ["-"]:
        return OptionError("no inputs: no paths were read from stdin", where="-")
    if args:
        return OptionError("no inputs: the folders and lists given hold no image files", where=", ".join(args))
    return OptionError("no inputs: give image files, folders, or - to read paths from stdin", where="INPUT")


Row = tuple[InputItem, Image.Image | None, InputError | None]  # an input with its image, or with its error


class _Reader:
    """Reads one input as an image for the pipeline's processor, within the pixel limit."""

    def __init__(self, max_pixels: int | None, processor: ImageProcessor | None):
        from ..processing.image import MAX_PIXELS

        self.max_pixels = MAX_PIXELS if max_pixels is None else (max_pixels or None)
        self.processor = processor

    def cost(self, item: InputItem) -> int:
        """Bytes that decoding the item may take, from its header (0 for an item that will not be decoded)."""
        from ..processing.image import decoding_bytes

        return 0 if item.error is not None else decoding_bytes(item.path, self.max_pixels)

    def __call__(self, item: InputItem) -> Row:
        """An input with its decoded image, or with the error that says why it has none."""
        from ..processing.image import ImageTooLarge, open_image

        if item.error is not None:
            return item, None, item.error
        try:
            return item, open_image(item.path, self.max_pixels, self.processor), None
        except ImageTooLarge as error:
            message = f"{error.raw_message}; {option('max_pixels')} raises the limit"
            return item, None, InputError(message, error.raw_where)
        except InputError as error:
            return item, None, error


def _read_ahead(items: list[InputItem], read: _Reader, window: int, max_bytes: int | None = None) -> Iterator[Row]:
    """`read` of every item, in order, decoded by a few threads ahead of the consumer (image decoding releases the
    GIL), so the model does not wait for files between batches: at most `window` items ahead, and no more than
    `max_bytes` (default READ_AHEAD_BYTES) of decoding, by the images' headers (one item at least)."""
    max_bytes = READ_AHEAD_BYTES if max_bytes is None else max_bytes
    pool = ThreadPoolExecutor(max_workers=READ_THREADS)
    try:
        pending: deque[tuple[Future[Row], int]] = deque()
        ahead = 0  # bytes the pending items may take
        for item in items:
            cost = read.cost(item)
            while pending and (len(pending) >= window or ahead + cost > max_bytes):
                future, taken = pending.popleft()
                ahead -= taken
                yield future.result()
            pending.append((pool.submit(read, item), cost))
            ahead += cost
        while pending:
            yield pending.popleft()[0].result()
    finally:
        pool.shutdown(wait=False, cancel_futures=True)  # stopped early (an error, Ctrl-C): drop what is queued


def _batches(items: list[InputItem], batch_size: int, read: _Reader) -> Iterator[list[Row]]:
    """Items in order, each with its image or its error; a batch closes once it holds `batch_size` images."""
    batch: list[Row] = []
    good = 0
    for row in _read_ahead(items, read, window=2 * batch_size):
        batch.append(row)
        good += row[1] is not None
        if good == batch_size:
            yield batch
            batch, good = [], 0
    if batch:
        yield batch


class _Status:
    """A one-line status ("loading MODEL...") on stderr while a slow step runs, when stderr is a terminal; erased
    after."""

    def __init__(self, stderr: TextIO, text: str):
        self.stderr = stderr if is_terminal(stderr) else None
        self.text = text

    def __enter__(self) -> _Status:
        if self.stderr is not None:
            self.stderr.write(f"{self.text}...")
            self.stderr.flush()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.stderr is not None:
            self.stderr.write("\r\033[K")  # back to the line's start, erase it
            self.stderr.flush()


class _ProgressBar:
    """A rich progress bar on stderr; `above` is a stream whose lines are printed above the bar."""

    def __init__(self, total: int, stderr: TextIO):
        from rich.console import Console
        from rich.progress import Progress

        self.console = Console(file=stderr)
        self.progress = Progress(console=self.console, transient=True, redirect_stdout=False, redirect_stderr=False)
        self.task = self.progress.add_task("images", total=total)
        self.above = _ConsoleLines(self.console)
        self.progress.start()

    def advance(self, n: int) -> None:
        self.progress.advance(self.task, n)

    def stop(self) -> None:
        self.progress.stop()


class _ConsoleLines(io.TextIOBase):
    """A text stream that prints through a rich console, so a live progress bar stays below what is written."""

    def __init__(self, console):
        self.console = console

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self.console.out(text, end="", highlight=False)
        return len(text)
