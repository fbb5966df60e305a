"""Decoding: from next-token logits to token ids, exactly as transformers' `generate()` does it.

The engine lives outside the model and sees only ids and logits. It drives any model with this face:

    enc = model.encode(pixel_values)                  # (B, N, C)
    cache = model.new_cache(enc, group=G, max_len=L)  # cross-attention K/V once per image, shared by its G rows
    logits = model.decode_step(tokens, cache)         # tokens (B*G, T) -> logits (B*G, T, V); advances the cache
    cache.reorder(index)                              # row r continues old row index[r] (within its image's group)

Rows are image-major: rows [i*G, (i+1)*G) belong to image i.

Pieces, in the order a call meets them: `DecodingOptions` (what the user asked, None = checkpoint default) ->
`resolve()` -> `ResolvedOptions` (validated, concrete) -> `build_processors()` (logit processors in the
reference's order) -> one decoder class per strategy (`GreedyDecoder`, `SamplingDecoder`, `BeamSearchDecoder`)
-> `Generation` (sequences and scores). `generate()` ties them together.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any, Protocol

import torch

from .errors import ModelError, OptionError
from .generation_config import GenerationConfig
from .processors import PROMPT_LENGTH, LogitsProcessor, apply_processors, build_processors

# DecodingOptions field -> the CLI flag named in error messages.
FLAGS: dict[str, str] = {
    "max_new_tokens": "--max-new-tokens",
    "min_new_tokens": "--min-new-tokens",
    "num_beams": "--beams",
    "do_sample": "--sample",
    "temperature": "--temperature",
    "top_k": "--top-k",
    "top_p": "--top-p",
    "seed": "--seed",
    "no_repeat_ngram_size": "--no-repeat-ngram-size",
    "repetition_penalty": "--repetition-penalty",
    "length_penalty": "--length-penalty",
    "early_stopping": "--early-stopping",
    "num_return_sequences": "--num-return-sequences",
    "bad_words_ids": "--bad-words-ids",
}

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

_NEG = -1.0e9  # the reference's "impossible" score in beam bookkeeping


# --------------------------------------------------------------------------------------------------- options


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
        bad_words = self.bad_words_ids if self.bad_words_ids is not None else gen.bad_words_ids
        resolved = ResolvedOptions(
            max_new_tokens=max_new,
            min_new_tokens=min_new,
            seed=self.seed,
            bad_words_ids=_as_id_lists(bad_words) if bad_words is not None else None,
            **value,
        )
        self._validate(resolved)
        return resolved

    def _validate(self, opt: ResolvedOptions) -> None:
        """Raise OptionError, naming the flag, for values the engine cannot honour."""
        _check_int(opt.num_beams, "num_beams", minimum=1)
        _check_int(opt.max_new_tokens, "max_new_tokens", minimum=1)
        _check_int(opt.min_new_tokens, "min_new_tokens", minimum=0)
        _check_int(opt.top_k, "top_k", minimum=0)
        _check_int(opt.no_repeat_ngram_size, "no_repeat_ngram_size", minimum=0)
        _check_int(opt.num_return_sequences, "num_return_sequences", minimum=1)
        if opt.seed is not None:
            _check_int(opt.seed, "seed", minimum=0)
        _check_number(opt.temperature, "temperature")
        _check_number(opt.top_p, "top_p")
        _check_number(opt.repetition_penalty, "repetition_penalty")
        _check_number(opt.length_penalty, "length_penalty")
        if not isinstance(opt.do_sample, bool):
            raise OptionError(f"--sample must be true or false, not {opt.do_sample!r}", where=FLAGS["do_sample"])
        if opt.temperature <= 0:
            raise OptionError("--temperature must be > 0", where=FLAGS["temperature"])
        if not 0 <= opt.top_p <= 1:
            raise OptionError("--top-p must be between 0 and 1", where=FLAGS["top_p"])
        if opt.repetition_penalty <= 0:
            raise OptionError("--repetition-penalty must be > 0", where=FLAGS["repetition_penalty"])
        if opt.early_stopping not in (True, False, "never"):
            raise OptionError(
                f"--early-stopping must be true, false or never, not {opt.early_stopping!r}",
                where=FLAGS["early_stopping"],
            )
        if self.min_new_tokens is not None or self.max_new_tokens is not None:
            if opt.min_new_tokens > opt.max_new_tokens:
                flag = "min_new_tokens" if self.min_new_tokens is not None else "max_new_tokens"
                raise OptionError("--min-new-tokens is more than --max-new-tokens", where=FLAGS[flag])
        if not opt.do_sample:
            for name in ("temperature", "top_k", "top_p", "seed"):
                if getattr(self, name) is not None:
                    raise OptionError(f"{FLAGS[name]} needs --sample", where=FLAGS[name])
        if opt.num_beams == 1 and self.length_penalty is not None:
            raise OptionError("--length-penalty needs --beams > 1", where=FLAGS["length_penalty"])
        n = opt.num_return_sequences
        if n > 1 and opt.num_beams == 1 and not opt.do_sample:
            raise OptionError(
                f"--num-return-sequences {n} needs --beams {n} or more, or --sample",
                where=FLAGS["num_return_sequences"],
            )
        if opt.num_beams > 1 and n > opt.num_beams:
            raise OptionError(
                f"--num-return-sequences {n} is more than --beams {opt.num_beams}", where=FLAGS["num_return_sequences"]
            )


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


def _first_set(*values: Any) -> Any:
    return next((v for v in values if v is not None), None)


def _after_prompt(total_length: Any) -> Any:
    """A total decoder length as a count of new tokens (min 0); odd values pass through to fail validation."""
    if isinstance(total_length, int) and not isinstance(total_length, bool):
        return max(total_length - PROMPT_LENGTH, 0)
    return total_length


def _check_int(value: Any, name: str, minimum: int) -> None:
    flag = FLAGS.get(name, name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise OptionError(f"{flag} must be a whole number, not {value!r}", where=flag)
    if value < minimum:
        raise OptionError(f"{flag} must be >= {minimum}, not {value}", where=flag)


def _check_number(value: Any, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise OptionError(f"{FLAGS[name]} must be a number, not {value!r}", where=FLAGS[name])


def _as_id_lists(value: Any) -> tuple[tuple[int, ...], ...]:
    """bad_words_ids as a tuple of non-empty tuples of token ids."""
    flag = FLAGS["bad_words_ids"]
    if not isinstance(value, (list, tuple)) or not value:
        raise OptionError("bad words must be a non-empty list of token-id lists", where=flag)
    out = []
    for ids in value:
        if not isinstance(ids, (list, tuple)) or not ids:
            raise OptionError(f"bad word {ids!r} is not a non-empty list of token ids", where=flag)
        if any(isinstance(i, bool) or not isinstance(i, int) or i < 0 for i in ids):
            raise OptionError(f"bad word {list(ids)} holds something that is not a token id", where=flag)
        out.append(tuple(ids))
    return tuple(out)


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


# ------------------------------------------------------------------------------------------ logit processors
#


# ---------------------------------------------------------------------------------------------- strategies


class StepCache(Protocol):
    def reorder(self, index: torch.Tensor) -> None: ...


class StepModel(Protocol):
    def encode(self, pixel_values: torch.Tensor) -> torch.Tensor: ...
    def new_cache(self, enc: torch.Tensor, group: int, max_len: int) -> StepCache: ...
    def decode_step(self, tokens: torch.Tensor, cache: StepCache) -> torch.Tensor: ...


@dataclass
class Generation:
    """What `generate` returns, laid out as transformers' generate returns it."""

    sequences: torch.Tensor  # (B * num_return, L) int64: start token first, pad after eos
    scores: torch.Tensor  # (B * num_return,) float32: beam sequences_scores, else summed log-probs of the choices


