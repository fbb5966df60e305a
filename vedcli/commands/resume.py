"""Reading back what a run wrote, so that `--resume` skips it and a killed run loses at most its last record.

A results file (jsonl, csv, tsv) is read row by row with the byte offset where each row ends. The rows of one input
form a record (one row, or, where an input has several rows -- ranks of `--num-return-sequences`, the lines of a
page in csv/tsv -- the rows of the same file in a row). A record is whole when its last row ends in a newline and
parses; the first one that does not must be the last thing in the file (a run killed while writing it) and is cut
off, as is the last record of an input that may have several rows (nothing in the rows says that all were written):
resume redoes that input. Anything else that does not parse means the file is not ved's output of this kind, and it
is never written to.

Files are named in records as the writers write them (`output.encodable`): the key an input is looked up by.
"""

from __future__ import annotations

import csv
import json
import os
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..errors import OptionError, option
from .output import encodable

RESUMABLE = ("jsonl", "csv", "tsv")
TEXT_PROBE = 64 * 1024  # bytes of an existing output looked at to tell a text file from anything else


@dataclass(frozen=True)
class Record:
    """The rows of one input in a results file: its file (as written), whether it is an error row, and where its
    rows lie in the file (bytes start..end)."""

    key: str
    failed: bool
    start: int
    end: int


class OutputScan:
    """The records of an existing results file, read lazily. After iterating: `end`, where the whole records end
    (what follows is a record cut off by a kill, or the last record of a several-row input, to be redone), and
    `has_header` (a csv/tsv header was found whole)."""

    def __init__(self, path: str | Path, fmt: str, header: str, several_rows: bool):
        if fmt not in RESUMABLE:
            raise ValueError(fmt)
        self.path, self.fmt, self.header, self.several_rows = Path(path), fmt, header, several_rows
        self.end = 0
        self.has_header = False

    def __iter__(self) -> Iterator[Record]:
        with open(self.path, "rb") as file:
            last: Record | None = None
            for row in self._rows(file):
                if last is not None and self.several_rows and row.key == last.key and not last.failed:
                    last = Record(last.key, row.failed, last.start, row.end)  # another row of the same input
                    continue
                if last is not None:
                    yield last
                last = row
            if last is not None:
                if self.several_rows and not last.failed:
                    self.end = last.start  # its other rows may not have been written: redo it
                else:
                    yield last

    def _rows(self, file) -> Iterator[Record]:
        self.end = 0
        if self.header:
            first = file.readline()
            if not first.endswith(b"\n"):  # empty, or killed while the header was written: start afresh
                return
            if first.decode("utf-8", "replace") != self.header:
                shown = first.decode("utf-8", "replace").strip()[:80]
                raise OptionError(f"its first line {shown!r} is not the header this run writes "
                                  f"({self.header.strip()}): it was written with other options, or is not a ved "
                                  "output", str(self.path))  # fmt: skip
            self.has_header = True
            self.end = len(first)
        rows = self._csv_rows(file) if self.fmt == "csv" else self._line_rows(file)
        for number, (key, failed, start, end) in enumerate(rows, start=2 if self.header else 1):
            if key is None:  # does not parse
                if file.read(1):
                    raise OptionError(f"line {number} is not a {self.fmt} row ved wrote; ved will not write to it",
                                      str(self.path))  # fmt: skip
                return  # the last row, cut off: redone
            self.end = end
            yield Record(key, failed, start, end)

    def _line_rows(self, file) -> Iterator[tuple[str | None, bool, int, int]]:
        """jsonl and tsv: one row per line."""
        pos = file.tell()
        columns = self.header.count("\t") + 1
        for raw in file:
            start, pos = pos, pos + len(raw)
            key, failed = None, False
            try:
                if raw.endswith(b"\n"):
                    line = raw.decode("utf-8")
                    if self.fmt == "jsonl":
                        row = json.loads(line)
                        if isinstance(row, dict) and isinstance(row.get("file"), str):
                            key, failed = row["file"], "error" in row
                    else:
                        fields = line[:-1].split("\t")
                        if len(fields) == columns:
                            key, failed = unescape_tsv(fields[0]), fields[-1] != ""
            except (UnicodeDecodeError, ValueError):
                pass
            yield key, failed, start, pos
            if key is None:
                return

    def _csv_rows(self, file) -> Iterator[tuple[str | None, bool, int, int]]:
        """csv: a row may span lines (a quoted field holding a newline)."""
        pos = file.tell()
        ended = [True]  # whether the last line read ended in a newline

        def lines() -> Iterator[str]:
            nonlocal pos
            for raw in file:
                pos += len(raw)
                ended[0] = raw.endswith(b"\n")
                yield raw.decode("utf-8")

        columns = len(next(csv.reader([self.header])))
        reader = csv.reader(lines(), strict=True)
        while True:
            start = pos
            try:
                row = next(reader)
            except StopIteration:
                return
            except (csv.Error, UnicodeDecodeError):
                yield None, False, start, pos
                return
            if not ended[0] or len(row) != columns:
                yield None, False, start, pos
                return
            yield row[0], row[-1] != "", start, pos


