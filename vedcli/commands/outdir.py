"""`--output-dir DIR`: one file per input, as whisper's CLI writes them.

`page.png` gives `DIR/page.txt` (`.jsonl`, `.csv`, `.tsv`, `.hocr`, `.xml` for ALTO); an input found in a folder
argument keeps its place below that folder (`scans/a/1.png` -> `DIR/a/1.txt`), so inputs of the same name in
different folders do not meet. Where two inputs would still get the same name (`page.png` and `page.jpg`), the later
one gets `page-2.txt`, and so on, in input order (so every process of a torchrun launch, and every resumed run,
names them alike). An input that cannot be read gets `NAME.error` instead, holding its error line.

Each file is written whole under a temporary name and renamed into place, so a file there is a finished input: a
killed run leaves at most a temporary file (`.NAME.partial`), which the next run replaces. `--resume` skips the
inputs whose file (or `.error` file) is there.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import TextIO

from ..errors import InputError, OptionError, VedError, option
from .inputs import InputItem
from .output import printable
from .resume import is_text_file
from .sinks import NewWriter, Sink, Write, _close

EXTENSIONS = {"text": ".txt", "jsonl": ".jsonl", "csv": ".csv", "tsv": ".tsv", "hocr": ".hocr", "alto": ".xml"}
ERROR = ".error"


class Names:
    """The file each input gets below the folder (relative paths), in input order; `name(item)` must be asked for
    every input, in order, by every process alike."""

    def __init__(self, fmt: str):
        self.extension = EXTENSIONS[fmt]
        self.used: set[str] = set()

    def name(self, item: InputItem) -> str:
        if item.root is not None:
            relative = os.path.relpath(item.path, item.root)
        else:
            relative = os.path.basename(os.path.normpath(item.path)) or "image"
        stem = os.path.splitext(relative)[0] or "image"
        name, n = stem, 1
        while name in self.used:
            n += 1
            name = f"{stem}-{n}"
        self.used.add(name)
        return name


def check_folder(folder: str, *, fmt: str, resume: bool, force: bool) -> None:
    """Refuse (OptionError naming the folder) a folder that is a file, or that holds results ved would write there
    (a `.EXT` or `.error` file), unless `resume` or `force`."""
    path = Path(folder)
    if path.exists() and not path.is_dir():
        raise OptionError("is a file, not a folder", folder)
    if resume or force or not path.is_dir():
        return
    ours = (EXTENSIONS[fmt], ERROR)
    for _parent, _folders, files in os.walk(folder):
        found = next((name for name in files if name.endswith(ours)), None)
        if found is not None:
            raise OptionError(f"already holds results ({found}); {option('resume')} goes on with them, "
                              f"{option('force')} writes them anew", folder)  # fmt: skip


class DirSink(Sink):
    """One file per input below `folder`, each written whole and renamed into place."""

    def __init__(self, folder: str, new_writer: NewWriter, err: TextIO):
        self.folder = Path(folder)
        self.new_writer = new_writer
        self.err = err
        self.targets: dict[int, Path] = {}  # input number -> its file without extension, set by `plan`
        self.extension = ".txt"

    def plan(self, index: int, name: str, extension: str) -> Path:
        """Input `index` will be written to NAME + extension; returns that path without the extension."""
        self.extension = extension
        self.targets[index] = base = self.folder / name
        return base

    def put(self, index: int, path: str, error: VedError | None, write: Write) -> None:
        base = self.targets.pop(index)
        if error is not None:
            line = f"Error: {printable(error.message)} ({printable(path)})\n"
            self.err.write(line)
            self.err.flush()
            self._save(Path(f"{base}{ERROR}"), line)
            return
        capture = io.StringIO()
        writer = self.new_writer(capture, True)
        write(writer)
        _close(writer)
        self._save(Path(f"{base}{self.extension}"), capture.getvalue())
        Path(f"{base}{ERROR}").unlink(missing_ok=True)  # an earlier failure, retried

    def _save(self, target: Path, text: str) -> None:
        if target.exists() and not is_text_file(target):
            raise InputError("exists and is not a text file ved wrote; ved will not replace it", str(target))
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(f".{target.name}.partial")
        with open(temporary, "w", encoding="utf-8", newline="") as file:
            file.write(text)
        os.replace(temporary, target)
