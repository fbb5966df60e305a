"""Several processes over one list of inputs: `torchrun --nproc_per_node N -m vedcli caption ... -o OUT`.

Every process lists all the inputs (lazily, in the same order) and reads input number i when i % N is its rank, so
the split is the same on every machine and in every run. A process writes what it reads to a part of its own,
`OUT.parts/rank{r}-of-{N}.{k}.jsonl` (k: its k-th run with this rank and size, so a later run never appends to an
earlier one's part): one JSON line per input, `{"i": index, "file", "failed", "text"}`, `text` being exactly what
the output gets for that input. When all are done, rank 0 merges the parts (and what OUT held already) into OUT in
input order, through a temporary file renamed over it, and removes the parts.

`--resume` reads OUT and every part, whichever number of processes wrote them, so a run can go on with another
number of processes (or alone); the merge takes, for each input, the newest word on it: a result over an error, a
part over OUT. A single process left with parts of an earlier run (or retrying failures, which must go back in their
place) writes a part of its own and merges at the end in the same way.

Processes talk through torch.distributed (gloo, on CPU: only small objects pass) for three things: rank 0's checks
of the output (every process then stops with the same error), a barrier before the merge, and the counts for the
summary; and `--fail-fast` leaves a key in torchrun's store that every process looks for after each batch.
"""

from __future__ import annotations

import heapq
import json
import os
import re
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

from ..errors import VedError

PART = re.compile(r"rank(\d+)-of-(\d+)\.(\d+)\.jsonl")
STOP_KEY = "vedcli/fail-fast"  # set in the store by a process that met a bad input under --fail-fast
WAIT = timedelta(days=2)  # how long a process may wait for the others (the slowest shard, the merge)
T = TypeVar("T")


@dataclass(frozen=True)
class Shard:
    """This process's place among the processes torchrun started (rank 0 of 1 without torchrun)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls) -> Shard:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        return cls(int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0")))

    @property
    def several(self) -> bool:
        return self.world > 1

    def mine(self, index: int) -> bool:
        """Whether input number `index` is this process's to read."""
        return index % self.world == self.rank


class Group:
    """The processes of a torchrun launch, joined through torch.distributed (gloo); a lone process talks to no one."""

    def __init__(self, shard: Shard):
        self.shard = shard
        if shard.several:
            import torch.distributed as dist

            if not dist.is_initialized():
                dist.init_process_group("gloo", rank=shard.rank, world_size=shard.world, timeout=WAIT)
            self.dist = dist

    def agree(self, work: Callable[[], T]) -> T:
        """`work()` run by rank 0 only; its result, or the VedError it raised, is every process's."""
        if not self.shard.several:
            return work()
        box: list[Any] = [None]
        if self.shard.rank == 0:
            try:
                box[0] = ("ok", work())
            except VedError as error:
                box[0] = ("error", type(error), error.raw_message, error.raw_where)
        self.dist.broadcast_object_list(box, src=0)
        if box[0][0] == "error":
            _, kind, message, where = box[0]
            raise kind(message, where)
        return box[0][1]

    def stop_all(self) -> None:
        """`--fail-fast`: every process stops after the batch it is reading (a key in torchrun's store, which every
        process, on every machine, reaches)."""
        if self.shard.several:
            self._store().set(STOP_KEY, str(self.shard.rank))

    def stopped(self) -> bool:
        """Whether some process has called `stop_all` (a non-blocking look at the store: one round trip)."""
        return self.shard.several and self._store().check([STOP_KEY])

    def _store(self):
        from torch.distributed import distributed_c10d

        return distributed_c10d._get_default_store()  # the rendezvous store init_process_group made (c10d's own)

    def gather(self, obj: T) -> list[T]:
        """Every process's `obj`, in rank order (waits for all of them)."""
        if not self.shard.several:
            return [obj]
        out: list[Any] = [None] * self.shard.world
        self.dist.all_gather_object(out, obj)
        return out

    def close(self) -> None:
        if self.shard.several and self.dist.is_initialized():
            self.dist.destroy_process_group()


