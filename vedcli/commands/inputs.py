"""Command-line inputs -> the list of image paths to read, in order.

Each argument is a file, a folder (its image files, recursively, sorted), or `-` (paths read from stdin, one per
line), listed lazily (`iter_inputs`). Missing paths are kept: reading them later gives an error row naming the file.
A folder that cannot be listed becomes an item that already carries its error.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TextIO

from PIL import Image

from ..errors import InputError

STDIN = "-"


@dataclass(frozen=True)
class InputItem:
    """One input: a path to read as an image, or (when `error` is set) a path known to be bad already."""

    path: str
    error: InputError | None = None
    root: str | None = None  # the folder argument it was found in (None: named itself, or read from stdin)


@lru_cache(maxsize=1)
def image_extensions() -> frozenset[str]:
    """Lower-case file extensions (with the dot) of the image formats PIL can open."""
    Image.init()
    return frozenset(ext.lower() for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN)


def is_image_name(path: str | Path) -> bool:
    """Whether the file name has an image extension known to PIL (case-insensitive)."""
    return Path(path).suffix.lower() in image_extensions()


def expand_inputs(args: list[str], stdin: TextIO) -> list[InputItem]:
    """Expand files, folders and `-` into input items, keeping the order of the arguments."""
    return list(iter_inputs(args, stdin))


def iter_inputs(args: list[str], stdin: TextIO) -> Iterator[InputItem]:
    """The input items of `args`, in order, listed lazily: a folder is walked (and stdin read) only as far as the
    caller has got, so a run over 100,000 files starts at once and holds one folder's names at a time."""
    stdin_read = False
    for arg in args:
        if arg == STDIN:
            if stdin_read:
                continue  # stdin is read once; a second `-` has nothing left to give
            stdin_read = True
            for line in _stdin_lines(stdin):
                path = line.rstrip("\r\n")
                if path.strip():
                    yield from _expand_path(path)
        else:
            yield from _expand_path(arg)


def _stdin_lines(stdin: TextIO):
    """stdin's lines as file names: its bytes decoded as the file system decodes names (os.fsdecode), so a name
    that is not UTF-8, or binary data piped by mistake, becomes names to report rather than a decoding error."""
    buffer = getattr(stdin, "buffer", None)
    if buffer is None:  # a text-only stream (io.StringIO)
        yield from stdin
        return
    for raw in buffer:
        yield os.fsdecode(raw)


def _expand_path(path: str) -> Iterator[InputItem]:
    if os.path.isdir(path):
        yield from _images_in_folder(path, path)
    else:
        yield InputItem(path)


def _images_in_folder(folder: str, root: str) -> Iterator[InputItem]:
    """Image files under `folder`, recursively, sorted by path (folder by folder: `a/0.png` before `a.png`), one
    folder listed at a time; a folder that cannot be listed is an error item in its place. Links to folders are not
    followed (as os.walk does)."""
    try:
        with os.scandir(folder) as listing:
            entries = sorted(listing, key=lambda entry: entry.name)
    except OSError as error:
        where = error.filename if isinstance(error.filename, str) else folder
        reason = error.strerror.lower() if error.strerror else "cannot list folder"
        yield InputItem(where, InputError(f"cannot read folder: {reason}", where=where), root)
        return
    for entry in entries:
        try:
            is_folder = entry.is_dir() and not entry.is_symlink()
        except OSError:
            is_folder = False
        if is_folder:
            yield from _images_in_folder(entry.path, root)
        elif is_image_name(entry.name) and not _is_linked_folder(entry):
            yield InputItem(entry.path, root=root)


def _is_linked_folder(entry: os.DirEntry) -> bool:
    try:
        return entry.is_symlink() and entry.is_dir()
    except OSError:
        return False
