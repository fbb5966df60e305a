"""Whether a stream is a terminal: progress bars and status lines only go to one."""

from __future__ import annotations

from typing import TextIO


def is_terminal(stream: TextIO) -> bool:
    """True for an interactive terminal; False for files, pipes, closed streams and stand-ins without isatty."""
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
