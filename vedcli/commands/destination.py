"""Where a `ved caption` / `ved ocr` run writes, what is there already, and which inputs are left to read.

- stdout, or `--output FILE` written from the start (or, with `--resume`, appended to after what it holds);
- a part per process (shards.py), merged into FILE at the end: under torchrun, when an earlier several-process run
  left parts, and with `--retry-failed` (a retried input goes back in its place);
- `--output-dir DIR`: a file per input (outdir.py).

An existing FILE (or parts, or results in DIR) is refused unless `--resume` (go on) or `--force` (start again, over a
text file only); an output that is an input is refused by the caller (safety.check_output_not_input).
"""

from __future__ import annotations

import os
from collections import defaultdict, deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from ..errors import InputError, OptionError, option
from .inputs import InputItem
from .outdir import ERROR, EXTENSIONS, DirSink, Names, check_folder
from .output import encodable
from .resume import Done, OutputScan, check_existing_output
from .shards import Group, Shard, merge, new_part, part_files, read_part, remove_parts
from .sinks import NewWriter, PartSink, Sink, StreamSink, header_of


@dataclass
class Tally:
    """What this process did: inputs read with results, inputs that failed, inputs skipped as done before."""

    done: int = 0
    failed: int = 0
    skipped: int = 0


@dataclass
class Destination:
    output: str | None  # None or "-": stdout
    output_dir: str | None
    fmt: str
    resume: bool
    force: bool
    retry_failed: bool
    shard: Shard
    group: Group
    existing: bool = False  # FILE holds results already (to go on with, or to write anew with force)
    leftover: bool = False  # parts of an earlier run lie beside FILE
    mode: str = "stream"  # stream | append | parts | dir
    header: str = ""
    several_rows: bool = False
    done_output: Done = field(default_factory=Done)
    done_parts: Done = field(default_factory=Done)
    placed: dict[str, deque[int]] = field(default_factory=lambda: defaultdict(deque))
    scan: OutputScan | None = None
    names: Names | None = None
    sink: Sink | None = None

    @classmethod
    def plan(cls, *, output: str | None, output_dir: str | None, fmt: str, resume: bool, force: bool,
             retry_failed: bool, shard: Shard, group: Group) -> Destination:  # fmt: skip
        """Check the output (on rank 0; every process gets its verdict) before the model loads."""
        to_file = output not in (None, "-")
        if output_dir is not None and to_file:
            raise OptionError(f"give {option('output')} or {option('output_dir')}, not both", option("output_dir"))
        if resume and force:
            raise OptionError(f"{option('resume')} goes on with the output, {option('force')} writes it anew: "
                              "give one", option("force"))  # fmt: skip
        if retry_failed and not resume:
            raise OptionError(f"{option('retry_failed')} needs {option('resume')}", option("retry_failed"))
        if (resume or force or shard.several) and not to_file and output_dir is None:
            what = option("resume") if resume else option("force") if force else "several processes (torchrun)"
            raise OptionError(f"{what} needs {option('output')} FILE or {option('output_dir')} DIR",
                              option("output"))  # fmt: skip
        if shard.several and to_file and fmt in ("hocr", "alto"):
            raise OptionError(f"several processes write {fmt} one file per input: use {option('output_dir')}",
                              option("format"))  # fmt: skip
        plan = cls(output, output_dir, fmt, resume, force, retry_failed, shard, group)
        if output_dir is not None:
            group.agree(lambda: check_folder(output_dir, fmt=fmt, resume=resume, force=force))
            plan.mode = "dir"
            return plan
        if to_file:
            assert output is not None
            plan.existing, plan.leftover = group.agree(plan._check_file)
            use_parts = shard.several or (resume and (plan.leftover or retry_failed))
            plan.mode = "parts" if use_parts else "append" if resume and plan.existing else "stream"
        return plan

    def _check_file(self) -> tuple[bool, bool]:
        assert self.output is not None
        leftover = bool(part_files(self.output))
        if leftover and not (self.resume or self.force):
            raise OptionError(f"an earlier run left its parts in {self.output}.parts; {option('resume')} goes on "
                              f"with it, {option('force')} starts again", self.output)  # fmt: skip
        existing = check_existing_output(self.output, resume=self.resume, force=self.force, fmt=self.fmt)
        return existing, leftover

    def prepare(self, new_writer: NewWriter, several_rows: bool) -> None:
        """Once the model is loaded (the writers' shape is known): with `force`, clear the old output (rank 0, then
        everyone waits for it); with `resume`, read what is done."""
        self.header = header_of(new_writer)
        self.several_rows = several_rows
        if self.mode == "dir":
            self.names = Names(self.fmt)
            return
        if self.output in (None, "-"):
            return
        assert self.output is not None
        if self.force:
            self.group.agree(self._clear)
            return
        if not self.resume:
            return
        if self.existing:
            self.scan = OutputScan(self.output, self.fmt, self.header, several_rows)
            for record in self.scan:
                self.done_output.add(record.key, record.failed)
        for part in part_files(self.output):
            for chunk in read_part(part):
                self.done_parts.add(chunk.key, chunk.failed)

    def _clear(self) -> None:
        assert self.output is not None
        remove_parts(self.output)
        if self.existing:
            with open(self.output, "w", encoding="utf-8"):
                pass
            self.existing = False

    def todo(self, items: Iterable[InputItem], tally: Tally) -> Iterator[tuple[int, InputItem]]:
        """The inputs this process reads, with their numbers in the whole list: its shard, less what is done."""
        target = os.path.abspath(self.output) if self.output not in (None, "-") else None
        for index, item in enumerate(items):
            if self.names is not None:
                name = self.names.name(item)
                if not self.shard.mine(index):
                    continue
                assert isinstance(self.sink, DirSink) and self.output_dir is not None
                base = Path(self.output_dir) / name
                done = Path(f"{base}{EXTENSIONS[self.fmt]}").exists() or (
                    not self.retry_failed and Path(f"{base}{ERROR}").exists()
                )
                if done and self.resume:
                    tally.skipped += 1
                    continue
                self.sink.plan(index, name, EXTENSIONS[self.fmt])
                yield index, item
                continue
            if self.done_output.take(item.path, self.retry_failed):
                self.placed[encodable(item.path)].append(index)
                tally.skipped += self.shard.mine(index)
            elif self.done_parts.take(item.path, self.retry_failed):
                tally.skipped += self.shard.mine(index)
            elif self.shard.mine(index):
                if target is not None and os.path.abspath(item.path) == target:
                    item = InputItem(item.path, InputError("is the output file; ved never reads what it writes",
                                                           item.path))  # fmt: skip
                yield index, item

    def open(self, stdout: TextIO, err: TextIO, new_writer: NewWriter, single: bool) -> Sink:
        """The sink this process writes to."""
        if self.mode == "dir":
            assert self.output_dir is not None
            Path(self.output_dir).mkdir(parents=True, exist_ok=True)
            self.sink = DirSink(self.output_dir, new_writer, err)
        elif self.mode == "parts":
            assert self.output is not None
            part = open(new_part(self.output, self.shard), "w", encoding="utf-8")
            self.sink = PartSink(part, new_writer, single=single)
        elif self.output in (None, "-"):
            self.sink = StreamSink(stdout, new_writer, single=single)
        else:
            assert self.output is not None
            appending = self.mode == "append" and self.scan is not None and self.scan.has_header
            out = self._open_file(appending)
            self.sink = StreamSink(out, new_writer, single=single, appending=appending)
        return self.sink

    def _open_file(self, appending: bool) -> TextIO:
        assert self.output is not None
        try:
            if self.mode == "append" and self.scan is not None:
                os.truncate(self.output, self.scan.end)  # a record cut off by a kill: redone
                return open(self.output, "a", encoding="utf-8", newline="")
            return open(self.output, "w", encoding="utf-8", newline="")
        except OSError as error:
            reason = error.strerror.lower() if error.strerror else str(error)
            raise OptionError(f"cannot write {self.output}: {reason}", option("output")) from None

    def finish(self) -> None:
        """After every process is done (the caller waits for them): rank 0 merges the parts into the output."""
        if self.mode != "parts" or self.shard.rank != 0:
            return
        assert self.output is not None
        path = Path(self.output)
        scan = self.scan
        with open(path, "rb") if path.exists() else _Empty() as file:

            def read_at(start: int, end: int) -> bytes:
                file.seek(start)
                return file.read(end - start)

            merge(path, self.header, iter(scan) if scan is not None else None, read_at, self.placed)
        if not path.exists():
            path.touch()


class _Empty:
    def __enter__(self):
        return None

    def __exit__(self, *exc: object) -> None:
        return None
