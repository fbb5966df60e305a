"""model_type -> its record (vedcli/family.py): where code that depends on a model's family asks, instead of
switching on model_type strings. The records themselves live in the family files of encoders/ and decoders/."""

from __future__ import annotations

from typing import Any

from .decoders import RECORDS as DECODERS
from .encoders import FAMILIES as ENCODERS
from .family import DecoderFamily, EncoderFamily, Family

FAMILIES: dict[str, Family] = {**ENCODERS, **DECODERS}


def family(kind: Any) -> Family | None:
    """The record of model_type `kind`, None for one ved does not know (or a value that is no model_type)."""
    return FAMILIES.get(kind) if isinstance(kind, str) else None


def encoder_family(kind: Any) -> EncoderFamily | None:
    return ENCODERS.get(kind) if isinstance(kind, str) else None


def decoder_family(kind: Any) -> DecoderFamily | None:
    """Decoders ved reads, and those `ved compose` converts into one (DistilBERT)."""
    return DECODERS.get(kind) if isinstance(kind, str) else None


def field_name(kind: Any, key: str) -> str:
    """The field config key `key` sets in a `kind` config (itself unless it is one of the family's aliases)."""
    record = family(kind)
    return record.field_name(key) if record is not None else key


def resolve_aliases(d: dict[str, Any]) -> dict[str, Any]:
    """Config dict `d` with its family's aliases read into the fields they name, as transformers reads them (`d`
    itself when it holds none, or its model_type is unknown)."""
    record = family(d.get("model_type"))
    return record.resolve_aliases(d) if record is not None else d
