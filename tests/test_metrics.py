"""vedcli.training.metrics against values worked out by hand (the arithmetic is written out next to each case),
against a plain dynamic-programming edit distance, and against the examples of the BLEU paper (Papineni et al. 2002)."""

from __future__ import annotations

import math
import random

import pytest

from vedcli.training.metrics import bleu, cer, corpus_bleu, edit_distance, wer


def table_distance(a, b) -> int:
    """The textbook Wagner-Fischer table, row by row: the slow, obvious reference for edit_distance."""
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, start=1):
        current = [i]
        for j, y in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]


# --- edit distance ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "distance"),
    [
        ("", "", 0),
        ("", "abc", 3),  # three insertions
        ("abc", "", 3),  # three deletions
        ("abc", "abc", 0),
        ("kitten", "sitting", 3),  # k->s, e->i, +g
        ("flaw", "lawn", 2),  # -f, +n
        ("intention", "execution", 5),  # the textbook example: i->e, n->x, t->c, -n... 5 in all
        ("ab", "ba", 2),  # no transpositions: two substitutions
        ("a" * 70 + "b", "a" * 70 + "c", 1),  # longer than one 64-bit word
    ],
)
def test_known_distances(a, b, distance):
    assert edit_distance(a, b) == distance
    assert edit_distance(b, a) == distance


def test_distance_matches_the_table_on_random_strings_and_word_lists():
    rng = random.Random(5)
    for _ in range(400):
        a = "".join(rng.choice("abcd") for _ in range(rng.randint(0, 90)))
        b = "".join(rng.choice("abce") for _ in range(rng.randint(0, 90)))
        assert edit_distance(a, b) == table_distance(a, b), (a, b)
    words = ["the", "a", "cat", "dog", "mat"]
    for _ in range(100):
        a = [rng.choice(words) for _ in range(rng.randint(0, 20))]
        b = [rng.choice(words) for _ in range(rng.randint(0, 20))]
        assert edit_distance(a, b) == table_distance(a, b)


# --- CER / WER --------------------------------------------------------------------------------------------------


def test_cer_by_hand():
    # kitten -> sitting: 3 edits; flaw -> lawn: 2 edits. References hold 7 + 4 = 11 characters.
    assert cer(["kitten", "flaw"], ["sitting", "lawn"]) == pytest.approx(5 / 11)
    # corpus level, not a mean of per-line rates: (1 + 0) / (1 + 9), not (1/1 + 0/9) / 2
    assert cer(["b", "abcdefghi"], ["a", "abcdefghi"]) == pytest.approx(1 / 10)
    # spaces are characters: "a b" -> "ab" is one deletion out of 3
    assert cer(["ab"], ["a b"]) == pytest.approx(1 / 3)
    # insertions can push the rate past 1: "a" -> "abcd" is 3 insertions for 1 reference character
    assert cer(["abcd"], ["a"]) == 3.0


def test_wer_by_hand():
    # "the cat sat on mat" vs "the cat sat on the mat": 1 deletion (the) of 6 reference words;
    # "a dog barks" vs "the dog barked": 2 substitutions (a->the, barks->barked) of 3 words. (1 + 2) / (6 + 3)
    predictions = ["the cat sat on mat", "a dog barks"]
    references = ["the cat sat on the mat", "the dog barked"]
    assert wer(predictions, references) == pytest.approx(3 / 9)
    # words split on any whitespace; case and punctuation count: "Cat." != "cat"
    assert wer(["  the\tcat \n sat "], ["the cat sat"]) == 0.0
    assert wer(["the Cat."], ["the cat"]) == pytest.approx(1 / 2)


def test_identical_and_empty():
    texts = ["hello world", "ünïcödé ok"]
    assert cer(texts, texts) == 0.0 and wer(texts, texts) == 0.0
    # empty predictions: every reference symbol is deleted -> 1
    assert cer(["", ""], ["ab", "c"]) == 1.0
    assert wer(["", ""], ["a b", "c"]) == 1.0
    # references with no symbols at all (documented): 0 when the predictions are empty too, else 1
    assert cer([""], [""]) == 0.0 and wer([" "], [""]) == 0.0
    assert cer(["x"], [""]) == 1.0 and wer(["x y"], [" "]) == 1.0
    # an empty reference among others adds its insertions to the numerator only: (2 + 0) / (0 + 2)
    assert cer(["ab", "cd"], ["", "cd"]) == 1.0
    assert cer([], []) == 0.0 and wer([], []) == 0.0


def test_lengths_must_match():
    with pytest.raises(ValueError, match="2 predictions for 1 references"):
        cer(["a", "b"], ["a"])
    with pytest.raises(ValueError):
        wer(["a"], [])
    with pytest.raises(ValueError):
        bleu([], ["a"])


# --- BLEU -------------------------------------------------------------------------------------------------------


