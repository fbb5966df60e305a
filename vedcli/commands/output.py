"""Writers for results: --format text | jsonl | csv | tsv, streamed to stdout or --output FILE.

text   one line per result: the text alone when there is exactly one input, else `FILE: TEXT`;
       errors go to stderr as `Error: <message> (<file>)`.
jsonl  {"file", "text", "score"} per result, {"file", "error"} per bad input.
csv    header file,text,score,error; one row per result or bad input.
tsv    the same with tabs; tabs, newlines and backslashes inside fields are escaped (\\t, \\n, \\r, \\\\).

With several results per image (--num-return-sequences > 1) every result row also carries its "rank" (1 = best).
The caller flushes after each batch, so results show up while the rest is still running.
"""

from __future__ import annotations

import csv
import json
import math
import sys
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, TextIO

from ..errors import OptionError, VedError, option

FORMATS = ("text", "jsonl", "csv", "tsv")


class Result(Protocol):
    """What a writer needs from a decoded hypothesis."""

    text: str
    score: float


class ResultWriter(ABC):
    """Writes the results (or the error) of one input at a time, in input order."""

    def __init__(self, out: TextIO, *, ranked: bool):
        self.out = out
        self.ranked = ranked  # several results per input: number them

    @abstractmethod
    def results(self, file: str, results: Sequence[Result]) -> None:
        """The results for `file`, best first."""

    @abstractmethod
    def error(self, file: str, error: VedError) -> None:
        """`file` could not be read."""

    def flush(self) -> None:
        self.out.flush()


class TextWriter(ResultWriter):
    """Plain lines for people; errors on stderr."""

    def __init__(self, out: TextIO, *, ranked: bool, single_input: bool, err: TextIO | None = None):
        super().__init__(out, ranked=ranked)
        self.single_input = single_input
        self.err = err if err is not None else sys.stderr

    def results(self, file: str, results: Sequence[Result]) -> None:
        for result in results:
            self.out.write(result.text + "\n" if self.single_input else f"{printable(file)}: {result.text}\n")

    def error(self, file: str, error: VedError) -> None:
        self.err.write(f"Error: {printable(error.message)} ({printable(file)})\n")
        self.err.flush()


class JsonlWriter(ResultWriter):
    """One JSON object per line."""

    def results(self, file: str, results: Sequence[Result]) -> None:
        for rank, result in enumerate(results, start=1):
            row: dict[str, object] = {"file": encodable(file)}
            if self.ranked:
                row["rank"] = rank
            row.update(text=result.text, score=_json_number(result.score))
            self._write(row)

    def error(self, file: str, error: VedError) -> None:
        self._write({"file": encodable(file), "error": encodable(error.message)})

    def _write(self, row: dict[str, object]) -> None:
        self.out.write(json.dumps(row, ensure_ascii=False) + "\n")


class DelimitedWriter(ResultWriter):
    """CSV (RFC 4180 quoting) or TSV (backslash escapes), with a header line."""

    def __init__(self, out: TextIO, *, ranked: bool, tabs: bool):
        super().__init__(out, ranked=ranked)
        self.tabs = tabs
        self.csv = csv.writer(out, lineterminator="\n")
        self._row(["file", "rank", "text", "score", "error"] if ranked else ["file", "text", "score", "error"])

    def results(self, file: str, results: Sequence[Result]) -> None:
        for rank, result in enumerate(results, start=1):
            ranked = [str(rank)] if self.ranked else []
            self._row([encodable(file), *ranked, result.text, repr(float(result.score)), ""])

    def error(self, file: str, error: VedError) -> None:
        self._row([encodable(file), *([""] if self.ranked else []), "", "", encodable(error.message)])

    def _row(self, fields: list[str]) -> None:
        if self.tabs:
            self.out.write("\t".join(escape_tsv(field) for field in fields) + "\n")
        else:
            self.csv.writerow(fields)


def encodable(text: str) -> str:
    """`text` that any UTF-8 writer can encode: bytes of a file name that are not UTF-8 (which Python keeps as lone
    surrogates) become backslash escapes, so `caf\\xe9.png` is written where the name held byte 0xE9."""
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a surrogate that did not come from a byte (\ud800 from JSON, say)
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


_BIDI = {chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A))}  # reorder the text shown around them


def printable(text: str) -> str:
    """`text` safe to show on a terminal: `encodable`, and control characters (terminal escape sequences, carriage
    returns, newlines, bidi overrides) as backslash escapes, so a file name cannot rewrite the screen."""
    text = encodable(text)
    if text.isprintable():
        return text
    return "".join(
        ch if ch.isprintable() and ch not in _BIDI else ch.encode("unicode_escape").decode("ascii") for ch in text
    )


def escape_tsv(field: str) -> str:
    """A field with no raw tab or newline in it: backslash, tab, newline and CR become \\\\, \\t, \\n, \\r."""
    return field.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def make_writer(
    fmt: str, out: TextIO, *, single_input: bool, ranked: bool = False, err: TextIO | None = None
) -> ResultWriter:
    """The writer for --format `fmt`; `single_input` only changes the text format."""
    if fmt == "text":
        return TextWriter(out, ranked=ranked, single_input=single_input, err=err)
    if fmt == "jsonl":
        return JsonlWriter(out, ranked=ranked)
    if fmt in ("csv", "tsv"):
        return DelimitedWriter(out, ranked=ranked, tabs=fmt == "tsv")
    raise OptionError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}", where=option("format"))


def open_output(path: str | None) -> TextIO:
    """stdout, or `path` opened for writing as UTF-8 (OptionError naming --output if it cannot be)."""
    if path is None or path == "-":
        return sys.stdout
    try:
        return open(Path(path), "w", encoding="utf-8", newline="")
    except OSError as error:
        reason = error.strerror.lower() if error.strerror else str(error)
        raise OptionError(f"cannot write {path}: {reason}", where=option("output")) from None


def _json_number(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None
