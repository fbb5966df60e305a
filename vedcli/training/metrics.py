"""Text metrics for evaluation: character and word error rates (OCR), corpus BLEU (captions).

All three are corpus-level: errors and counts are summed over every (prediction, reference) pair before dividing,
so a long text weighs more than a short one (as jiwer and sacrebleu compute them). Strings are compared exactly as
given: no lower-casing, no punctuation handling, no Unicode normalisation.

    cer  = sum of character edit distances / sum of reference lengths in characters
    wer  = sum of word edit distances      / sum of reference lengths in words (whitespace-split)
    bleu = 100 * BP * exp(mean over n = 1..N of log p_n)            (Papineni et al. 2002, corpus BLEU, N = 4)

Edit distance is Levenshtein's (insertions, deletions and substitutions cost 1). An error rate can exceed 1 when
predictions are longer than references. When the references hold nothing at all (no characters / no words) the rate
has no denominator; ved defines it as 0.0 if the predictions are empty too and 1.0 otherwise. No pairs at all
score 0.0 (CER, WER) and 0.0 (BLEU).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Sequence
from dataclasses import dataclass


def edit_distance(a: Sequence[Hashable], b: Sequence[Hashable]) -> int:
    """Levenshtein distance between two sequences (strings, or lists of words).

    Myers' bit-parallel algorithm (1999, in Hyyrö's form for global distance): one column of the dynamic-programming
    table is kept as bit vectors of vertical +1 / -1 steps, so each symbol of `b` costs a few big-integer
    operations instead of a pass over `a` -- pages of text compare in milliseconds."""
    if len(a) < len(b):
        a, b = b, a  # the bit vectors run along the longer sequence; fewer Python-level steps
    m = len(a)
    if len(b) == 0:
        return m
    positions: dict[Hashable, int] = {}  # symbol -> bit i set where a[i] is that symbol
    for i, symbol in enumerate(a):
        positions[symbol] = positions.get(symbol, 0) | (1 << i)
    mask = (1 << m) - 1
    top = 1 << (m - 1)  # the bit of the table's last row
    plus, minus = mask, 0  # vertical deltas of column 0: +1 all the way down
    distance = m
    for symbol in b:
        eq = positions.get(symbol, 0)
        xv = eq | minus
        xh = ((((eq & plus) + plus) & mask) ^ plus) | eq
        h_plus = (minus | ~(xh | plus)) & mask
        h_minus = plus & xh
        if h_plus & top:
            distance += 1
        elif h_minus & top:
            distance -= 1
        h_plus = ((h_plus << 1) | 1) & mask  # | 1: row 0 of the table grows by one each column
        h_minus = (h_minus << 1) & mask
        plus = (h_minus | ~(xv | h_plus)) & mask
        minus = h_plus & xv
    return distance


def _error_rate(predictions: list[Sequence[Hashable]], references: list[Sequence[Hashable]]) -> float:
    errors = sum(edit_distance(p, r) for p, r in zip(predictions, references, strict=True))
    total = sum(len(r) for r in references)
    if total == 0:
        return 0.0 if errors == 0 else 1.0  # no reference symbols: see the module docstring
    return errors / total


def _check_pairs(predictions: list[str], references: list[str]) -> None:
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references")


def cer(predictions: list[str], references: list[str]) -> float:
    """Character error rate: total character edit distance / total reference characters."""
    _check_pairs(predictions, references)
    return _error_rate(list(predictions), list(references))


def wer(predictions: list[str], references: list[str]) -> float:
    """Word error rate: total word edit distance / total reference words (words split on whitespace)."""
    _check_pairs(predictions, references)
    return _error_rate([p.split() for p in predictions], [r.split() for r in references])


@dataclass(frozen=True)
class BleuScore:
    """Corpus BLEU and the counts it is made of."""

    score: float  # 0..100
    precisions: list[float]  # modified n-gram precision p_n, n = 1..max_order (0..1)
    matches: list[int]  # clipped n-gram matches, summed over the corpus
    totals: list[int]  # n-grams in the predictions, summed over the corpus
    brevity_penalty: float  # 1 if the predictions are longer than the references, else exp(1 - r / c)
    prediction_length: int  # c: words in all predictions
    reference_length: int  # r: words in all references


def _ngrams(words: list[str], n: int) -> Counter[tuple[str, ...]]:
    return Counter(tuple(words[i : i + n]) for i in range(len(words) - n + 1))


def corpus_bleu(predictions: list[str], references: list[str], max_order: int = 4) -> BleuScore:
    """Papineni et al. (2002) corpus BLEU with one reference per prediction, on whitespace-split words.

    p_n = sum of clipped n-gram matches / sum of predicted n-grams (each n-gram counts at most as often as the
    reference holds it); BP = exp(1 - r / c) when c <= r, else 1; BLEU = 100 * BP * exp(sum log p_n / max_order).
    Uniform weights, no smoothing: the score is 0 when any p_n is 0, including when no prediction has n words (as
    sacrebleu with tokenize="none", smooth_method="none")."""
    _check_pairs(predictions, references)
    if isinstance(max_order, bool) or not isinstance(max_order, int) or max_order < 1:
        raise ValueError(f"max_order must be a positive integer, got {max_order!r}")
    matches, totals = [0] * max_order, [0] * max_order
    c = r = 0
    for prediction, reference in zip(predictions, references, strict=True):
        pred_words, ref_words = prediction.split(), reference.split()
        c, r = c + len(pred_words), r + len(ref_words)
        for n in range(1, max_order + 1):
            predicted, wanted = _ngrams(pred_words, n), _ngrams(ref_words, n)
            matches[n - 1] += sum(min(count, wanted[gram]) for gram, count in predicted.items())
            totals[n - 1] += sum(predicted.values())
    precisions = [m / t if t else 0.0 for m, t in zip(matches, totals, strict=True)]
    brevity = 0.0 if c == 0 else 1.0 if c > r else math.exp(1 - r / c)
    if min(precisions) == 0.0:
        score = 0.0
    else:
        score = 100 * brevity * math.exp(sum(math.log(p) for p in precisions) / max_order)
    return BleuScore(score, precisions, matches, totals, brevity, c, r)


def bleu(predictions: list[str], references: list[str], max_order: int = 4) -> float:
    """Corpus BLEU, 0..100 (see `corpus_bleu` for exactly what is computed)."""
    return corpus_bleu(predictions, references, max_order).score


__all__ = ["BleuScore", "bleu", "cer", "corpus_bleu", "edit_distance", "wer"]
