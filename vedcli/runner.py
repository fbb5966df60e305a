"""One `ved caption` / `ved ocr` run: inputs read in order and batched, the pipeline run on each batch, results and
error rows written as each batch completes, a progress bar on a terminal."""

from __future__ import annotations

import io
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, TextIO

from PIL import Image

from .errors import InputError, OptionError
from .inputs import InputItem, expand_inputs
from .output import make_writer, open_output
from .safety import check_output_not_input

if TYPE_CHECKING:
    from .decoding import DecodingOptions

READ_THREADS = 4  # threads decoding input images ahead of the model


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



def caption_inputs(settings: RunSettings, stdin: TextIO, stdout: TextIO, stderr: TextIO) -> int:
    """Caption every input, writing results as each batch completes; returns how many inputs were bad.
    Raises VedError for a bad run (model, options, no inputs) before any image is read."""
    if settings.batch_size < 1:
        raise OptionError("--batch-size must be at least 1", where="--batch-size")
    from .decoding import DecodingOptions
    from .pipeline import Pipeline

    options = settings.options or DecodingOptions()
    items = expand_inputs(settings.inputs, stdin)
    if not items:
        raise OptionError("no inputs: give image files, folders, or - to read paths from stdin", where="INPUT")
    check_output_not_input(settings.output, (item.path for item in items))  # never write over an input
    # The model first, and the options checked against it, so a bad run fails before any image is read.
    pipeline = Pipeline.load(settings.model, settings.revision, device=settings.device, dtype=settings.dtype)
    resolved = pipeline.resolve(options)
    out = stdout if settings.output in (None, "-") else open_output(settings.output)
    # A progress bar when stderr is a terminal that the results are not printed on as well.
    show_bar = is_terminal(stderr) and not (out is stdout and is_terminal(stdout))
    bar = None
    bad = 0
    try:
        bar = _ProgressBar(len(items), stderr) if show_bar else None
        writer = make_writer(settings.format, out, single_input=len(items) == 1,
                             ranked=resolved.num_return_sequences > 1, err=bar.above if bar else stderr)
        for batch in _batches(items, settings.batch_size):
            images = [image for _item, image, _error in batch if image is not None]
            results = iter(pipeline.run(images, options) if images else [])
            for item, image, error in batch:
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


Row = tuple[InputItem, Image.Image | None, InputError | None]  # an input with its image, or with its error


def _read(item: InputItem) -> Row:
    """An input with its decoded image, or with the error that says why it has none."""
    from .image import open_image

    if item.error is not None:
        return item, None, item.error
    try:
        return item, open_image(item.path), None
    except InputError as error:
        return item, None, error


def _read_ahead(items: list[InputItem], window: int) -> Iterator[Row]:
    """`_read` of every item, in order, decoded by a few threads up to `window` items ahead of the consumer (image
    decoding releases the GIL), so the model does not wait for files between batches."""
    with ThreadPoolExecutor(max_workers=READ_THREADS) as pool:
        pending: deque[Future[Row]] = deque()
        for item in items:
            pending.append(pool.submit(_read, item))
            if len(pending) > window:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _batches(items: list[InputItem], batch_size: int) -> Iterator[list[Row]]:
    """Items in order, each with its image or its error; a batch closes once it holds `batch_size` images."""
    batch: list[Row] = []
    good = 0
    for row in _read_ahead(items, window=2 * batch_size):
        batch.append(row)
        good += row[1] is not None
        if good == batch_size:
            yield batch
            batch, good = [], 0
    if batch:
        yield batch


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


def is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
