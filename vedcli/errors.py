"""Typed errors meant for the user. The CLI turns each into one line: `Error: <what> (<where>)`.

The library names an option (a DecodingOptions or TrainOptions field, a setting such as `device`) with
`option("top_p")`, in a message or as `where`, never by a command-line flag. `message` and `where` read each as its
name (`top_p`); inside `options_named(...)` as that front end calls it: the CLI's table gives its flag (`--top-p`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_MARKED = re.compile("\x1e([a-z][a-z0-9_]*)\x1f")  # an option as `option` marks it in a text
_naming: ContextVar[Callable[[str], str] | None] = ContextVar("ved_option_naming", default=None)


def option(name: str) -> str:
    """The option `name` as a message or a `where` mentions it: f"{option('top_p')} needs {option('do_sample')}"."""
    return f"\x1e{name}\x1f"


def spell(text: str) -> str:
    """`text` with every option it mentions named as the front end in charge names options (by default: as
    the option's own name)."""
    naming = _naming.get()
    return _MARKED.sub(lambda m: naming(m.group(1)) if naming is not None else m.group(1), text)


@contextmanager
def options_named(naming: Callable[[str], str]) -> Iterator[None]:
    """Within it, errors (and `spell`) name each option as `naming(name)` says: the CLI's flags."""
    token = _naming.set(naming)
    try:
        yield
    finally:
        _naming.reset(token)


class VedError(Exception):
    """Base class. `where` names the file, option or model the message is about."""

    exit_code = 2

    def __init__(self, message: str, where: str | None = None):
        super().__init__(message)
        self.raw_message = message  # as written: options marked by `option`
        self.raw_where = where

    @property
    def message(self) -> str:
        return spell(self.raw_message)

    @property
    def where(self) -> str | None:
        return spell(self.raw_where) if self.raw_where is not None else None

    @property
    def option(self) -> str | None:
        """The name of the option this error is about, when `where` is one."""
        found = _MARKED.fullmatch(self.raw_where or "")
        return found.group(1) if found else None

    def __str__(self) -> str:
        where = self.where
        return f"{self.message} ({where})" if where else self.message


class ModelError(VedError):
    """A model that cannot be found, downloaded, parsed or loaded."""


class OptionError(VedError):
    """A bad option (a generation, training or command setting); `where` is the option (`option("top_p")`)."""


class InputError(VedError):
    """A bad input item (missing file, not an image, corrupt image). Batches skip it and carry on."""

    exit_code = 1


class VedWarning(UserWarning):
    """Something the user should know that does not stop the work (weights holding NaN, say). The CLI prints it as
    one line, `Warning: <what> (<where>)`."""

    def __init__(self, message: str, where: str | None = None):
        super().__init__(f"{message} ({where})" if where else message)
        self.raw_message = message
        self.raw_where = where

    @property
    def message(self) -> str:
        return spell(self.raw_message)

    @property
    def where(self) -> str | None:
        return spell(self.raw_where) if self.raw_where is not None else None

    def __str__(self) -> str:
        where = self.where
        return f"{self.message} ({where})" if where else self.message
