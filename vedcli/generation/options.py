"""What the user asks of decoding, checked without torch: `DecodingOptions` (None = the checkpoint's default) ->
`check()` (the values on their own, before any model is read) -> `resolve()` against the checkpoint's generation
config -> `ResolvedOptions` (validated, concrete). Errors name the field they are about (`errors.option`); the CLI
shows it as its flag.

decoding.py (the engine) re-exports these names; this module imports no torch, so that a bad option is refused at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

from ..errors import ModelError, OptionError, VedError, option

if TYPE_CHECKING:
    from .defaults import GenerationConfig

PROMPT_LENGTH = 1  # the decoder prompt is the single start token
_MIN_OVER_MAX = f"{option('min_new_tokens')} is more than {option('max_new_tokens')}"

# transformers' global defaults (`GenerationConfig._get_default_generation_params`), used when neither the
# user nor the checkpoint sets a value.
DEFAULT_MAX_NEW_TOKENS = 20  # max_length 20 counted after the one-token decoder prompt
_DEFAULTS: dict[str, Any] = {
    "num_beams": 1,
    "do_sample": False,
    "temperature": 1.0,
    "top_k": 50,
    "top_p": 1.0,
    "no_repeat_ngram_size": 0,
    "repetition_penalty": 1.0,
    "length_penalty": 1.0,
    "early_stopping": False,
    "num_return_sequences": 1,
}


@dataclass(frozen=True)
class DecodingOptions:
    """What the user asked for; None means "use the checkpoint's default"."""

    max_new_tokens: int | None = None
    min_new_tokens: int | None = None
    num_beams: int | None = None
    do_sample: bool | None = None
    temperature: float | None = None
    top_k: int | None = None  # 0 disables top-k
    top_p: float | None = None
    seed: int | None = None  # seeds the sampling generator; None = random
    no_repeat_ngram_size: int | None = None
    repetition_penalty: float | None = None
    length_penalty: float | None = None  # beam scores are divided by length ** length_penalty
    early_stopping: bool | str | None = None  # True, False or "never"
    num_return_sequences: int | None = None
    bad_words_ids: tuple[tuple[int, ...], ...] | None = None

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> DecodingOptions:
        """Options from transformers' generate() keyword names (num_beams=4, max_length=32, do_sample=True, ...).

        `max_length` / `min_length` count the start token, as in transformers; `max_new_tokens` /
        `min_new_tokens` win over them when both are given.
        """
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(kwargs) - names - {"max_length", "min_length"})
        if unknown:
            raise OptionError(f"unknown generation option {unknown[0]!r}", where=unknown[0])
        max_length = kwargs.pop("max_length", None)
        min_length = kwargs.pop("min_length", None)
        if kwargs.get("max_new_tokens") is None and max_length is not None:
            _check_int(max_length, "max_length", minimum=PROMPT_LENGTH + 1)
            kwargs["max_new_tokens"] = max_length - PROMPT_LENGTH
        if kwargs.get("min_new_tokens") is None and min_length is not None:
            _check_int(min_length, "min_length", minimum=0)
            kwargs["min_new_tokens"] = max(min_length - PROMPT_LENGTH, 0)
        if kwargs.get("bad_words_ids") is not None:
            kwargs["bad_words_ids"] = _as_id_lists(kwargs["bad_words_ids"])
        return cls(**kwargs)

    def resolve(self, gen: GenerationConfig) -> ResolvedOptions:
        """Fill the unset options from the checkpoint (then the reference's defaults) and validate them once."""
        value = {name: _first_set(getattr(self, name), getattr(gen, name), d) for name, d in _DEFAULTS.items()}
        # transformers' max_length / min_length count the start token
        max_new = _first_set(self.max_new_tokens, gen.max_new_tokens, _after_prompt(gen.max_length))
        max_new = DEFAULT_MAX_NEW_TOKENS if max_new is None else max_new
        min_new = _first_set(self.min_new_tokens, gen.min_new_tokens, _after_prompt(gen.min_length), 0)
        limit = getattr(gen, "decoder_positions", None)  # the longest sequence the decoder's positions can place
        if limit is not None and self.max_new_tokens is None and _is_int(max_new):
            max_new = max(min(max_new, limit - PROMPT_LENGTH), 1)  # a checkpoint default past it: as far as it goes
            if self.min_new_tokens is None and _is_int(min_new):
                min_new = min(min_new, max_new)
        bad_words = self.bad_words_ids if self.bad_words_ids is not None else gen.bad_words_ids
        resolved = ResolvedOptions(
            max_new_tokens=max_new,
            min_new_tokens=min_new,
            seed=self.seed,
            bad_words_ids=_as_id_lists(bad_words) if bad_words is not None else None,
            **value,
        )
        try:
            self._validate(resolved)
        except OptionError as error:
            raise _blame_checkpoint(self, gen, error) from None
        if limit is not None and resolved.max_length > limit:
            raise OptionError(f"{option('max_new_tokens')} {resolved.max_new_tokens} goes past the decoder's {limit} "
                              f"positions (the start token and at most {limit - PROMPT_LENGTH} new tokens)",
                              where=option("max_new_tokens"))  # fmt: skip
        return resolved

    def check(self) -> None:
        """Raise OptionError, naming the field, for a value that no checkpoint can make right (a wrong type, out of
        range, min_new_tokens over max_new_tokens): run before any model is read. How the values combine with the
        checkpoint's (top_p needs sampling, say) is checked by `resolve`."""
        value = {name: _first_set(getattr(self, name), default) for name, default in _DEFAULTS.items()}
        _check_values(
            ResolvedOptions(
                max_new_tokens=_first_set(self.max_new_tokens, DEFAULT_MAX_NEW_TOKENS),
                min_new_tokens=_first_set(self.min_new_tokens, 0),
                seed=self.seed,
                bad_words_ids=_as_id_lists(self.bad_words_ids) if self.bad_words_ids is not None else None,
                **value,
            )
        )
        if self.min_new_tokens is not None and self.max_new_tokens is not None:
            if self.min_new_tokens > self.max_new_tokens:
                raise OptionError(_MIN_OVER_MAX, where=option("min_new_tokens"))

    def _validate(self, opt: ResolvedOptions) -> None:
        """Raise OptionError, naming the field, for values the engine cannot honour."""
        _check_values(opt)
        self._check_combination(opt)

    def _check_combination(self, opt: ResolvedOptions) -> None:
        """The options given, merged with the checkpoint's, against each other."""
        if self.min_new_tokens is not None or self.max_new_tokens is not None:
            if opt.min_new_tokens > opt.max_new_tokens:
                name = "min_new_tokens" if self.min_new_tokens is not None else "max_new_tokens"
                raise OptionError(_MIN_OVER_MAX, where=option(name))
        if not opt.do_sample:
            for name in ("temperature", "top_k", "top_p", "seed"):
                if getattr(self, name) is not None:
                    raise OptionError(f"{option(name)} needs {option('do_sample')}", where=option(name))
        if opt.num_beams == 1 and self.length_penalty is not None:
            raise OptionError(f"{option('length_penalty')} needs {option('num_beams')} > 1", option("length_penalty"))
        n, count, beams = opt.num_return_sequences, option("num_return_sequences"), option("num_beams")
        if n > 1 and opt.num_beams == 1 and not opt.do_sample:
            raise OptionError(f"{count} {n} needs {beams} {n} or more, or {option('do_sample')}", where=count)
        if opt.num_beams > 1 and n > opt.num_beams:
            raise OptionError(f"{count} {n} is more than {beams} {opt.num_beams}", where=count)


@dataclass(frozen=True)
class ResolvedOptions:
    """Concrete, validated decoding options (see `DecodingOptions.resolve`)."""

    max_new_tokens: int
    min_new_tokens: int
    num_beams: int
    do_sample: bool
    temperature: float
    top_k: int
    top_p: float
    seed: int | None
    no_repeat_ngram_size: int
    repetition_penalty: float
    length_penalty: float
    early_stopping: bool | str
    num_return_sequences: int
    bad_words_ids: tuple[tuple[int, ...], ...] | None

    @property
    def max_length(self) -> int:
        """Total decoder length, start token included (transformers' max_length)."""
        return PROMPT_LENGTH + self.max_new_tokens

    @property
    def rows_per_image(self) -> int:
        """How many decoder rows each image gets: its beams, or its sampled sequences."""
        return self.num_beams if self.num_beams > 1 else self.num_return_sequences


def _check_values(opt: ResolvedOptions) -> None:
    """Each value on its own: its type and range."""
    _check_int(opt.num_beams, "num_beams", minimum=1)
    _check_int(opt.max_new_tokens, "max_new_tokens", minimum=1)
    _check_int(opt.min_new_tokens, "min_new_tokens", minimum=0)
    _check_int(opt.top_k, "top_k", minimum=0)
    _check_int(opt.no_repeat_ngram_size, "no_repeat_ngram_size", minimum=0)
    _check_int(opt.num_return_sequences, "num_return_sequences", minimum=1)
    if opt.seed is not None:
        _check_int(opt.seed, "seed", minimum=0, maximum=MAX_SEED)
    _check_number(opt.temperature, "temperature")
    _check_number(opt.top_p, "top_p")
    _check_number(opt.repetition_penalty, "repetition_penalty")
    _check_number(opt.length_penalty, "length_penalty")
    if not isinstance(opt.do_sample, bool):
        _refuse("do_sample", f"must be true or false, not {opt.do_sample!r}")
    if opt.temperature <= 0:
        _refuse("temperature", "must be > 0")
    if not 0 <= opt.top_p <= 1:
        _refuse("top_p", "must be between 0 and 1")
    if opt.repetition_penalty <= 0:
        _refuse("repetition_penalty", "must be > 0")
    if opt.early_stopping not in (True, False, "never"):
        _refuse("early_stopping", f"must be true, false or never, not {opt.early_stopping!r}")


def _refuse(name: str, problem: str) -> None:
    """Raise OptionError: the field `name` (a DecodingOptions one), then what is wrong with it."""
    raise OptionError(f"{option(name)} {problem}", where=option(name))


def _first_set(*values: Any) -> Any:
    return next((v for v in values if v is not None), None)


def _after_prompt(total_length: Any) -> Any:
    """A total decoder length as a count of new tokens (min 0); odd values pass through to fail validation."""
    if isinstance(total_length, int) and not isinstance(total_length, bool):
        return max(total_length - PROMPT_LENGTH, 0)
    return total_length


MAX_SEED = 2**64 - 1  # torch.Generator.manual_seed takes 0 .. 2**64 - 1


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_int(value: Any, name: str, minimum: int, maximum: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        _refuse(name, f"must be a whole number, not {value!r}")
    if value < minimum:
        _refuse(name, f"must be >= {minimum}, not {value}")
    if maximum is not None and value > maximum:
        _refuse(name, f"must be at most {maximum}, not {value}")


def _check_number(value: Any, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        _refuse(name, f"must be a finite number, not {value!r}")


def _blame_checkpoint(options: DecodingOptions, gen: GenerationConfig, error: OptionError) -> VedError:
    """`error` as it should read when the value it is about came from the checkpoint, not from the user: named by
    the file and key it was read from (generation_config.json, config.json)."""
    name = error.option
    if name is None or getattr(options, name, None) is not None:
        return error  # the user gave it
    legacy = {"max_new_tokens": "max_length", "min_new_tokens": "min_length"}
    source = getattr(gen, "source", lambda _name: None)
    found = source(name) if getattr(gen, name, None) is not None else source(legacy.get(name, name))
    if found is None:
        return error
    file, key = found
    return ModelError(error.raw_message.replace(option(name), key), where=file or None)


def _as_id_lists(value: Any) -> tuple[tuple[int, ...], ...]:
    """bad_words_ids as a tuple of non-empty tuples of token ids."""
    where = option("bad_words_ids")
    if not isinstance(value, (list, tuple)) or not value:
        raise OptionError("bad words must be a non-empty list of token-id lists", where=where)
    out = []
    for ids in value:
        if not isinstance(ids, (list, tuple)) or not ids:
            raise OptionError(f"bad word {ids!r} is not a non-empty list of token ids", where=where)
        if any(isinstance(i, bool) or not isinstance(i, int) or i < 0 for i in ids):
            raise OptionError(f"bad word {list(ids)} holds something that is not a token id", where=where)
        out.append(tuple(ids))
    return tuple(out)
