"""Command-line inputs -> the list of image paths to read, in order.

Each argument is a file, a folder (its image files, recursively, sorted), or `-` (paths read from stdin, one per
line). Missing paths are kept: reading them later gives an error row naming the file. A folder that cannot be
listed becomes an item that already carries its error.
"""

from __future__ import annotations

import os
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
    items: list[InputItem] = []
    stdin_read = False
    for arg in args:
        if arg == STDIN:
            if stdin_read:
                continue  # stdin is read once; a second `-` has nothing left to give
            stdin_read = True
            for line in _stdin_lines(stdin):
                path = line.rstrip("\r\n")
                if path.strip():
                    items.extend(_expand_path(path))
        else:
            items.extend(_expand_path(arg))
    return items


def _stdin_lines(stdin: TextIO):
    """stdin's lines as file names: its bytes decoded as the file system decodes names (os.fsdecode), so a name
    that is not UTF-8, or binary data piped by mistake, becomes names to report rather than a decoding error."""
    buffer = getattr(stdin, "buffer", None)
    if buffer is None:  # a text-only stream (io.StringIO)
        yield from stdin
        return
    for raw in buffer:
        yield os.fsdecode(raw)


def _expand_path(path: str) -> list[InputItem]:
    if os.path.isdir(path):
        return _images_in_folder(path)
    return [InputItem(path)]


def _images_in_folder(folder: str) -> list[InputItem]:
    """Image files under `folder`, recursively, sorted by path (folder by folder); unreadable folders as errors."""
    found: list[tuple[tuple[str, ...], InputItem]] = []

    def unreadable(error: OSError) -> None:
        where = error.filename or folder
        reason = error.strerror.lower() if error.strerror else "cannot list folder"
        item = InputItem(where, InputError(f"cannot read folder: {reason}", where=where))
        found.append((Path(os.path.relpath(where, folder)).parts, item))

    for parent, _dirs, files in os.walk(folder, onerror=unreadable):
        for name in files:
            if is_image_name(name):
                path = os.path.join(parent, name)
                found.append((Path(os.path.relpath(path, folder)).parts, InputItem(path)))
    found.sort(key=lambda pair: pair[0])
    return [item for _key, item in found]
