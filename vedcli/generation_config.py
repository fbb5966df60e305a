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
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from .errors import ModelError

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
    def from_dict(cls, values: dict[str, Any]) -> GenerationConfig:
        """The known fields of `values` (a generation_config.json); other keys are ignored."""
        names = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in values.items() if key in names})

    @classmethod
    def from_model_config(cls, config: dict[str, Any]) -> GenerationConfig:
        """The legacy generation attributes of a config.json: top level first, then the decoder sub-config."""
        top = {key: value for key, value in config.items() if value is not None}
        gen = cls.from_dict(top)
        if top.get("force_bos_token_to_be_generated"):  # BART-era spelling of forced_bos_token_id
            gen.forced_bos_token_id = gen.bos_token_id
        sub = next((config[name] for name in _TEXT_SUBCONFIGS if config.get(name)), None)
        if isinstance(sub, dict):
            for f in fields(cls):
                if getattr(gen, f.name) is None and f.name in sub:
                    setattr(gen, f.name, sub[f.name])
        return gen

    @classmethod
    def from_folder(cls, folder: str | Path) -> GenerationConfig:
        """Generation defaults of a checkpoint folder (generation_config.json, else config.json)."""
        folder = Path(folder)
        gen_file = folder / GENERATION_CONFIG_FILE
        if gen_file.is_file():
            gen = cls.from_dict(_read_json(gen_file))
            if gen.start_token_id is None:
                # The reference would stop here ("decoder_start_token_id or bos_token_id has to be defined");
                # the model config usually still knows the start token.
                model_file = folder / MODEL_CONFIG_FILE
                if model_file.is_file():
                    legacy = cls.from_model_config(_read_json(model_file))
                    gen.decoder_start_token_id = legacy.start_token_id
            return gen
        model_file = folder / MODEL_CONFIG_FILE
        if model_file.is_file():
            return cls.from_model_config(_read_json(model_file))
        raise ModelError(f"no {GENERATION_CONFIG_FILE} or {MODEL_CONFIG_FILE} in the model folder", where=str(folder))

    def to_dict(self) -> dict[str, Any]:
        """The set fields, as a generation_config.json that transformers loads."""
        return {key: value for key, value in asdict(self).items() if value is not None}

    def save(self, folder: str | Path) -> Path:
        """Write generation_config.json into `folder`; returns its path."""
        path = Path(folder) / GENERATION_CONFIG_FILE
        path.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n", encoding="utf-8")
        return path


def _read_json(path: Path) -> dict[str, Any]:
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ModelError(f"cannot read {path.name}: {err}", where=str(path)) from err
    if not isinstance(values, dict):
        raise ModelError(f"{path.name} is not a JSON object", where=str(path))
    return values
