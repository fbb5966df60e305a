"""Checks for the config values ved reads: every field typed and ranged once, where it is read.

Each family's `config_from_hf` reads its section of config.json through a `Fields` reader, so a bad value is one
`ConfigFieldError` naming the field (`encoder.hidden_size must be a positive integer, got "48"`) and the file,
before any tensor exists. Relations between fields (heads divide widths, token ids inside the vocabulary) and the
size of the whole model against this machine's memory are checked by the functions below.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Sequence
from typing import Any

from .errors import ModelError

MAX_LAYERS = 1024  # more blocks than any published model has; beyond this a config is a typo, not a model


class ConfigFieldError(ModelError):
    """A bad config value; `key` is the field inside its section (`hidden_size`, "" for the whole section),
    `section` the section, `keys` every field the message is about (a width and its head count, say)."""

    def __init__(self, message: str, where: str | None, key: str, section: str = "", also: tuple[str, ...] = ()):
        super().__init__(message, where)
        self.key = key
        self.section = section
        self.keys = tuple(k for k in (key, *also) if k)


def show(value: Any) -> str:
    """A config value as JSON writes it: "48" for a string, null, true, 48.5, NaN."""
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


class Fields:
    """Typed, checked reads of one config section. A missing key takes its default; a wrong value raises
    ConfigFieldError naming `section.key` and `where` (the file)."""

    def __init__(self, d: Any, section: str, where: str | None):
        self.section = section
        self.where = where
        if not isinstance(d, dict):
            raise ConfigFieldError(f"{section or 'the config'} must be a JSON object, got {show(d)}", where, "",
                                   section)  # fmt: skip
        self.d = d

    def name(self, key: str) -> str:
        return f"{self.section}.{key}" if self.section else key

    def fail(self, key: str, what: str, value: Any) -> ConfigFieldError:
        return ConfigFieldError(f"{self.name(key)} must be {what}, got {show(value)}", self.where, key, self.section)

    def count(self, key: str, default: int, minimum: int = 1, maximum: int | None = None) -> int:
        """A whole number >= minimum (a size, a layer count)."""
        value = self.d.get(key, default)
        if not is_int(value) or value < minimum or (maximum is not None and value > maximum):
            what = "a positive integer" if minimum == 1 else f"a whole number >= {minimum}"
            raise self.fail(key, what + (f" up to {maximum}" if maximum is not None else ""), value)
        return value

    def layers(self, key: str, default: int) -> int:
        return self.count(key, default, minimum=0, maximum=MAX_LAYERS)

    def optional_count(self, key: str) -> int | None:
        """A positive integer, or None when the key is missing or null."""
        return None if self.d.get(key) is None else self.count(key, 0)

    def number(self, key: str, default: float, positive: bool = False) -> float:
        """A finite number (> 0 when `positive`)."""
        value = self.d.get(key, default)
        if not is_number(value) or (positive and value <= 0):
            raise self.fail(key, "a finite number > 0" if positive else "a finite number", value)
        return float(value)

    def eps(self, key: str, default: float) -> float:
        """A LayerNorm epsilon: finite and > 0."""
        return self.number(key, default, positive=True)

    def fraction(self, key: str, default: float) -> float:
        """A dropout probability in [0, 1]; null means the default."""
        value = self.d.get(key)
        value = default if value is None else value
        if not is_number(value) or not 0 <= value <= 1:
            raise self.fail(key, "a probability between 0 and 1", value)
        return float(value)

    def flag(self, key: str, default: bool) -> bool:
        """true or false; null reads as false, as transformers' `if config.x:` reads it."""
        value = self.d.get(key, default)
        if value is None:
            return False
        if not isinstance(value, bool):
            raise self.fail(key, "true or false", value)
        return value

    def choice(self, key: str, default: str, choices: Iterable[str]) -> str:
        value = self.d.get(key, default)
        choices = sorted(choices)
        if not isinstance(value, str) or value not in choices:
            raise self.fail(key, f"one of {', '.join(choices)}", value)
        return value

    def activation(self, key: str, default: str) -> str:
        from .layers import ACTIVATIONS

        return self.choice(key, default, ACTIVATIONS)

    def pair(self, key: str, default: int | Sequence[int]) -> tuple[int, int]:
        """A side or [height, width], each a positive integer."""
        value = self.d.get(key, default)
        if is_int(value) and value >= 1:
            return value, value
        if isinstance(value, (list, tuple)) and len(value) == 2 and all(is_int(v) and v >= 1 for v in value):
            return int(value[0]), int(value[1])
        raise self.fail(key, "a positive integer or [height, width]", value)

    def counts(self, key: str, default: Sequence[int], minimum: int = 1) -> tuple[int, ...]:
        """A non-empty list of whole numbers >= minimum (Swin's stage depths and head counts)."""
        value = self.d.get(key, default)
        if (
            not isinstance(value, (list, tuple))
            or not value
            or len(value) > MAX_LAYERS
            or not all(is_int(v) and minimum <= v <= MAX_LAYERS * 64 for v in value)
        ):
            what = "positive integers" if minimum == 1 else f"whole numbers >= {minimum}"
            raise self.fail(key, f"a non-empty list of {what}", value)
        return tuple(value)

    def token(self, key: str, default: int | None = None) -> int | None:
        """A token id (a whole number >= 0), or None when missing or null."""
        value = self.d.get(key, default)
        if value is not None and (not is_int(value) or value < 0):
            raise self.fail(key, "a token id (a whole number >= 0)", value)
        return value

    def tokens(self, key: str) -> int | list[int] | None:
        """One token id or a non-empty list of them (eos_token_id), or None."""
        value = self.d.get(key)
        if value is None or (is_int(value) and value >= 0):
            return value
        if isinstance(value, list) and value and all(is_int(v) and v >= 0 for v in value):
            return value
        raise self.fail(key, "a token id or a list of token ids", value)

    def divides(self, width_key: str, width: int, heads_key: str, heads: int) -> None:
        """Attention splits a width into heads of equal size."""
        if heads < 1 or width % heads:
            raise ConfigFieldError(
                f"{self.name(width_key)} {width} is not divisible by {self.name(heads_key)} {heads}",
                self.where,
                heads_key,
                self.section,
                also=(width_key,),
            )


