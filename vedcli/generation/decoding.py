"""Decoding: from next-token logits to token ids, exactly as transformers' `generate()` does it.

The engine lives outside the model and sees only ids and logits. It drives any model with this face:

    enc = model.encode(pixel_values)                  # (B, N, C)
    cache = model.new_cache(enc, group=G, max_len=L)  # cross-attention K/V once per image, shared by its G rows
    logits = model.decode_step(tokens, cache)         # tokens (B*G, T) -> logits (B*G, T, V); advances the cache
    cache.reorder(index)                              # row r continues old row index[r] (within its image's group)
    cache.select(images)                              # optional: only these images (and their rows) go on

Rows are image-major: rows [i*G, (i+1)*G) belong to image i.

Pieces, in the order a call meets them: `DecodingOptions` (what the user asked, None = checkpoint default) ->
`resolve()` -> `ResolvedOptions` (validated, concrete; these three live in options.py, without torch) ->
`build_processors()` (logit processors in the reference's order) -> one decoder class per strategy
(`GreedyDecoder`, `SamplingDecoder`, `BeamSearchDecoder`) -> `Generation` (sequences and scores). `generate()` ties
them together.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import torch

from ..errors import ModelError, OptionError, option
from .defaults import GenerationConfig, SpecialTokens
from .graphs import graphed, graphs_wanted
from .options import DecodingOptions, ResolvedOptions  # noqa: F401  (the options live in options.py: no torch)
from .processors import PROMPT_LENGTH, LogitsProcessor, apply_processors, build_processors

_NEG = -1.0e9  # the reference's "impossible" score in beam bookkeeping
DROP_DONE = 0.75  # greedy / sampling: once this share of the computed images or fewer still runs, drop the done ones


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
    """One row per image (or per returned sequence); each step takes the best processed score.

    Images whose rows are all done leave the work once a quarter of those still computed are done (DROP_DONE): the
    model computes only the others. Their ids are pad from then on, as the reference pads them.
    """

    draws_every_row = False  # sampling: the generator draws for every row, so the draws stay the reference's

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
        group, images = opt.rows_per_image, enc.shape[0]
        rows, device = images * group, enc.device
        cache = model.new_cache(enc, group=group, max_len=opt.max_length)
        tokens = torch.full((rows, opt.max_length), special.pad if special.eos else 0, dtype=torch.long, device=device)
        tokens[:, :PROMPT_LENGTH] = special.start
        eos = torch.tensor(special.eos, dtype=torch.long, device=device)
        total = torch.zeros(rows, dtype=torch.float32, device=device)
        running = torch.ones(rows, dtype=torch.bool, device=device)  # not finished yet
        computed = torch.arange(images, device=device)  # the images the model still computes
        live = None  # their rows (None: every row)
        step_input = tokens[:, :PROMPT_LENGTH]
        cur = PROMPT_LENGTH
        for _ in range(opt.max_new_tokens):
            logits = _next_logits(model, step_input, cache)  # (computed rows, V)
            on = live
            if live is not None and self.draws_every_row:  # every row again; the dropped ones' scores do not matter
                logits, on = logits.new_zeros(rows, logits.shape[1]).index_copy_(0, live, logits), None
            seen = tokens[:, :cur] if on is None or not self.procs else tokens[on, :cur]
            scores = apply_processors(self.procs, seen, logits)
            chosen = self.choose(scores)
            logprob = scores.log_softmax(dim=-1).gather(1, chosen[:, None]).squeeze(1)
            going = running if on is None else running[on]
            if special.eos:
                logprob = torch.where(going, logprob, 0.0)
                chosen = torch.where(going, chosen, special.pad)
                going = going & ~torch.isin(chosen, eos)
            if on is None:
                running, tokens[:, cur] = going, chosen
                total += logprob
            else:
                running[on], tokens[on, cur] = going, chosen
                total.index_add_(0, on, logprob)
            step_input = (chosen if on is live else chosen[live])[:, None]
            cur += 1
            if not special.eos:
                continue
            still = running.view(images, group).any(dim=1)[computed]  # (computed images,)
            count = int(still.sum())  # the step's one host sync
            if count == 0:
                break
            if count <= DROP_DONE * computed.shape[0] and hasattr(cache, "select"):
                keep = still.nonzero().squeeze(1)  # positions among the computed images
                cache.select(keep)
                computed = computed[keep]
                kept_rows = (keep[:, None] * group + torch.arange(group, device=device)).reshape(-1)
                step_input = step_input[kept_rows]
                live = (computed[:, None] * group + torch.arange(group, device=device)).reshape(-1)
        return Generation(sequences=tokens[:, :cur], scores=total)


class SamplingDecoder(GreedyDecoder):
    """Like greedy, but each step draws from the processed distribution with an explicit generator."""

    draws_every_row = True

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
    from ..validate import gigabytes, physical_memory

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
    fewer = "num_return_sequences" if options.rows_per_image > 1 else "batch_size"
    name = "num_beams" if options.num_beams > 1 else fewer  # the option whose value makes it this large
    raise OptionError(f"decoding {images} images with {options.rows_per_image} rows each for up to "
                      f"{options.max_new_tokens} new tokens needs about {gigabytes(cache + scores)}, more than the "
                      f"{gigabytes(memory)} of memory this machine has", where=option(name))  # fmt: skip


def generate(
    model: StepModel, pixel_values: torch.Tensor, options: ResolvedOptions, gen: GenerationConfig
) -> Generation:
    """Decode every image of `pixel_values` (B, 3, H, W) with `model`, as transformers' generate() would."""
    special = SpecialTokens.from_config(gen)
    _check_decoding_memory(model, pixel_values.shape[0], options)
    with torch.inference_mode():
        enc = model.encode(pixel_values)
    decoder = make_decoder(options, special, enc.device)
    out = decoder.run(graphed(model) if graphs_wanted(model) else model, enc)
    if bool(out.scores.isnan().any()):  # NaN logits: text made of them means nothing
        bad = int(out.scores.isnan().view(enc.shape[0], -1).any(dim=1).sum())
        raise ModelError(f"the model computed NaN scores for {bad} of {enc.shape[0]} images: its weights hold NaN or "
                         "inf values, or a decoding option is extreme")  # fmt: skip
    return out
