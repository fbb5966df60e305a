"""Where the results of each input go: a stream (stdout, or the output file, new or appended to by `--resume`), a
part of a several-process run (shards.py), or a file per input (outdir.py).

The writers (output.py, pages.py) write to a text stream; a sink gives them one and, where it must know what belongs
to which input, takes what they wrote after each input (`Capture`).
"""

from __future__ import annotations

import io
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, TextIO

from ..errors import VedError
from .output import encodable
from .shards import part_line

Writer = Any  # output.ResultWriter or pages.PageWriter
NewWriter = Callable[[TextIO, bool], Writer]  # (stream, single input) -> a writer over it
Write = Callable[[Writer], None]  # what to write for one input: writer.results(...), .error(...), .page(...)


class Switch(io.TextIOBase):
    """A text stream that passes what is written to `target`, or drops it while `muted` (a header already in the
    file a resumed run appends to)."""

    def __init__(self, target: TextIO, muted: bool = False):
        self.target, self.muted = target, muted

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if not self.muted:
            self.target.write(text)
        return len(text)

    def flush(self) -> None:
        self.target.flush()


def header_of(new_writer: NewWriter, single: bool = False) -> str:
    """What a writer writes before any input (csv / tsv: the header line; else nothing)."""
    capture = io.StringIO()
    writer = new_writer(capture, single)
    text = capture.getvalue()
    _close(writer)
    return text


class Sink(ABC):
    """Takes the output of one input at a time, in input order."""

    @abstractmethod
    def put(self, index: int, path: str, error: VedError | None, write: Write) -> None:
        """Input number `index` (`path`), which failed with `error` or not: `write(writer)` writes its results or its
        error row."""

    def flush(self) -> None:  # noqa: B027 - most sinks write at once
        """The end of a batch: what was put is on disk (or on its way to the reader)."""

    def close(self) -> None:  # noqa: B027
        """The end of the run (also when it stops early)."""


class StreamSink(Sink):
    """One writer over one stream: stdout, or the output file (`appending`: its header is there already)."""

    def __init__(self, out: TextIO, new_writer: NewWriter, *, single: bool, appending: bool = False):
        self.out = out
        self.switch = Switch(out, muted=appending)
        self.writer = new_writer(self.switch, single)
        self.switch.muted = False

    def put(self, index: int, path: str, error: VedError | None, write: Write) -> None:
        write(self.writer)

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        _close(self.writer)
        self.out.flush()


class PartSink(Sink):
    """This process's part of a several-process run: one JSON line per input holding what its writer wrote."""

    def __init__(self, part: TextIO, new_writer: NewWriter, *, single: bool):
        self.part = part
        self.capture = io.StringIO()
        self.writer = new_writer(self.capture, single)
        self.capture.seek(0)
        self.capture.truncate()  # the header goes into the output once, at the merge

    def put(self, index: int, path: str, error: VedError | None, write: Write) -> None:
        write(self.writer)
        text = self.capture.getvalue()
        self.capture.seek(0)
        self.capture.truncate()
        self.part.write(part_line(index, encodable(path), error is not None, text))

    def flush(self) -> None:
        self.writer.flush()
        self.part.flush()

    def close(self) -> None:
        self.part.close()


def _close(writer: Writer) -> None:
    close = getattr(writer, "close", None)
    if close is not None:
        close()