def _next_logits(model: StepModel, tokens: torch.Tensor, cache: StepCache) -> torch.Tensor:
    """The last position's logits as float32 (R, V), whatever the model's dtype."""
    return model.decode_step(tokens, cache)[:, -1].float()


class GreedyDecoder:
    """One row per image (or per returned sequence); each step takes the best processed score."""

    def __init__(self, options: ResolvedOptions, special: SpecialTokens, procs: Sequence[LogitsProcessor]):
        self.options = options
        self.special = special
        self.procs = list(procs)

    def choose(self, scores: torch.Tensor) -> torch.Tensor:
        """Next token per row (R,) from processed scores (R, V)."""
        return scores.argmax(dim=-1)

    @torch.inference_mode()
    def run(self, model: StepModel, enc: torch.Tensor) -> Generation:
        opt, special = self.options, self.special
        rows = enc.shape[0] * opt.rows_per_image
        device = enc.device
        cache = model.new_cache(enc, group=opt.rows_per_image, max_len=opt.max_length)
        tokens = torch.full((rows, PROMPT_LENGTH), special.start, dtype=torch.long, device=device)
        eos = torch.tensor(special.eos, dtype=torch.long, device=device)
        running = torch.ones(rows, dtype=torch.bool, device=device)
        total = torch.zeros(rows, dtype=torch.float32, device=device)
        step_input = tokens
        for _ in range(opt.max_new_tokens):
            scores = apply_processors(self.procs, tokens, _next_logits(model, step_input, cache))
            chosen = self.choose(scores)
            logprob = scores.log_softmax(dim=-1).gather(1, chosen[:, None]).squeeze(1)
            total += torch.where(running, logprob, 0.0)
            if special.eos:
                chosen = torch.where(running, chosen, special.pad)
                running &= ~torch.isin(chosen, eos)
            tokens = torch.cat([tokens, chosen[:, None]], dim=1)
            if special.eos and not running.any():
                break
            step_input = chosen[:, None]
        return Generation(sequences=tokens, scores=total)