_TSV_ESCAPE = re.compile(r"\\(.)")
_TSV_CHAR = {"\\": "\\", "t": "\t", "n": "\n", "r": "\r"}


def unescape_tsv(field: str) -> str:
    """The inverse of output.escape_tsv."""
    return _TSV_ESCAPE.sub(lambda m: _TSV_CHAR.get(m.group(1), m.group(0)), field)


class Done:
    """The inputs an earlier run finished (each file counted as often as it was done: an input given twice is done
    twice), and which of them failed."""

    def __init__(self) -> None:
        self.results: Counter[str] = Counter()
        self.failures: Counter[str] = Counter()

    def add(self, key: str, failed: bool) -> None:
        (self.failures if failed else self.results)[key] += 1

    def take(self, path: str, retry_failed: bool) -> bool:
        """Whether input `path` is done already (once: a second input of the same name needs a second record);
        with `retry_failed`, an input whose record is an error is not done."""
        key = encodable(path)
        for counter in (self.results,) if retry_failed else (self.results, self.failures):
            if counter[key] > 0:
                counter[key] -= 1
                return True
        return False

    def __len__(self) -> int:
        return sum(self.results.values()) + sum(self.failures.values())


def is_text_file(path: str | Path) -> bool:
    """Whether `path` looks like a text file ved could have written (UTF-8 text without NUL bytes, as far as its
    first TEXT_PROBE bytes tell): `--force` writes over nothing else, so never over an image or a binary file."""
    try:
        with open(path, "rb") as file:
            head = file.read(TEXT_PROBE)
    except OSError:
        return False
    if b"\0" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as error:
        return error.start >= len(head) - 3  # a character cut by the probe's end
    return True


def check_existing_output(path: str, *, resume: bool, force: bool, fmt: str) -> bool:
    """Whether results file `path` exists with something in it, and may be used: refused (OptionError naming the
    file) unless `resume` (in a format resume reads) or `force` (over a text file only)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    except OSError as error:
        raise OptionError(f"cannot examine it: {(error.strerror or str(error)).lower()}", path) from None
    if not os.path.isfile(path):
        raise OptionError("already exists and is not a file; ved will not replace it", path)
    if st.st_size == 0:
        return False
    if resume:
        if fmt not in RESUMABLE:
            raise OptionError(f"{option('resume')} reads jsonl, csv or tsv results, not {fmt}; or use "
                              f"{option('output_dir')}", option("resume"))  # fmt: skip
        return True
    if not force:
        raise OptionError(f"already exists; {option('resume')} goes on with it, {option('force')} writes it anew",
                          path)  # fmt: skip
    if not is_text_file(path):
        raise OptionError("already exists and is not a text file ved wrote; ved will not replace it", path)
    return True
