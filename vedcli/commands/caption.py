"""One `ved caption` / `ved ocr` run: inputs read in order and batched, the pipeline run on each batch, results and
error rows written as each batch completes, a progress bar on a terminal.

What can be checked without the model comes first (flags, inputs), then the model folder is found (a missing model is
reported before torch is imported), then the model loads (a status line on a terminal). Images are decoded by a few
threads ahead of the model, as many as fit in READ_AHEAD_BYTES (at least one), each shrunk right after decoding to
what the model's processor needs (image.open_image), so big images do not pile up in memory, and turned into the
processor's pixel values by the same thread (benchmarks/loading.py: threads beat worker processes here).
"""

from __future__ import annotations

import io
import os
import time
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice
from typing import TYPE_CHECKING, TextIO

from PIL import Image

from .. import interrupts
from ..checkpoints.safety import check_output_not_input
from ..errors import InputError, OptionError, option
from ..terminal import is_terminal
from .destination import Destination, Tally
from .inputs import InputItem, is_image_name, iter_inputs
from .output import make_writer
from .shards import Group, Shard
from .sinks import Write

if TYPE_CHECKING:
    from torch import Tensor

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
    dtype: str | None = None  # None: the pipeline's default (fp32 on CPU); "auto": the fastest native type
    quantize: str | None = None  # "int8": dynamic int8 linear layers (CPU)
    batch_size: int = 8
    format: str = "text"
    output: str | None = None  # None: stdout
    options: DecodingOptions | None = None  # None: every option at the checkpoint's default
    max_pixels: int | None = None  # refuse bigger images; None: open_image's default (image.MAX_PIXELS); 0: no limit
    layout: str | None = None  # ved ocr: "auto" | "page": find the lines of pages (pages.py); None, "line": whole
    debug_layout: str | None = None  # where the layout drawings go (a file for one input, else a folder)
    output_dir: str | None = None  # one file per input in this folder (outdir.py) instead of `output`
    resume: bool = False  # go on with the output: skip the inputs it holds (resume.py)
    force: bool = False  # write an existing output anew
    retry_failed: bool = False  # with resume: read again the inputs whose record is an error
    fail_fast: bool = False  # stop at the first input that cannot be read


def caption_inputs(settings: RunSettings, stdin: TextIO, stdout: TextIO, stderr: TextIO) -> int:
    """Caption every input, writing results as each batch completes; returns how many inputs were bad (under torchrun:
    rank 0 returns the count of every process, the others 0). Raises VedError for a bad run (model, options, output,
    no inputs) before any image is read."""
    started = time.monotonic()
    if settings.batch_size < 1:
        raise OptionError(f"{option('batch_size')} must be at least 1", where=option("batch_size"))
    if settings.max_pixels is not None and settings.max_pixels < 0:
        raise OptionError(f"{option('max_pixels')} must be at least 0 (0: no limit)", where=option("max_pixels"))
    from ..generation.options import DecodingOptions
    from ..generation.pipeline import Pipeline

    options = settings.options or DecodingOptions()
    options.check()  # values no checkpoint can make right: before any model is read
    listing = Listing(iter_inputs(settings.inputs, stdin))
    if not listing.peek(1):
        raise _no_inputs(settings.inputs)
    pages = settings.layout in ("auto", "page")
    if not pages and settings.format in ("hocr", "alto"):
        raise OptionError(f"{option('format')} {settings.format} needs {option('layout')} auto or page (ved ocr)",
                          where=option("format"))  # fmt: skip
    if not pages and settings.debug_layout is not None:
        raise OptionError(f"{option('debug_layout')} needs {option('layout')} auto or page (ved ocr)",
                          where=option("debug_layout"))  # fmt: skip
    _check_not_an_input(settings, listing)
    shard = Shard.from_env()
    group = Group(shard)
    try:
        return _run(settings, options, listing, pages, shard, group, started, Pipeline, stdout, stderr)
    finally:
        group.close()


