"""A checkpoint's generation defaults, read the way transformers reads them.

Where they come from, in transformers 5.x (`GenerationMixin.adjust_generation_fn`):

1. `generation_config.json`, when the folder has one: its values, nothing else.
2. Otherwise the legacy generation attributes of `config.json`: the top-level ones first, then, for whatever is
   still unset, the ones of the `decoder` sub-config (`GenerationConfig.from_model_config`).

One deliberate extension: when generation_config.json names neither decoder_start_token_id nor bos_token_id (where
the reference refuses to generate), the start token is taken from config.json as in 2.

A field left at None means "unset": the decoding engine then applies transformers' global default
(20 new tokens, num_beams 1, top_k 50, ...; see `decoding.DecodingOptions.resolve`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..checkpoints.files import read_json
from ..errors import ModelError
from ..validate import Fields, check_token_ids, is_int

GENERATION_CONFIG_FILE = "generation_config.json"
MODEL_CONFIG_FILE = "config.json"

# Sub-configs of a composite config.json whose generation attributes fill what the top level leaves unset.
_TEXT_SUBCONFIGS = ("decoder", "generator", "text_config")


@dataclass
class GenerationConfig:
    """Generation defaults of one checkpoint folder; None = unset (the reference's global default applies)."""

    # special tokens
    decoder_start_token_id: int | None = None  # first decoder token; falls back to bos_token_id
    bos_token_id: int | None = None
    eos_token_id: int | list[int] | None = None  # one id or several: any of them ends a sequence
    pad_token_id: int | None = None  # fills finished sequences; falls back to the first eos id
    # length
    max_length: int | None = None  # total decoder length, start token included
    max_new_tokens: int | None = None  # takes precedence over max_length
    min_length: int | None = None  # total length before which eos is suppressed
    min_new_tokens: int | None = None  # takes precedence over min_length
    # strategy
    num_beams: int | None = None
    do_sample: bool | None = None
    temperature: float | None = None
    top_k: int | None = None
    top_p: float | None = None
    length_penalty: float | None = None
    early_stopping: bool | str | None = None  # True, False or "never"
    num_return_sequences: int | None = None
    # logit processing
    no_repeat_ngram_size: int | None = None
    repetition_penalty: float | None = None
    bad_words_ids: list[list[int]] | None = None
    forced_bos_token_id: int | None = None
    forced_eos_token_id: int | list[int] | None = None

    def __post_init__(self) -> None:
        # not fields (never written back): where each value came from, and what the model allows
        self.sources: dict[str, tuple[str, str]] = {}  # field -> (file, key in it), for messages
        self.decoder_positions: int | None = None  # the longest sequence the decoder's positions can place

    def source(self, name: str) -> tuple[str, str] | None:
        """(file, key) a set field was read from; None for values set in code."""
        return self.sources.get(name)

    @property
    def eos_token_ids(self) -> tuple[int, ...]:
        """The end-of-sequence ids as a tuple (empty when none is set)."""
        if self.eos_token_id is None:
            return ()
        if isinstance(self.eos_token_id, int):
            return (self.eos_token_id,)
        return tuple(self.eos_token_id)

    @property
    def start_token_id(self) -> int | None:
        """The id the decoder starts from: decoder_start_token_id, else bos_token_id."""
        return self.decoder_start_token_id if self.decoder_start_token_id is not None else self.bos_token_id

    @classmethod
    def from_dict(cls, values: dict[str, Any], where: str | None = None, section: str = "") -> GenerationConfig:
        """The known fields of `values` (a generation_config.json), each checked (ConfigFieldError names the key and
        `where`); other keys are ignored."""
        gen = cls()
        gen._read(values, where, section)
        return gen

    def _read(self, values: dict[str, Any], where: str | None, section: str, only_unset: bool = False) -> None:
        """Set the known fields of `values`, checked; with `only_unset`, only fields still None."""
        f = Fields(values, section, where)
        for name, kind in FIELD_KINDS.items():
            if values.get(name) is None or (only_unset and getattr(self, name) is not None):
                continue
            setattr(self, name, _READERS[kind](f, name))
            self.sources[name] = (where or "", f.name(name))

    @classmethod
    def from_model_config(cls, config: dict[str, Any], where: str | None = None) -> GenerationConfig:
        """The legacy generation attributes of a config.json: top level first, then the decoder sub-config."""
        gen = cls.from_dict({key: value for key, value in config.items() if value is not None}, where)
        if config.get("force_bos_token_to_be_generated"):  # BART-era spelling of forced_bos_token_id
            gen.forced_bos_token_id = gen.bos_token_id
        name = next((name for name in _TEXT_SUBCONFIGS if config.get(name)), None)
        if name is not None and isinstance(config[name], dict):
            gen._read(config[name], where, name, only_unset=True)
        return gen

    @classmethod
    def from_folder(
        cls, folder: str | Path, vocab_size: int | None = None, decoder_positions: int | None = None
    ) -> GenerationConfig:
        """Generation defaults of a checkpoint folder (generation_config.json, else config.json), every value
        checked; with `vocab_size`, token ids must lie inside the vocabulary."""
        folder = Path(folder)
        gen_file = folder / GENERATION_CONFIG_FILE
        model_file = folder / MODEL_CONFIG_FILE
        if gen_file.is_file():
            gen = cls.from_dict(read_json(gen_file), str(gen_file))
            if gen.start_token_id is None and model_file.is_file():
                # The reference would stop here ("decoder_start_token_id or bos_token_id has to be defined");
                # the model config usually still knows the start token.
                legacy = cls.from_model_config(read_json(model_file), str(model_file))
                gen.decoder_start_token_id = legacy.start_token_id
                key = "decoder_start_token_id" if legacy.decoder_start_token_id is not None else "bos_token_id"
                if legacy.source(key):
                    gen.sources["decoder_start_token_id"] = legacy.sources[key]
        elif model_file.is_file():
            gen = cls.from_model_config(read_json(model_file), str(model_file))
        else:
            raise ModelError(f"no {GENERATION_CONFIG_FILE} or {MODEL_CONFIG_FILE} in the model folder",
                             where=str(folder))  # fmt: skip
        if vocab_size is not None:
            gen.check_tokens(vocab_size)
        gen.decoder_positions = decoder_positions
        return gen

    def check_tokens(self, vocab_size: int) -> None:
        """Every token id set lies inside a `vocab_size`-token vocabulary (ConfigFieldError naming file and key)."""
        for name, kind in FIELD_KINDS.items():
            value = getattr(self, name)
            if kind not in ("token", "tokens", "token_lists") or value is None:
                continue
            flat = [i for ids in value for i in ids] if kind == "token_lists" else value
            where, key = self.source(name) or (None, name)
            check_token_ids({key: flat}, vocab_size, where)

    def to_dict(self) -> dict[str, Any]:
        """The set fields, as a generation_config.json that transformers loads."""
        return {key: value for key, value in asdict(self).items() if value is not None}

    def save(self, folder: str | Path) -> Path:
        """Write generation_config.json into `folder`; returns its path."""
        path = Path(folder) / GENERATION_CONFIG_FILE
        path.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n", encoding="utf-8")
        return path


def _token_lists(f: Fields, key: str) -> list[list[int]]:
    value = f.d[key]
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(ids, list) and ids and all(is_int(i) and i >= 0 for i in ids) for ids in value)
    ):
        raise f.fail(key, "a non-empty list of non-empty token-id lists", value)
    return value


