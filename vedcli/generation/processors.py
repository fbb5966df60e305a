"""Logit processors: small composable pieces that turn a step's scores into the scores decoding chooses from.

Each maps (tokens (R, t) int64: every row's ids so far, start token included; scores (R, V) float32) to new
scores, with the same semantics as transformers' processor of the same purpose; `build_processors` lists them in
the order transformers applies them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

import torch
import torch.nn.functional as F

from ..errors import OptionError, option
from .options import PROMPT_LENGTH  # the decoder prompt: the single start token

if TYPE_CHECKING:
    from .defaults import SpecialTokens
    from .options import ResolvedOptions


class LogitsProcessor(Protocol):
    def __call__(self, tokens: torch.Tensor, scores: torch.Tensor) -> torch.Tensor: ...


class RepetitionPenalty:
    """Make every token already in the row less likely: score / p if positive, score * p if negative."""

    def __init__(self, penalty: float):
        self.penalty = penalty

    def __call__(self, tokens: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        vocab = scores.shape[-1]
        ids = tokens.clamp(max=vocab)  # ids the head cannot produce land in a spare column, dropped below
        padded = F.pad(scores, (0, 1))
        seen = padded.gather(1, ids)
        seen = torch.where(seen < 0, seen * self.penalty, seen / self.penalty)
        return padded.scatter(1, ids, seen)[:, :vocab]


class NoRepeatNGram:
    """Ban any token that would complete an n-gram already present in the row."""

    def __init__(self, size: int):
        self.size = size

    def __call__(self, tokens: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        n, length = self.size, tokens.shape[1]
        if length < n:
            return scores
        windows = tokens.unfold(1, n, 1)  # (R, length - n + 1, n): every n-gram so far
        suffix = tokens[:, length - n + 1 :]  # (R, n - 1): what the next token would extend
        hits = (windows[..., :-1] == suffix[:, None, :]).all(-1)  # (R, W)
        vocab = scores.shape[-1]
        banned = torch.zeros(scores.shape[0], vocab + 1, dtype=torch.bool, device=scores.device)
        banned.scatter_(1, torch.where(hits, windows[..., -1].clamp(max=vocab), vocab), True)
        return scores.masked_fill(banned[:, :vocab], float("-inf"))


class BadWords:
    """Never produce a listed token sequence: ban its last token wherever the row ends with the rest of it.

    A single-token entry equal to an eos id is dropped (as the reference does): eos stays allowed.
    """

    def __init__(self, bad_words_ids: Sequence[Sequence[int]], eos: Sequence[int], device: torch.device):
        entries = {tuple(ids) for ids in bad_words_ids if not (len(ids) == 1 and ids[0] in eos)}
        self.largest_id = max((i for ids in entries for i in ids), default=-1)
        self.single = torch.tensor(sorted(ids[0] for ids in entries if len(ids) == 1), dtype=torch.long, device=device)
        # longer entries, grouped by prefix length: (prefixes (S, n), last tokens (S,))
        groups: dict[int, list[tuple[int, ...]]] = {}
        for ids in sorted(entries):
            if len(ids) > 1:
                groups.setdefault(len(ids) - 1, []).append(ids)
        self.multi = [
            (
                torch.tensor([ids[:-1] for ids in group], dtype=torch.long, device=device),
                torch.tensor([ids[-1] for ids in group], dtype=torch.long, device=device),
            )
            for group in groups.values()
        ]

    def __call__(self, tokens: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if self.largest_id >= scores.shape[-1]:
            raise OptionError(
                f"bad word token {self.largest_id} is outside the vocabulary ({scores.shape[-1]} tokens)",
                where=option("bad_words_ids"),
            )
        ban = torch.zeros_like(scores)
        ban[:, self.single] = float("-inf")
        for prefixes, last in self.multi:
            n = prefixes.shape[1]
            if n > tokens.shape[1]:
                continue
            ends_with = (tokens[:, None, -n:] == prefixes).all(-1)  # (R, S)
            ban.index_add_(1, last, torch.where(ends_with, float("-inf"), 0.0).to(ban.dtype))
        return scores + ban


class MinNewTokens:
    """Suppress every eos id until the row holds `count` generated tokens."""

    def __init__(self, count: int, eos: Sequence[int], device: torch.device):
        self.count = count
        self.eos = torch.tensor(list(eos), dtype=torch.long, device=device)

    def __call__(self, tokens: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if tokens.shape[1] - PROMPT_LENGTH >= self.count:
            return scores
        return scores.index_fill(1, self.eos[self.eos < scores.shape[-1]], float("-inf"))


class ForcedBOS:
    """Force `token` as the first generated token."""

    def __init__(self, token: int):
        self.token = token

    def __call__(self, tokens: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if tokens.shape[1] != PROMPT_LENGTH:
            return scores
        forced = torch.full_like(scores, float("-inf"))
        forced[:, self.token] = 0
        return forced


class ForcedEOS:
    """Force an eos id as the last token when the row reaches `max_length`."""

    def __init__(self, max_length: int, eos: Sequence[int], device: torch.device):
        self.max_length = max_length
        self.eos = torch.tensor(list(eos), dtype=torch.long, device=device)

    def __call__(self, tokens: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if tokens.shape[1] != self.max_length - 1:
            return scores
        forced = torch.full_like(scores, float("-inf"))
        forced[:, self.eos] = 0
        return forced


class Temperature:
    """Divide the scores by the temperature (sampling only)."""

    def __init__(self, temperature: float):
        self.temperature = temperature

    def __call__(self, tokens: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        return scores / self.temperature


class TopK:
    """Keep the k best scores (at least `keep`), set the rest to -inf."""

    def __init__(self, k: int, keep: int = 1):
        self.k = max(k, keep)

    def __call__(self, tokens: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        k = min(self.k, scores.shape[-1])
        kth_best = torch.topk(scores, k).values[..., -1:]
        return scores.masked_fill(scores < kth_best, float("-inf"))


class TopP:
    """Nucleus filtering: keep the smallest set of best tokens whose probability reaches p (at least `keep`)."""

    def __init__(self, p: float, keep: int = 1):
        self.p = p
        self.keep = keep

    def __call__(self, tokens: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        ascending, order = torch.sort(scores, descending=False)
        mass_below = ascending.softmax(dim=-1).cumsum(dim=-1)  # probability of this token and all worse ones
        drop = mass_below <= 1 - self.p
        drop[..., -self.keep :] = False
        drop = drop.scatter(1, order, drop)
        return scores.masked_fill(drop, float("-inf"))


def build_processors(
    options: ResolvedOptions, special: SpecialTokens, device: torch.device | str = "cpu"
) -> list[LogitsProcessor]:
    """The logit processors `options` call for, in the order transformers applies them."""
    device = torch.device(device)
    eos = special.eos
    procs: list[LogitsProcessor] = []
    if options.repetition_penalty != 1.0:
        procs.append(RepetitionPenalty(float(options.repetition_penalty)))
    if options.no_repeat_ngram_size > 0:
        procs.append(NoRepeatNGram(options.no_repeat_ngram_size))
    if options.bad_words_ids is not None:
        procs.append(BadWords(options.bad_words_ids, eos, device))
    if options.min_new_tokens > 0 and eos:
        procs.append(MinNewTokens(options.min_new_tokens, eos, device))
    if special.forced_bos is not None:
        procs.append(ForcedBOS(special.forced_bos))
    if special.forced_eos is not None:
        procs.append(ForcedEOS(options.max_length, special.forced_eos, device))
    if options.do_sample:
        # beam sampling keeps enough candidates that a beam can always go on without eos
        keep = (len(eos) + 1 if eos else 2) if options.num_beams > 1 else 1
        if options.temperature != 1.0:
            procs.append(Temperature(float(options.temperature)))
        if options.top_k != 0:
            procs.append(TopK(options.top_k, keep))
        if options.top_p < 1.0:
            procs.append(TopP(float(options.top_p), keep))
    return procs


def apply_processors(procs: Sequence[LogitsProcessor], tokens: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
    for proc in procs:
        scores = proc(tokens, scores)
    return scores