def _run(settings, options, listing, pages, shard, group, started, Pipeline, stdout, stderr) -> int:  # noqa: N803
    destination = Destination.plan(
        output=settings.output,
        output_dir=settings.output_dir,
        fmt=settings.format,
        resume=settings.resume,
        force=settings.force,
        retry_failed=settings.retry_failed,
        shard=shard,
        group=group,
    )
    debug = None
    if pages and settings.debug_layout is not None:
        from .pages import DebugDrawings

        debug = DebugDrawings(settings.debug_layout, [item.path for item in listing.peek(None)])
    # The model first, and the options checked against it, so a bad run fails before any image is read.
    with _Status(stderr, f"loading {settings.model}"):
        fast = {"quantize": settings.quantize} if settings.quantize else {}  # opt-in: int8 linear layers
        pipeline = Pipeline.load(settings.model, settings.revision, device=_device(settings.device, shard),
                                 dtype=settings.dtype, **fast)  # fmt: skip
    resolved = pipeline.resolve(options)
    if pages and resolved.num_return_sequences > 1:
        raise OptionError(f"{option('num_return_sequences')} above 1 needs {option('layout')} line",
                          where=option("num_return_sequences"))  # fmt: skip
    interrupts.started()  # from here Ctrl-C stops cleanly, keeping what was written
    loaded = time.monotonic()
    single = len(listing.peek(2)) == 1
    # A progress bar when stderr is a terminal that the results are not printed on as well (rank 0's share).
    to_stdout = settings.output in (None, "-") and settings.output_dir is None
    show_bar = is_terminal(stderr) and not (to_stdout and is_terminal(stdout)) and shard.rank == 0
    bar = _ProgressBar(None, stderr) if show_bar else None
    err = bar.above if bar else stderr
    if pages:
        from .pages import PageWriter, line_score

        def score(hyp) -> float:
            return line_score(hyp.score, hyp.tokens, resolved.num_beams, resolved.length_penalty)

        def new_writer(out: TextIO, one: bool):
            return PageWriter(settings.format, out, single_input=one, score=score, err=err)

        several_rows = settings.format in ("csv", "tsv")
    else:
        ranked = resolved.num_return_sequences > 1

        def new_writer(out: TextIO, one: bool):
            return make_writer(settings.format, out, single_input=one, ranked=ranked, err=err)

        several_rows = ranked
    tally = Tally()
    try:
        destination.prepare(new_writer, several_rows)
        sink = destination.open(stdout, err, new_writer, single)
        try:
            todo = destination.todo(listing, tally)
            if pages:
                _read_pages(settings, pipeline, options, todo, sink, bar, tally, group, debug)
            else:
                _read_lines(settings, pipeline, options, todo, sink, bar, tally, group)
        finally:
            sink.close()
    finally:
        if bar:
            bar.stop()
    tallies = group.gather(tally)  # waits for every process
    destination.finish()
    if shard.rank != 0:
        return 0
    total = Tally(*(sum(getattr(t, name) for t in tallies) for name in ("done", "failed", "skipped")))
    if to_stdout and not (is_terminal(stderr) and not single) and not settings.resume:
        return total.failed
    stderr.write(summary(total, time.monotonic() - loaded, time.monotonic() - started) + "\n")
    stderr.flush()
    return total.failed


def _read_lines(settings, pipeline, options, todo, sink, bar, tally, group: Group) -> None:
    """The line run (`ved caption`, `ved ocr --layout line`): every input read whole, in batches."""
    reader = _Reader(settings.max_pixels, pipeline.processor)
    for batch in _batches(todo, settings.batch_size, reader):
        images = [image for _index, _item, image, _error in batch if image is not None]
        results = iter(pipeline.run(images, options) if images else [])
        for index, item, _image, error in batch:
            if error is not None:
                sink.put(index, item.path, error, _error_row(item.path, error))
                tally.failed += 1
                if settings.fail_fast:
                    sink.flush()
                    group.stop_all()  # under torchrun the other processes stop after their current batch
                    return
            else:
                sink.put(index, item.path, None, _results(item.path, next(results)))
                tally.done += 1
        sink.flush()
        if bar:
            bar.advance(len(batch))
        if settings.fail_fast and group.stopped():  # another process met a bad input
            return


def _read_pages(settings, pipeline, options, todo, sink, bar, tally, group: Group, debug) -> None:
    """The `--layout auto|page` run: pages decoded whole (boxes in the files' pixels), lines read in batches; each page
    written as soon as it is read."""
    from .pages import read_pages

    for batch in _batches(todo, settings.batch_size, _Reader(settings.max_pixels, None)):
        rows = [(item, image) for _index, item, image, error in batch if error is None]
        read = read_pages(rows, pipeline, options, settings.layout, settings.batch_size, debug)
        for index, item, _image, error in batch:
            if error is not None:
                sink.put(index, item.path, error, _error_row(item.path, error))
                tally.failed += 1
                if settings.fail_fast:
                    sink.flush()
                    group.stop_all()  # under torchrun the other processes stop after their current batch
                    return
            else:
                sink.put(index, item.path, None, _page(next(read)))
                tally.done += 1
        sink.flush()
        if bar:
            bar.advance(len(batch))
        if settings.fail_fast and group.stopped():  # another process met a bad input
            return


def _results(path: str, hypotheses) -> Write:
    return lambda writer: writer.results(path, hypotheses)


def _error_row(path: str, error: InputError) -> Write:
    return lambda writer: writer.error(path, error)


def _page(page) -> Write:
    return lambda writer: writer.page(page)


