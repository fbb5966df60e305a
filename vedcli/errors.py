"""Typed errors meant for the user. The CLI turns each into one line: `Error: <what> (<where>)`."""

from __future__ import annotations


class VedError(Exception):
    """Base class. `where` names the file, flag or model the message is about."""

    exit_code = 2

    def __init__(self, message: str, where: str | None = None):
        super().__init__(message)
        self.message = message
        self.where = where

    def __str__(self) -> str:
        return f"{self.message} ({self.where})" if self.where else self.message


class ModelError(VedError):
    """A model that cannot be found, downloaded, parsed or loaded."""


class OptionError(VedError):
    """A bad command-line flag or generation option; `where` is the flag."""


class InputError(VedError):
    """A bad input item (missing file, not an image, corrupt image). Batches skip it and carry on."""

    exit_code = 1


class VedWarning(UserWarning):
    """Something the user should know that does not stop the work (weights holding NaN, say). The CLI prints it as
    one line, `Warning: <what> (<where>)`."""

    def __init__(self, message: str, where: str | None = None):
        super().__init__(f"{message} ({where})" if where else message)
        self.message = message
        self.where = where