def check_token_ids(ids: dict[str, Any], vocab_size: int, where: str | None, section: str = "") -> None:
    """Every id (an int, a list of ints, or None) names a row of a `vocab_size`-token vocabulary."""
    for key, value in ids.items():
        values = value if isinstance(value, (list, tuple)) else [value]
        for v in values:
            if v is not None and (not is_int(v) or not 0 <= v < vocab_size):
                name = f"{section}.{key}" if section else key
                raise ConfigFieldError(
                    f"{name} {show(value)} is not a token id of the decoder's vocabulary (0 to {vocab_size - 1})",
                    where,
                    key,
                    section,
                )


# ---------------------------------------------------------------------------------------------------- memory


def physical_memory() -> int | None:
    """Bytes of memory this machine has (None when the system does not say)."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def gigabytes(n: float) -> str:
    return f"{n / 2**30:,.3g} GB" if n < 2**30 * 1000 else f"{n / 2**30:,.0f} GB"


def check_memory(parts: dict[str, int], bytes_each: int, where: str | None, section: str = "") -> None:
    """Refuse a model whose parameters (counted per part) would not fit in this machine's memory."""
    total = sum(parts.values())
    memory = physical_memory()
    if memory is None or total * bytes_each <= memory:
        return
    largest = max(parts, key=parts.get)
    raise ConfigFieldError(
        f"the model is too large for this machine: about {total:.2g} parameters (most in the {largest}) need "
        f"{gigabytes(total * bytes_each)} at {bytes_each} bytes each, and this machine has {gigabytes(memory)} "
        "of memory",
        where,
        "",
        section,
    )


PROCESSED_BYTES_PER_PIXEL = 16  # a processed image: 3 float32 planes, plus the RGB image resized to that size


def check_image_size(height: int, width: int, name: str) -> None:
    """Refuse an image processor size of which one image would take more than an eighth of this machine's memory
    (a batch holds several, and the model needs the rest)."""
    memory = physical_memory()
    need = height * width * PROCESSED_BYTES_PER_PIXEL
    if memory is not None and need * 8 > memory:
        raise ModelError(
            f"{name} {height}x{width} is too large for this machine: each processed image would take "
            f"{gigabytes(need)}, and this machine has {gigabytes(memory)} of memory"
        )