# --- parts --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Chunk:
    """One input's output, in a part."""

    index: int
    key: str
    failed: bool
    text: str


def parts_folder(output: str | Path) -> Path:
    return Path(f"{output}.parts")


def part_files(output: str | Path) -> list[Path]:
    """The parts left beside `output`, oldest run first (by k, then rank and size)."""
    folder = parts_folder(output)
    try:
        names = [entry.name for entry in os.scandir(folder)]
    except OSError:
        return []
    found = [(int(m[3]), int(m[2]), int(m[1]), name) for name in names if (m := PART.fullmatch(name))]
    return [folder / name for *_order, name in sorted(found)]


def new_part(output: str | Path, shard: Shard) -> Path:
    """The part this process writes in this run: the next k for its rank and size."""
    folder = parts_folder(output)
    folder.mkdir(exist_ok=True)
    taken = [int(m[3]) for p in part_files(output) if (m := PART.fullmatch(p.name))
             and (int(m[1]), int(m[2])) == (shard.rank, shard.world)]  # fmt: skip
    return folder / f"rank{shard.rank}-of-{shard.world}.{max(taken, default=0) + 1}.jsonl"


def part_line(index: int, key: str, failed: bool, text: str) -> str:
    return json.dumps({"i": index, "file": key, "failed": failed, "text": text}) + "\n"


def read_part(path: Path) -> Iterator[Chunk]:
    """The whole chunks of a part (a line cut off by a kill is left out: its input is redone)."""
    try:
        file = open(path, "rb")
    except OSError:
        return
    with file:
        for raw in file:
            try:
                row = json.loads(raw) if raw.endswith(b"\n") else None
                chunk = Chunk(int(row["i"]), str(row["file"]), bool(row["failed"]), str(row["text"]))
            except (ValueError, KeyError, TypeError):
                return  # a cut-off (last) line
            yield chunk


def remove_parts(output: str | Path) -> None:
    """Remove the parts beside `output` (only files ved names so) and their folder once empty."""
    for part in part_files(output):
        part.unlink(missing_ok=True)
    try:
        parts_folder(output).rmdir()
    except OSError:
        pass


def merge(output: Path, header: str, records: Iterator | None, read_at: Callable[[int, int], bytes],
          placed: dict[str, deque[int]]) -> None:  # fmt: skip
    """Write `output` anew from its own `records` (resume.Record, in file order; None: it holds none) and the parts
    beside it, in input order, then remove the parts. `placed` gives the input numbers of the files found in the
    output (as the run listed them); `read_at(start, end)` the bytes of a record."""
    parts = part_files(output)
    # for each file, the part whose word on it wins: one holding a result, else the newest
    winner: dict[str, tuple[bool, int]] = {}
    for n, part in enumerate(parts):
        for chunk in read_part(part):
            best = winner.get(chunk.key)
            if best is None or not best[0]:  # a result stays; an error gives way to a result or a newer error
                winner[chunk.key] = (not chunk.failed, n)

    def from_output() -> Iterator[tuple[int, int, bytes]]:
        last = -1
        for record in records or ():
            if record.key in winner:  # done again since (a failure retried, or a merge cut short)
                continue
            queue = placed.get(record.key)
            last = queue.popleft() if queue else last  # a file no longer listed keeps its place
            yield last, -1, read_at(record.start, record.end)

    def from_part(n: int, part: Path) -> Iterator[tuple[int, int, bytes]]:
        for chunk in read_part(part):
            if winner[chunk.key][1] == n:
                yield chunk.index, n, chunk.text.encode("utf-8", "surrogateescape")

    sources = [from_output(), *(from_part(n, part) for n, part in enumerate(parts))]
    temporary = output.with_name(f".{output.name}.merging")
    with open(temporary, "wb") as out:
        out.write(header.encode("utf-8"))
        for _index, _source, text in heapq.merge(*sources, key=lambda t: (t[0], t[1])):
            out.write(text)
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, output)
    remove_parts(output)