def summary(tally: Tally, reading: float, wall: float) -> str:
    """The run's last line on stderr: `done 98, skipped 900, failed 2, 7.9 images/s, wall time 14.2 s` (images/s:
    inputs read per second once the model was loaded)."""
    rate = (tally.done + tally.failed) / reading if reading > 0 else 0.0
    return (f"done {tally.done}, skipped {tally.skipped}, failed {tally.failed}, {rate:.3g} images/s, "
            f"wall time {wall:.1f} s")  # fmt: skip


def _device(device: str, shard: Shard) -> str:
    """Under torchrun each process of a machine takes its own GPU (LOCAL_RANK)."""
    if not shard.several or device not in ("auto", "cuda"):
        return device
    import torch

    if not torch.cuda.is_available():
        return device
    if shard.local_rank >= torch.cuda.device_count():
        raise OptionError(f"process {shard.local_rank} has no GPU of its own ({torch.cuda.device_count()} visible)",
                          option("nproc_per_node"))  # fmt: skip
    return f"cuda:{shard.local_rank}"


class Listing:
    """The inputs, listed lazily, once; `peek(n)` lists the first n ahead of time (None: all)."""

    def __init__(self, items: Iterator[InputItem]):
        self.items = items
        self.head: deque[InputItem] = deque()

    def peek(self, n: int | None) -> list[InputItem]:
        while n is None or len(self.head) < n:
            item = next(self.items, None)
            if item is None:
                break
            self.head.append(item)
        return list(islice(self.head, n))

    def __iter__(self) -> Iterator[InputItem]:
        while self.head:
            yield self.head.popleft()
        yield from self.items


def _check_not_an_input(settings: RunSettings, listing: Listing) -> None:
    """Refuse an output file that is an input, before any work: a file argument (or another name of it), a file a
    folder argument holds, or (when the output exists and would be refused anyway, or paths come from stdin and it
    exists) any input listed. Inputs met later that are the output become error rows (destination.todo)."""
    output = settings.output
    if output in (None, "-"):
        return
    assert output is not None
    named = [arg for arg in settings.inputs if arg != "-" and not os.path.isdir(arg)]
    real = os.path.realpath(output)
    for arg in settings.inputs:
        if arg != "-" and os.path.isdir(arg) and is_image_name(output):
            folder = os.path.realpath(arg)
            if os.path.commonpath([folder, real]) == folder:
                named.append(os.path.join(arg, os.path.relpath(real, folder)))
    check_output_not_input(output, named)
    if os.path.exists(output) and not (settings.resume or settings.force):
        check_output_not_input(output, (item.path for item in listing.peek(None)))


def _no_inputs(args: list[str]) -> OptionError:
    """The error for a run without images, naming the folder (or the list) that held none."""
    if len(args) == 1 and args[0] != "-" and os.path.isdir(args[0]):
        return OptionError("no inputs: the folder holds no image files", where=args[0])
    if args == ["-"]:
        return OptionError("no inputs: no paths were read from stdin", where="-")
    if args:
        return OptionError("no inputs: the folders and lists given hold no image files", where=", ".join(args))
    return OptionError("no inputs: give image files, folders, or - to read paths from stdin", where="INPUT")


Row = tuple[InputItem, "Image.Image | Tensor | None", InputError | None]  # an input with its image (or its pixel
# values), or with its error
Numbered = tuple[int, InputItem, "Image.Image | Tensor | None", InputError | None]  # and its number in the list


class _Reader:
    """Reads one input within the pixel limit: as the pipeline's processor's pixel values (3, H, W), or, without a
    processor, as a PIL image."""

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
            image = open_image(item.path, self.max_pixels, self.processor)
            if self.processor is not None:  # its pixel values, made here in the reading thread, not the model's
                return item, self.processor.process(image), None
            return item, image, None
        except ImageTooLarge as error:
            message = f"{error.raw_message}; {option('max_pixels')} raises the limit"
            return item, None, InputError(message, error.raw_where)
        except InputError as error:
            return item, None, error


def _read_ahead(items: Iterable[InputItem], read: _Reader, window: int, max_bytes: int | None = None) -> Iterator[Row]:
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


def _batches(todo: Iterable[tuple[int, InputItem]], batch_size: int, read: _Reader) -> Iterator[list[Numbered]]:
    """Numbered items in order, each with its image or its error; a batch closes once it holds `batch_size`
    images."""
    numbers: deque[int] = deque()

    def items() -> Iterator[InputItem]:
        for index, item in todo:
            numbers.append(index)
            yield item

    batch: list[Numbered] = []
    good = 0
    for item, image, error in _read_ahead(items(), read, window=2 * batch_size):
        batch.append((numbers.popleft(), item, image, error))
        good += image is not None
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

    def __init__(self, total: int | None, stderr: TextIO):
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