def test_paper_modified_unigram_precision():
    # Papineni et al. 2002, section 2.1: candidate "the the the the the the the" against "The cat is on the mat."
    # has modified unigram precision 2/7 ("the" is clipped to its 2 occurrences in the reference; lower-cased here,
    # since ved compares words exactly).
    result = corpus_bleu(["the the the the the the the"], ["the cat is on the mat ."], max_order=1)
    assert result.matches == [2] and result.totals == [7]
    assert result.precisions == [pytest.approx(2 / 7)]
    assert result.brevity_penalty == 1.0  # 7 words against 7: not shorter
    assert result.score == pytest.approx(100 * 2 / 7)
    # with the paper's default N = 4 there are no bigram matches: BLEU is 0
    assert bleu(["the the the the the the the"], ["the cat is on the mat ."]) == 0.0


def test_paper_bigram_example():
    # Section 2.1 again: candidate 1 "It is a guide to action which ensures that the military always obeys the
    # commands of the party" (18 words, 17 bigrams; the paper counts without the final period) against reference 1
    # "It is a guide to action that ensures that the military will forever heed Party commands".
    #   bigrams found in the reference: It is, is a, a guide, guide to, to action, ensures that, that the,
    #   the military                                                                     -> 8 of 17
    #   unigrams: It is a guide to action ensures that the military commands -> 11 of 18 ("the" occurs three times
    #   but once in the reference: clipped to 1; "party" != "Party"; which, always, obeys, of do not occur)
    candidate = "It is a guide to action which ensures that the military always obeys the commands of the party"
    reference = "It is a guide to action that ensures that the military will forever heed Party commands"
    result = corpus_bleu([candidate], [reference], max_order=2)
    assert result.totals == [18, 17]
    assert result.matches == [11, 8]
    assert result.brevity_penalty == 1.0  # 18 words against 16
    assert result.score == pytest.approx(100 * math.sqrt(11 / 18 * 8 / 17))


def test_bleu4_by_hand():
    # prediction "the cat sat on the mat" (c = 6) vs reference "the cat sat on the red mat" (r = 7)
    #   1-grams: the x2 (ref has 2), cat, sat, on, mat          -> 6 / 6
    #   2-grams: the cat, cat sat, sat on, on the | the mat      -> 4 / 5
    #   3-grams: the cat sat, cat sat on, sat on the | on the mat -> 3 / 4
    #   4-grams: the cat sat on, cat sat on the | sat on the mat -> 2 / 3
    #   BP = exp(1 - 7/6) since c <= r
    prediction, reference = "the cat sat on the mat", "the cat sat on the red mat"
    expected = 100 * math.exp(1 - 7 / 6) * (6 / 6 * 4 / 5 * 3 / 4 * 2 / 3) ** (1 / 4)
    result = corpus_bleu([prediction], [reference])
    assert result.matches == [6, 4, 3, 2] and result.totals == [6, 5, 4, 3]
    assert result.brevity_penalty == pytest.approx(math.exp(-1 / 6))
    assert (result.prediction_length, result.reference_length) == (6, 7)
    assert result.score == pytest.approx(expected)
    assert bleu([prediction], [reference]) == pytest.approx(expected)  # 44.0...

    # corpus level: counts are pooled before dividing. Adding an exact pair "a b c d e" (5 words) adds
    # 5, 4, 3, 2 matches and totals: p = 11/11, 8/9, 6/7, 4/5; c = 11, r = 12
    result = corpus_bleu([prediction, "a b c d e"], [reference, "a b c d e"])
    expected = 100 * math.exp(1 - 12 / 11) * (1 * 8 / 9 * 6 / 7 * 4 / 5) ** (1 / 4)
    assert result.score == pytest.approx(expected)


def test_bleu_edges():
    texts = ["a man riding a wave", "two dogs play in the park"]
    assert bleu(texts, texts) == pytest.approx(100.0)
    assert bleu(["", ""], texts) == 0.0  # nothing predicted
    assert bleu([], []) == 0.0
    # a longer prediction is not penalised by BP (only precision drops): 5/6, 4/5, 3/4, 2/3
    longer = corpus_bleu(["a man riding a wave now"], ["a man riding a wave"])
    assert longer.brevity_penalty == 1.0
    assert longer.score == pytest.approx(100 * (5 / 6 * 4 / 5 * 3 / 4 * 2 / 3) ** 0.25)
    # no smoothing: predictions shorter than 4 words have no 4-grams, so BLEU-4 is 0 (as documented) ...
    assert bleu(["a dog"], ["a dog"]) == 0.0
    # ... while BLEU-2 of the same pair is perfect
    assert bleu(["a dog"], ["a dog"], max_order=2) == pytest.approx(100.0)
    with pytest.raises(ValueError, match="max_order"):
        bleu(["a"], ["a"], max_order=0)