def _early_stopping(f: Fields, key: str) -> bool | str:
    value = f.d[key]
    if value not in (True, False, "never") or not isinstance(value, (bool, str)):
        raise f.fail(key, 'true, false or "never"', value)
    return value


# field -> how it is read and checked (ranges that depend on other options are checked when decoding resolves them)
FIELD_KINDS = {
    "decoder_start_token_id": "token", "bos_token_id": "token", "eos_token_id": "tokens", "pad_token_id": "token",
    "max_length": "length", "max_new_tokens": "positive", "min_length": "count", "min_new_tokens": "count",
    "num_beams": "positive", "do_sample": "flag", "temperature": "above_zero", "top_k": "count",
    "top_p": "probability", "length_penalty": "number", "early_stopping": "early_stopping",
    "num_return_sequences": "positive", "no_repeat_ngram_size": "count", "repetition_penalty": "above_zero",
    "bad_words_ids": "token_lists",
    "forced_bos_token_id": "token", "forced_eos_token_id": "tokens",
}  # fmt: skip
_READERS = {
    "token": lambda f, key: f.token(key),
    "tokens": lambda f, key: f.tokens(key),
    "length": lambda f, key: f.count(key, 0, minimum=2),  # the start token and at least one new token
    "positive": lambda f, key: f.count(key, 0),
    "count": lambda f, key: f.count(key, 0, minimum=0),
    "flag": lambda f, key: f.flag(key, False),
    "number": lambda f, key: f.number(key, 0.0),
    "above_zero": lambda f, key: f.number(key, 0.0, positive=True),
    "probability": lambda f, key: f.fraction(key, 0.0),
    "early_stopping": _early_stopping,
    "token_lists": _token_lists,
}


@dataclass(frozen=True)
class SpecialTokens:
    """The ids decoding needs from the checkpoint, resolved as the reference does."""

    start: int  # decoder_start_token_id, else bos_token_id
    eos: tuple[int, ...]  # empty: sequences only stop at max length
    pad: int | None  # fills finished rows; pad_token_id, else the first eos id
    forced_bos: int | None = None
    forced_eos: tuple[int, ...] | None = None

    @classmethod
    def from_config(cls, gen: GenerationConfig) -> SpecialTokens:
        start = gen.start_token_id
        if start is None:
            raise ModelError("the checkpoint sets neither decoder_start_token_id nor bos_token_id")
        eos = gen.eos_token_ids
        pad = gen.pad_token_id if gen.pad_token_id is not None else (eos[0] if eos else None)
        forced_eos = gen.forced_eos_token_id
        if isinstance(forced_eos, int):
            forced_eos = (forced_eos,)
        return cls(
            start=start,
            eos=eos,
            pad=pad,
            forced_bos=gen.forced_bos_token_id,
            forced_eos=tuple(forced_eos) if forced_eos is not None else None,
        )