class SamplingDecoder(GreedyDecoder):
    """Like greedy, but each step draws from the processed distribution with an explicit generator."""

    def __init__(
        self,
        options: ResolvedOptions,
        special: SpecialTokens,
        procs: Sequence[LogitsProcessor],
        generator: torch.Generator,
    ):
        super().__init__(options, special, procs)
        self.generator = generator

    def choose(self, scores: torch.Tensor) -> torch.Tensor:
        probs = _drawable(scores.softmax(dim=-1))
        return torch.multinomial(probs, num_samples=1, generator=self.generator).squeeze(1)


def _drawable(probs: torch.Tensor) -> torch.Tensor:
    """Rows of probabilities torch.multinomial accepts: a row NaN scores made NaN becomes uniform (no host sync); its
    scores stay NaN, and `generate` reports them instead of crashing in the draw."""
    return probs.masked_fill(probs.isnan().any(dim=-1, keepdim=True), 1.0)


def _take(tensor: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Per image, pick hypotheses: tensor (B, H, ...) and index (B, H') -> (B, H', ...)."""
    while index.dim() < tensor.dim():
        index = index.unsqueeze(-1)
    return torch.take_along_dim(tensor, index, dim=1)


class BeamSearchDecoder:
    """Beam search (or beam sampling), bookkept per image in fixed-size tensors like the reference.

    Per image it keeps `num_beams` running hypotheses and the `num_beams` best finished ones. Each step scores
    2 * num_beams (more with several eos ids) candidates, so that enough of them go on without eos; a candidate
    that ends with eos or hits max length is offered to the finished set, scored by its summed log-probability
    divided by (generated length) ** length_penalty.
    """

    def __init__(
        self,
        options: ResolvedOptions,
        special: SpecialTokens,
        procs: Sequence[LogitsProcessor],
        generator: torch.Generator | None = None,
    ):
        self.options = options
        self.special = special
        self.procs = list(procs)
        self.generator = generator  # set: beam sampling

    @torch.inference_mode()
    def run(self, model: StepModel, enc: torch.Tensor) -> Generation:
        opt, special = self.options, self.special
        batch, beams, max_len = enc.shape[0], opt.num_beams, opt.max_length
        device = enc.device
        eos = torch.tensor(special.eos, dtype=torch.long, device=device)
        width = max(2, 1 + len(special.eos)) * beams  # candidates kept per image and step
        first_beams = torch.arange(width, device=device) < beams  # only these may join the finished set
        penalty, early = float(opt.length_penalty), opt.early_stopping
        # what the reference fills unwritten positions with (a pad id of 0 gives way to the first eos id)
        fill = -1 if not special.eos else (special.pad if special.pad else special.eos[0])

        seqs = torch.full((batch, beams, max_len), fill, dtype=torch.long, device=device)  # running
        seqs[:, :, :PROMPT_LENGTH] = special.start
        seq_scores = torch.full((batch, beams), _NEG, device=device)
        seq_scores[:, 0] = 0.0  # only the first beam is live at the start, so beams do not duplicate
        done = seqs.clone()  # finished
        done_scores = torch.full((batch, beams), _NEG, device=device)
        done_lens = torch.zeros((batch, beams), dtype=torch.long, device=device)  # generated tokens
        done_flags = torch.zeros((batch, beams), dtype=torch.bool, device=device)
        improvable = torch.ones((batch, 1), dtype=torch.bool, device=device)
        image_offset = torch.arange(batch, device=device)[:, None] * beams

        cache = model.new_cache(enc, group=beams, max_len=max_len)
        cur = PROMPT_LENGTH
        step_input = seqs[:, :, :cur].reshape(batch * beams, cur)
        while True:
            logprobs = _next_logits(model, step_input, cache).log_softmax(dim=-1)
            logprobs = apply_processors(self.procs, seqs[:, :, :cur].reshape(batch * beams, cur), logprobs)
            vocab = logprobs.shape[-1]
            totals = (logprobs.view(batch, beams, vocab) + seq_scores[:, :, None]).view(batch, beams * vocab)

            # a. the best `width` continuations over all beams of each image
            if self.generator is None:
                cand_scores, flat = torch.topk(totals, k=width)
            else:
                flat = torch.multinomial(_drawable(totals.softmax(dim=-1)), num_samples=width, generator=self.generator)
                cand_scores, order = totals.gather(1, flat).sort(dim=-1, descending=True)  # best first, as
                flat = flat.gather(1, order)  # transformers >= 5.24 ranks sampled candidates
            cand_beam = flat // vocab
            cand = _take(seqs, cand_beam)
            cand[:, :, cur] = flat % vocab
            ends = torch.full_like(cand_beam, cur + 1 >= max_len, dtype=torch.bool)  # (B, width)
            if special.eos:
                ends |= torch.isin(cand[:, :, cur], eos)

            # b. the best candidates that go on become the running beams
            alive = cand_scores + ends.to(torch.float32) * _NEG
            keep = torch.topk(alive, k=beams).indices
            seqs, seq_scores, source = _take(cand, keep), _take(alive, keep), _take(cand_beam, keep)

            # c. finished candidates among the first `beams` compete with the finished set
            offered = ends & first_beams
            scored = cand_scores / ((cur + 1 - PROMPT_LENGTH) ** penalty)
            full = done_flags.all(dim=-1, keepdim=True) & (early is True)
            scored += full.to(torch.float32) * _NEG
            scored += (~improvable).to(torch.float32) * _NEG
            scored += (~offered) * _NEG
            merged_scores = torch.cat([done_scores, scored], dim=1)
            best = torch.topk(merged_scores, k=beams).indices
            done = _take(torch.cat([done, cand], dim=1), best)
            done_scores = _take(merged_scores, best)
            cand_lens = torch.full_like(cand_beam, cur + 1 - PROMPT_LENGTH)
            done_lens = _take(torch.cat([done_lens, cand_lens], dim=1), best)
            done_flags = _take(torch.cat([done_flags, offered], dim=1), best)

            # d. stop when no running beam can beat the finished ones (or all are done, or none can go on)
            cur += 1
            improvable = improvable & self._may_improve(seq_scores, done_scores, done_flags, cur, max_len)
            stop = ~improvable.any() | ends.all()
            if early is True:
                stop |= done_flags.all()  # every image holds num_beams finished hypotheses
            if bool(stop):  # the step's one host sync
                break
            cache.reorder((source + image_offset).reshape(-1))
            step_input = seqs[:, :, cur - 1].reshape(batch * beams, 1)

        n = opt.num_return_sequences
        length = PROMPT_LENGTH + int(done_lens[:, :n].max())
        return Generation(
            sequences=done[:, :n, :length].reshape(batch * n, length),
            scores=done_scores[:, :n].reshape(batch * n),
        )

    def _may_improve(
        self,
        seq_scores: torch.Tensor,
        done_scores: torch.Tensor,
        done_flags: torch.Tensor,
        cur: int,
        max_len: int,
    ) -> torch.Tensor:
        """(B, 1): could the best running beam still beat the worst finished one (the reference's heuristic)?"""
        penalty, early = float(self.options.length_penalty), self.options.early_stopping
        if early == "never" and penalty > 0.0:
            best_length = max_len - PROMPT_LENGTH  # a positive penalty favours the longest possible
        else:
            best_length = cur - PROMPT_LENGTH
        best_running = seq_scores[:, :1] / (best_length**penalty)
        worst_done = torch.where(done_flags, done_scores.min(dim=1, keepdim=True).values, _NEG)
        return (best_running > worst_done).any(dim=-1, keepdim=True)


# -------------------------------------------------------------------------------------------------- generate


def make_generator(seed: int | None, device: torch.device | str) -> torch.Generator:
    """A torch.Generator on `device`, seeded from `seed` (or from fresh entropy when None)."""
    generator = torch.Generator(device=device)
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(seed)
    return generator


def make_decoder(
    options: ResolvedOptions, special: SpecialTokens, device: torch.device | str = "cpu"
) -> GreedyDecoder | BeamSearchDecoder:
    """The strategy object for `options`: greedy, sampling, beam search or beam sampling."""
    procs = build_processors(options, special, device)
    generator = make_generator(options.seed, device) if options.do_sample else None
    if options.num_beams > 1:
        return BeamSearchDecoder(options, special, procs, generator)
    if generator is not None:
        return SamplingDecoder(options, special, procs, generator)
    return GreedyDecoder(options, special, procs)


def _check_decoding_memory(model: StepModel, images: int, options: ResolvedOptions) -> None:
    """Refuse, before allocating it, decoding state (self-attention cache, scores) larger than the device's memory."""
    from .validate import gigabytes, physical_memory

    cfg = getattr(getattr(model, "config", None), "decoder", None)
    if cfg is None:
        return
    device, itemsize = getattr(model, "device", torch.device("cpu")), getattr(model, "dtype", torch.float32).itemsize
    rows = images * options.rows_per_image
    cache = 2 * cfg.num_layers * rows * options.max_length * cfg.hidden_size * itemsize  # keys and values
    scores = 4 * rows * cfg.vocab_size * 4  # float32 logits, log-probabilities, processed and summed scores
    memory = torch.cuda.get_device_properties(device).total_memory if device.type == "cuda" else physical_memory()
    if memory is None or cache + scores <= memory:
        return
    flag = "--beams" if options.num_beams > 1 else "--num-return-sequences" if options.rows_per_image > 1 else (
        "--batch-size")
    raise OptionError(f"decoding {images} images with {options.rows_per_image} rows each for up to "
                      f"{options.max_new_tokens} new tokens needs about {gigabytes(cache + scores)}, more than the "
                      f"{gigabytes(memory)} of memory this machine has", where=flag)  # fmt: skip


def generate(
    model: StepModel, pixel_values: torch.Tensor, options: ResolvedOptions, gen: GenerationConfig
) -> Generation:
    """Decode every image of `pixel_values` (B, 3, H, W) with `model`, as transformers' generate() would."""
    special = SpecialTokens.from_config(gen)
    _check_decoding_memory(model, pixel_values.shape[0], options)
    with torch.inference_mode():
        enc = model.encode(pixel_values)
    decoder = make_decoder(options, special, enc.device)
    out = decoder.run(model, enc)
    if bool(out.scores.isnan().any()):  # NaN logits: text made of them means nothing
        bad = int(out.scores.isnan().view(enc.shape[0], -1).any(dim=1).sum())
        raise ModelError(f"the model computed NaN scores for {bad} of {enc.shape[0]} images: its weights hold NaN or "
                         "inf values, or a decoding option is extreme")  # fmt: skip
    return out
