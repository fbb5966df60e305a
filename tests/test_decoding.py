"""The decoding engine against transformers' generate(), on the reference's own logits (via HFStepper).

Tiny random VisionEncoderDecoder models (ViT + GPT-2 / BERT / TrOCR decoders, sizes off every default) are built
here; their weights are re-drawn large and untied so that outputs depend on the image and the step, and the eos id
is picked among the tokens each model likes, so sequences really end at different steps.
"""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
import transformers as T
from transformers.generation import logits_process as hf_lp

from support.hf_stepper import HFStepper
from vedcli.cli import FLAGS, flag_of
from vedcli.errors import ModelError, OptionError, options_named
from vedcli.generation import decoding as D
from vedcli.generation import processors as P
from vedcli.generation.decoding import DecodingOptions, Generation, generate
from vedcli.generation.defaults import GenerationConfig
from vedcli.generation.processors import build_processors

START, PAD = 1, 3
IMAGE = 16
GEN_FIELDS = [f.name for f in dataclasses.fields(GenerationConfig)]


# ------------------------------------------------------------------------------------------------- models


def _decoder_config(kind: str) -> T.PretrainedConfig:
    ids = dict(bos_token_id=START, eos_token_id=2, pad_token_id=PAD, is_decoder=True, add_cross_attention=True)
    if kind == "gpt2":
        return T.GPT2Config(
            vocab_size=99, n_positions=48, n_embd=16, n_layer=2, n_head=2, n_inner=36, tie_word_embeddings=False, **ids
        )
    if kind == "bert":
        return T.BertConfig(
            vocab_size=97,
            hidden_size=20,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=36,
            max_position_embeddings=48,
            tie_word_embeddings=False,
            **ids,
        )
    if kind == "trocr":
        return T.TrOCRConfig(
            vocab_size=101,
            d_model=16,
            decoder_layers=2,
            decoder_attention_heads=2,
            decoder_ffn_dim=36,
            max_position_embeddings=48,
            cross_attention_hidden_size=24,
            tie_word_embeddings=False,
            **ids,
        )
    raise KeyError(kind)


def _build(kind: str, seed: int = 0) -> T.VisionEncoderDecoderModel:
    enc = T.ViTConfig(
        image_size=IMAGE, patch_size=8, hidden_size=24, num_hidden_layers=1, num_attention_heads=2, intermediate_size=40
    )
    cfg = T.VisionEncoderDecoderConfig.from_encoder_decoder_configs(enc, _decoder_config(kind))
    cfg.decoder_start_token_id = START
    torch.manual_seed(seed)
    model = T.VisionEncoderDecoderModel(cfg).eval()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # large random weights: outputs depend on the image and the position
        for name, p in model.named_parameters():
            if p.dim() == 1 and name.endswith("weight"):  # norm gains
                p.copy_(1 + 0.2 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.5 * torch.randn(p.shape, generator=g))
    # an eos the model likes: the most frequent token of its greedy outputs (start token aside)
    out = model.generate(_pixels(4, seed), max_new_tokens=8, eos_token_id=None)
    counts = torch.bincount(out[:, 1:].flatten(), minlength=model.decoder.config.vocab_size)
    counts[START] = counts[PAD] = 0
    model.generation_config.eos_token_id = int(counts.argmax())
    return model


def _pixels(n: int, seed: int = 1) -> torch.Tensor:
    return torch.randn(n, 3, IMAGE, IMAGE, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """These models are tiny: a second intra-op thread only spins (and costs a lot on a busy machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def models():
    made: dict[str, T.VisionEncoderDecoderModel] = {}

    def get(kind: str = "gpt2") -> T.VisionEncoderDecoderModel:
        if kind not in made:
            made[kind] = _build(kind)
        return made[kind]

    return get


def _gen_of(model) -> GenerationConfig:
    """ved's GenerationConfig with the same values as the reference model's generation_config."""
    return GenerationConfig.from_dict(model.generation_config.to_dict())


def _hf(model, pixels, **kwargs):
    with torch.no_grad():
        return model.generate(pixels, return_dict_in_generate=True, output_scores=True, **kwargs)


def _ved(model, pixels, **kwargs) -> Generation:
    gen = _gen_of(model)
    return generate(HFStepper(model), pixels, DecodingOptions.from_kwargs(**kwargs).resolve(gen), gen)


def _reference_sum_logprob(hf_out, eos: int, prompt: int = 1) -> torch.Tensor:
    """Summed log-softmax of the reference's processed scores at its chosen tokens, until each row's eos."""
    seqs = hf_out.sequences
    total = torch.zeros(seqs.shape[0])
    running = torch.ones(seqs.shape[0], dtype=torch.bool)
    eos = torch.tensor([eos])
    for step, scores in enumerate(hf_out.scores):
        tok = seqs[:, prompt + step]
        lp = scores.float().log_softmax(-1).gather(1, tok[:, None]).squeeze(1)
        total += torch.where(running, lp, torch.zeros_like(lp))
        running &= ~torch.isin(tok, eos)
    return total


# ------------------------------------------------------------------------------------------------- greedy


@pytest.mark.parametrize("kind", ["gpt2", "bert", "trocr"])
def test_greedy_matches_reference(models, kind):
    model = models(kind)
    pixels = _pixels(3)
    ref = _hf(model, pixels, max_new_tokens=12)
    ours = _ved(model, pixels, max_new_tokens=12)
    assert torch.equal(ours.sequences, ref.sequences)
    expected = _reference_sum_logprob(ref, model.generation_config.eos_token_id)
    torch.testing.assert_close(ours.scores, expected, rtol=0, atol=1e-5)


def test_greedy_rows_finish_at_different_steps_and_are_padded(models):
    """The test models do produce eos mid-way, and finished rows get pad (not eos) afterwards."""
    model = models("gpt2")
    eos = model.generation_config.eos_token_id
    ours = _ved(model, _pixels(6), max_new_tokens=12)
    ends = [(row == eos).nonzero()[0].item() if (row == eos).any() else None for row in ours.sequences]
    assert any(e is not None and e < ours.sequences.shape[1] - 1 for e in ends), ends
    assert len(set(ends)) > 1, ends
    for row, end in zip(ours.sequences, ends, strict=True):
        if end is not None:
            assert (row[end + 1 :] == PAD).all()


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(max_new_tokens=10, no_repeat_ngram_size=2),
        dict(max_new_tokens=10, repetition_penalty=1.7),
        dict(max_new_tokens=10, repetition_penalty=0.6, no_repeat_ngram_size=3),
        dict(max_new_tokens=9, min_new_tokens=6),
        dict(max_new_tokens=9, min_length=4),
        dict(max_length=7),
        dict(max_new_tokens=8, bad_words_ids=[[5], [7, 9], [11, 12, 13]]),
        dict(max_new_tokens=8, forced_bos_token_id=40, forced_eos_token_id=41),
    ],
)
def test_greedy_processors_match_reference(models, kwargs):
    model, kwargs = models("gpt2"), dict(kwargs)
    pixels = _pixels(3)
    # bad words: ban what the model actually produces, so the ban changes the output
    if "bad_words_ids" in kwargs:
        plain = _hf(model, pixels, max_new_tokens=8).sequences
        kwargs = dict(kwargs, bad_words_ids=[[int(plain[0, 1])], [int(plain[1, 2]), int(plain[1, 3])]])
    forced = {k: kwargs.pop(k) for k in ("forced_bos_token_id", "forced_eos_token_id") if k in kwargs}
    ref = _hf(model, pixels, **kwargs, **forced)
    gen = _gen_of(model)
    for key, value in forced.items():
        setattr(gen, key, value)
    ours = generate(HFStepper(model), pixels, DecodingOptions.from_kwargs(**kwargs).resolve(gen), gen)
    assert torch.equal(ours.sequences, ref.sequences)


@pytest.mark.parametrize("beams", [1, 3])
def test_multiple_eos_ids_and_default_length(models, beams):
    """eos given as a list (three ids: beam search keeps 4 candidates per beam); no length option at all:
    the reference's 20 new tokens."""
    model = models("bert")
    pixels = _pixels(4)
    plain = _hf(model, pixels, max_new_tokens=6, eos_token_id=None).sequences
    eos = [int(plain[0, 3]), int(plain[2, 2]), int(plain[3, 4])]
    ref = _hf(model, pixels, eos_token_id=eos, num_beams=beams)
    gen = _gen_of(model)
    gen.eos_token_id = eos
    ours = generate(HFStepper(model), pixels, DecodingOptions(num_beams=beams).resolve(gen), gen)
    assert torch.equal(ours.sequences, ref.sequences)
    assert torch.isin(ours.sequences[:, 1:], torch.tensor(eos[1:])).any()


def test_no_eos_runs_to_max_length(models):
    model = models("trocr")
    pixels = _pixels(2)
    ref = _hf(model, pixels, max_new_tokens=7, eos_token_id=None)
    gen = _gen_of(model)
    gen.eos_token_id = None
    ours = generate(HFStepper(model), pixels, DecodingOptions(max_new_tokens=7).resolve(gen), gen)
    assert torch.equal(ours.sequences, ref.sequences)
    assert ours.sequences.shape == (2, 8)


# -------------------------------------------------------------------------------------------- beam search

BEAM_CASES = [
    # (kind, num_beams, length_penalty, early_stopping, num_return_sequences, extra)
    ("gpt2", 2, 1.0, False, 1, {}),
    ("gpt2", 3, 1.0, True, 2, {}),
    ("gpt2", 4, 0.0, "never", 4, {}),
    ("gpt2", 5, 2.0, "never", 3, {}),
    ("gpt2", 5, -1.0, False, 5, {}),
    ("gpt2", 3, 2.0, True, 1, {}),
    ("gpt2", 4, -1.0, "never", 2, {}),
    ("gpt2", 2, 0.0, True, 2, {}),
    ("gpt2", 4, 1.0, False, 2, dict(no_repeat_ngram_size=2)),
    ("gpt2", 3, 1.0, False, 3, dict(repetition_penalty=1.5)),
    ("gpt2", 3, 1.0, "never", 1, dict(min_new_tokens=5)),
    ("bert", 3, 1.0, False, 2, {}),
    ("bert", 4, 2.0, True, 1, dict(no_repeat_ngram_size=3)),
    ("trocr", 3, -1.0, "never", 3, {}),
    ("trocr", 2, 2.0, "never", 2, {}),
    ("trocr", 5, 1.0, True, 2, dict(repetition_penalty=0.7)),
]


@pytest.mark.parametrize("kind,beams,lp,es,nrs,extra", BEAM_CASES)
def test_beam_search_matches_reference(models, kind, beams, lp, es, nrs, extra):
    model = models(kind)
    pixels = _pixels(3)
    kwargs = dict(
        max_new_tokens=10, num_beams=beams, length_penalty=lp, early_stopping=es, num_return_sequences=nrs, **extra
    )
    ref = _hf(model, pixels, **kwargs)
    ours = _ved(model, pixels, **kwargs)
    assert torch.equal(ours.sequences, ref.sequences)
    torch.testing.assert_close(ours.scores, ref.sequences_scores, rtol=0, atol=1e-5)


def test_beam_search_sees_eos_and_reorders_the_cache(models):
    """The beam cases are not trivial: hypotheses end early, and the engine reorders the cache."""
    model = models("gpt2")
    eos = model.generation_config.eos_token_id
    stepper = HFStepper(model)
    gen = _gen_of(model)
    opts = DecodingOptions(num_beams=4, num_return_sequences=4, max_new_tokens=10).resolve(gen)
    out = generate(stepper, _pixels(3), opts, gen)
    assert (out.sequences[:, 1:-1] == eos).any()
    # one start-token call, then one new token per row per step, every row of every image; a reorder between steps
    assert len(stepper.calls) > 1 and all(shape == (12, 1) for shape in stepper.calls)
    assert len(stepper.caches) == 1 and stepper.caches[0].reorders == len(stepper.calls) - 1


@pytest.mark.parametrize("es", [False, "never"])
def test_beam_search_with_eos_ids_crowding_the_candidates(models, es):
    """Three eos ids pushed up the ranking: most candidates end, and the extra candidates per beam
    (4 * num_beams with three eos ids) are what keeps enough beams running."""
    model = models("gpt2")
    eos = [5, 6, 7]
    bias = torch.zeros(model.decoder.config.vocab_size)
    bias[eos] = 6.0
    hook = model.decoder.get_output_embeddings().register_forward_hook(lambda mod, args, out: out + bias)
    try:
        pixels = _pixels(3)
        kwargs = dict(max_new_tokens=8, num_beams=3, num_return_sequences=3, length_penalty=3.0, early_stopping=es)
        ref = _hf(model, pixels, eos_token_id=eos, **kwargs)
        gen = _gen_of(model)
        gen.eos_token_id = eos
        ours = generate(HFStepper(model), pixels, DecodingOptions.from_kwargs(**kwargs).resolve(gen), gen)
    finally:
        hook.remove()
    assert torch.equal(ours.sequences, ref.sequences)
    torch.testing.assert_close(ours.scores, ref.sequences_scores, rtol=0, atol=1e-5)


def test_beam_bad_words_and_pad_zero(models):
    """bad_words_ids in beam search, and pad id 0 (the reference then fills beams with the eos id)."""
    model = models("gpt2")
    pixels = _pixels(2)
    plain = _hf(model, pixels, max_new_tokens=8, num_beams=3).sequences
    bad = [[int(plain[0, 1])], [int(plain[1, 1]), int(plain[1, 2])]]
    kwargs = dict(max_new_tokens=9, num_beams=3, num_return_sequences=3, bad_words_ids=bad)
    ref = _hf(model, pixels, pad_token_id=0, **kwargs)
    gen = _gen_of(model)
    gen.pad_token_id = 0
    ours = generate(HFStepper(model), pixels, DecodingOptions.from_kwargs(**kwargs).resolve(gen), gen)
    assert torch.equal(ours.sequences, ref.sequences)
    torch.testing.assert_close(ours.scores, ref.sequences_scores, rtol=0, atol=1e-5)


# ----------------------------------------------------------------------------------------------- sampling


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(max_new_tokens=10),  # top_k 50 by default
        dict(max_new_tokens=10, temperature=0.7, top_k=0, top_p=0.8, num_return_sequences=3),
        dict(max_new_tokens=10, temperature=1.3, top_k=7, repetition_penalty=1.2),
        dict(max_new_tokens=8, num_beams=3, num_return_sequences=2, top_p=0.9),  # beam sampling
    ],
)
def test_sampling_matches_reference_with_same_seed(models, kwargs):
    """Same seed, same draws: our explicit generator replays the reference's global-RNG sampling."""
    model = models("gpt2")
    pixels = _pixels(3)
    torch.manual_seed(1234)
    ref = _hf(model, pixels, do_sample=True, **kwargs)
    ours = _ved(model, pixels, do_sample=True, seed=1234, **kwargs)
    assert torch.equal(ours.sequences, ref.sequences)
    if kwargs.get("num_beams", 1) > 1:
        torch.testing.assert_close(ours.scores, ref.sequences_scores, rtol=0, atol=1e-5)


def test_sampling_seed_controls_draws(models):
    model = models("gpt2")
    pixels = _pixels(2)

    def draw(seed):
        return _ved(model, pixels, do_sample=True, top_k=0, max_new_tokens=12, seed=seed).sequences

    assert torch.equal(draw(7), draw(7))
    assert not torch.equal(draw(7), draw(8))


def test_sampling_scores_are_summed_logprobs_of_draws(models):
    model = models("gpt2")
    pixels = _pixels(3)
    torch.manual_seed(99)
    ref = _hf(model, pixels, do_sample=True, temperature=0.8, max_new_tokens=10)
    ours = _ved(model, pixels, do_sample=True, temperature=0.8, max_new_tokens=10, seed=99)
    expected = _reference_sum_logprob(ref, model.generation_config.eos_token_id)
    torch.testing.assert_close(ours.scores, expected, rtol=0, atol=1e-5)


# ------------------------------------------------------------------------------------- processors, one by one


def _history(rows: int = 6, length: int = 9, vocab: int = 30, seed: int = 0) -> torch.Tensor:
    """Token histories with many repeats (so n-grams, penalties and bad words trigger)."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 6, (rows, length), generator=g) * (vocab // 6)


def _scores(rows: int = 6, vocab: int = 30, seed: int = 1) -> torch.Tensor:
    return torch.randn(rows, vocab, generator=torch.Generator().manual_seed(seed)) * 3


CPU = torch.device("cpu")
PROCESSOR_PAIRS = [
    # (ours, the reference's, whether the case changes the scores)
    (lambda: P.RepetitionPenalty(1.8), lambda: hf_lp.RepetitionPenaltyLogitsProcessor(1.8), True),
    (lambda: P.RepetitionPenalty(0.5), lambda: hf_lp.RepetitionPenaltyLogitsProcessor(0.5), True),
    (lambda: P.NoRepeatNGram(2), lambda: hf_lp.NoRepeatNGramLogitsProcessor(2), True),
    (lambda: P.NoRepeatNGram(3), lambda: hf_lp.NoRepeatNGramLogitsProcessor(3), True),
    (lambda: P.NoRepeatNGram(10), lambda: hf_lp.NoRepeatNGramLogitsProcessor(10), False),  # history too short
    (
        lambda: P.BadWords([[5], [0, 5], [10, 10, 15], [25]], eos=[25], device=CPU),
        lambda: hf_lp.NoBadWordsLogitsProcessor([[5], [0, 5], [10, 10, 15], [25]], eos_token_id=[25]),
        True,
    ),
    (
        lambda: P.MinNewTokens(9, eos=[3, 4], device=CPU),
        lambda: hf_lp.MinNewTokensLengthLogitsProcessor(1, 9, [3, 4]),
        True,
    ),
    (
        lambda: P.MinNewTokens(8, eos=[3], device=CPU),
        lambda: hf_lp.MinNewTokensLengthLogitsProcessor(1, 8, [3]),
        False,
    ),  # 8 tokens generated: eos allowed again
    (lambda: P.ForcedEOS(10, eos=[7, 8], device=CPU), lambda: hf_lp.ForcedEOSTokenLogitsProcessor(10, [7, 8]), True),
    (lambda: P.ForcedEOS(11, eos=[7], device=CPU), lambda: hf_lp.ForcedEOSTokenLogitsProcessor(11, [7]), False),
    (lambda: P.Temperature(0.6), lambda: hf_lp.TemperatureLogitsWarper(0.6), True),
    (lambda: P.TopK(4), lambda: hf_lp.TopKLogitsWarper(4), True),
    (lambda: P.TopK(1, keep=3), lambda: hf_lp.TopKLogitsWarper(1, min_tokens_to_keep=3), True),
    (lambda: P.TopP(0.7), lambda: hf_lp.TopPLogitsWarper(0.7), True),
    (lambda: P.TopP(0.05, keep=2), lambda: hf_lp.TopPLogitsWarper(0.05, min_tokens_to_keep=2), True),
]


@pytest.mark.parametrize("ours,theirs,changes", PROCESSOR_PAIRS)
def test_processor_matches_reference(ours, theirs, changes):
    tokens, scores = _history(), _scores()
    expected = theirs()(tokens, scores.clone())
    got = ours()(tokens, scores.clone())
    assert torch.equal(got, expected)
    assert torch.equal(got, scores) != changes


def test_short_history_bans_no_ngram():
    tokens, scores = _history(length=3), _scores()
    assert torch.equal(P.NoRepeatNGram(4)(tokens, scores), scores)


def test_forced_bos_matches_reference():
    tokens, scores = torch.full((3, 1), START), _scores(3)
    assert torch.equal(P.ForcedBOS(6)(tokens, scores), hf_lp.ForcedBOSTokenLogitsProcessor(6)(tokens, scores))
    later = torch.full((3, 2), START)
    assert torch.equal(P.ForcedBOS(6)(later, scores), scores)


def test_bad_words_outside_vocabulary_is_an_option_error():
    proc = P.BadWords([[40]], eos=[], device=torch.device("cpu"))
    with pytest.raises(OptionError) as err:
        proc(_history(), _scores())
    assert err.value.option == "bad_words_ids"


def _reference_processors(model, monkeypatch, **kwargs) -> list:
    """The LogitsProcessorList transformers' generate builds for `kwargs` (captured, decoding not run)."""
    captured = {}

    class Stop(Exception):
        pass

    def capture(self, input_ids, logits_processor, **rest):
        captured["list"] = logits_processor
        raise Stop

    monkeypatch.setattr(type(model), "_sample", capture)
    monkeypatch.setattr(type(model), "_beam_search", capture)
    with pytest.raises(Stop):
        model.generate(_pixels(1), **kwargs)
    return captured["list"]


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(do_sample=True),
        dict(
            do_sample=True,
            temperature=0.5,
            top_k=5,
            top_p=0.6,
            repetition_penalty=1.3,
            no_repeat_ngram_size=2,
            min_new_tokens=5,
            bad_words_ids=[[6], [12, 18]],
            forced_eos_token_id=[4, 9],
            max_new_tokens=9,
        ),
        dict(do_sample=True, num_beams=3, top_k=1, top_p=0.3),  # beam sampling keeps 2 tokens
        dict(num_beams=2, repetition_penalty=0.8, min_length=12, forced_bos_token_id=5),
    ],
)
def test_processor_list_matches_reference(models, monkeypatch, kwargs):
    """The whole processed distribution equals what the reference's processor list makes of the same scores."""
    model, kwargs = models("gpt2"), dict(kwargs)
    vocab = model.decoder.config.vocab_size
    theirs = _reference_processors(model, monkeypatch, **kwargs)
    gen = _gen_of(model)
    for key in ("forced_bos_token_id", "forced_eos_token_id"):
        if key in kwargs:
            setattr(gen, key, kwargs.pop(key))
    opts = DecodingOptions.from_kwargs(**kwargs).resolve(gen)
    ours = build_processors(opts, D.SpecialTokens.from_config(gen))
    for length in (1, 6, 9):
        tokens = _history(length=length, vocab=vocab)
        tokens[:, 0] = START
        scores = _scores(vocab=vocab, seed=length)
        expected = theirs(tokens, scores.clone())
        got = P.apply_processors(ours, tokens, scores.clone())
        assert torch.equal(got, expected)
        torch.testing.assert_close(got.softmax(-1), expected.softmax(-1), rtol=0, atol=0)


# ------------------------------------------------------------------------------------- options validation


@pytest.mark.parametrize(
    "options,flag,message",
    [
        (dict(top_p=0.5), "--top-p", "--top-p needs --sample"),
        (dict(temperature=0.7), "--temperature", "--temperature needs --sample"),
        (dict(top_k=3), "--top-k", "--top-k needs --sample"),
        (dict(seed=3), "--seed", "--seed needs --sample"),
        (dict(do_sample=True, temperature=0.0), "--temperature", "--temperature must be > 0"),
        (dict(do_sample=True, top_p=1.5), "--top-p", "--top-p must be between 0 and 1"),
        (dict(do_sample=True, top_k=-1), "--top-k", "--top-k must be >= 0"),
        (
            dict(num_beams=2, num_return_sequences=3),
            "--num-return-sequences",
            "--num-return-sequences 3 is more than --beams 2",
        ),
        (dict(num_return_sequences=2), "--num-return-sequences", "--num-return-sequences 2 needs"),
        (dict(num_beams=0), "--beams", "--beams must be >= 1"),
        (dict(num_beams=2.5), "--beams", "--beams must be a whole number"),
        (dict(max_new_tokens=0), "--max-new-tokens", "--max-new-tokens must be >= 1"),
        (
            dict(max_new_tokens=4, min_new_tokens=5),
            "--min-new-tokens",
            "--min-new-tokens is more than --max-new-tokens",
        ),
        (dict(min_new_tokens=30), "--min-new-tokens", "--min-new-tokens is more than --max-new-tokens"),
        (dict(repetition_penalty=0.0), "--repetition-penalty", "--repetition-penalty must be > 0"),
        (dict(no_repeat_ngram_size=-2), "--no-repeat-ngram-size", "--no-repeat-ngram-size must be >= 0"),
        (dict(length_penalty=2.0), "--length-penalty", "--length-penalty needs --beams"),
        (
            dict(num_beams=2, early_stopping="sometimes"),
            "generation_config.json early_stopping",
            "generation_config.json early_stopping must be",
        ),
        (dict(bad_words_ids=((),)), "generation_config.json bad_words_ids", "bad word"),
    ],
)
def test_option_errors_name_the_flag(options, flag, message):
    with pytest.raises(OptionError) as err:
        DecodingOptions(**options).resolve(GenerationConfig(decoder_start_token_id=0, eos_token_id=2))
    with options_named(flag_of):  # as the CLI shows it
        assert err.value.where == flag
        assert err.value.message.startswith(message)
    assert flag_of(err.value.option) == flag and "--" not in str(err.value)  # the library names the field
    assert "\n" not in str(err.value)


def test_options_fall_back_to_checkpoint_then_reference_defaults():
    gen = GenerationConfig(
        decoder_start_token_id=0, num_beams=4, max_length=33, early_stopping=True, top_k=5, min_length=3
    )
    r = DecodingOptions().resolve(gen)
    assert (r.num_beams, r.max_new_tokens, r.early_stopping, r.top_k, r.min_new_tokens) == (4, 32, True, 5, 2)
    assert (r.do_sample, r.top_p, r.temperature, r.length_penalty, r.num_return_sequences) == (False, 1.0, 1.0, 1.0, 1)
    r = DecodingOptions(num_beams=1, max_new_tokens=5).resolve(gen)
    assert (r.num_beams, r.max_new_tokens) == (1, 5)
    r = DecodingOptions().resolve(GenerationConfig(decoder_start_token_id=0))
    assert r.max_new_tokens == 20 and r.top_k == 50 and r.num_beams == 1


def test_from_kwargs_takes_generate_names():
    o = DecodingOptions.from_kwargs(num_beams=3, max_length=9, min_length=4, do_sample=False, bad_words_ids=[[1, 2]])
    assert (o.num_beams, o.max_new_tokens, o.min_new_tokens, o.bad_words_ids) == (3, 8, 3, ((1, 2),))
    assert DecodingOptions.from_kwargs(max_length=9, max_new_tokens=4).max_new_tokens == 4
    with pytest.raises(OptionError) as err:
        DecodingOptions.from_kwargs(num_beam=3)
    assert err.value.where == "num_beam"


def test_flags_cover_every_option():
    assert {f.name for f in dataclasses.fields(DecodingOptions)} <= set(FLAGS)


def test_missing_start_token_is_a_model_error(models):
    with pytest.raises(ModelError):
        generate(
            HFStepper(models("gpt2")), _pixels(1), DecodingOptions().resolve(GenerationConfig()), GenerationConfig()
        )


# ---------------------------------------------------------------------------------------- generation config


def _assert_same_config(ours: GenerationConfig, theirs) -> None:
    for name in GEN_FIELDS:
        assert getattr(ours, name) == getattr(theirs, name), name


def test_from_folder_reads_generation_config_json(models, tmp_path):
    model = models("gpt2")
    model.save_pretrained(tmp_path)
    gc = T.GenerationConfig(
        decoder_start_token_id=START,
        bos_token_id=START,
        eos_token_id=[2, 7],
        pad_token_id=PAD,
        max_length=17,
        num_beams=3,
        length_penalty=0.5,
        early_stopping="never",
        no_repeat_ngram_size=2,
        bad_words_ids=[[4], [5, 6]],
        do_sample=True,
        top_k=9,
        min_new_tokens=2,
    )
    gc.save_pretrained(tmp_path)
    ours = GenerationConfig.from_folder(tmp_path)
    _assert_same_config(ours, T.VisionEncoderDecoderModel.from_pretrained(tmp_path).generation_config)
    assert ours.eos_token_ids == (2, 7) and ours.max_length == 17


def test_from_folder_legacy_config_json(models, tmp_path):
    """No generation_config.json: top-level legacy fields of config.json, then those of the decoder sub-config."""
    model = models("gpt2")
    model.save_pretrained(tmp_path)
    (tmp_path / "generation_config.json").unlink()
    config = json.loads((tmp_path / "config.json").read_text())
    config.update(max_length=9, num_beams=3, early_stopping=True, length_penalty=2.0, eos_token_id=None)
    config["decoder"].update(
        max_length=20,
        no_repeat_ngram_size=2,
        num_beams=1,
        top_k=50,
        min_length=0,
        eos_token_id=model.generation_config.eos_token_id,
        pad_token_id=PAD,
    )
    (tmp_path / "config.json").write_text(json.dumps(config))
    reference = T.VisionEncoderDecoderModel.from_pretrained(tmp_path).eval()
    ours = GenerationConfig.from_folder(tmp_path)
    _assert_same_config(ours, reference.generation_config)
    assert (ours.max_length, ours.num_beams, ours.no_repeat_ngram_size) == (9, 3, 2)

    # and decoding with nothing but the checkpoint's defaults gives the reference's output
    pixels = _pixels(2)
    with torch.no_grad():
        expected = reference.generate(pixels)
    got = generate(HFStepper(reference), pixels, DecodingOptions().resolve(ours), ours)
    assert torch.equal(got.sequences, expected)


def test_from_folder_start_token_from_config_when_generation_config_lacks_it(tmp_path):
    (tmp_path / "generation_config.json").write_text(json.dumps({"eos_token_id": 2}))
    (tmp_path / "config.json").write_text(json.dumps({"decoder_start_token_id": 5, "decoder": {"bos_token_id": 0}}))
    gen = GenerationConfig.from_folder(tmp_path)
    assert gen.start_token_id == 5 and gen.eos_token_id == 2


def test_from_folder_errors(tmp_path):
    with pytest.raises(ModelError):
        GenerationConfig.from_folder(tmp_path)
    (tmp_path / "generation_config.json").write_text("{not json")
    with pytest.raises(ModelError) as err:
        GenerationConfig.from_folder(tmp_path)
    assert err.value.where.endswith("generation_config.json")


def test_to_dict_is_loaded_by_transformers(tmp_path):
    ours = GenerationConfig(
        decoder_start_token_id=2,
        eos_token_id=[2, 3],
        pad_token_id=1,
        max_new_tokens=12,
        num_beams=4,
        early_stopping="never",
        length_penalty=-1.0,
        no_repeat_ngram_size=3,
        repetition_penalty=1.2,
        num_return_sequences=2,
        bad_words_ids=[[7]],
        forced_eos_token_id=3,
        do_sample=False,
    )
    ours.save(tmp_path)
    _assert_same_config(ours, T.GenerationConfig.from_pretrained(tmp_path))
    assert GenerationConfig.from_folder(tmp_path) == ours


# ---------------------------------------------------------------------------------------- dtypes and devices


class _CastLogits:
    """A stepper whose logits come out in another dtype (as a half-precision model's would)."""

    def __init__(self, inner, dtype):
        self.inner, self.dtype = inner, dtype

    def encode(self, pixel_values):
        return self.inner.encode(pixel_values)

    def new_cache(self, enc, group, max_len):
        return self.inner.new_cache(enc, group, max_len)

    def decode_step(self, tokens, cache):
        return self.inner.decode_step(tokens, cache).to(self.dtype)


def test_low_precision_logits_are_scored_in_float32(models):
    model = models("gpt2")
    gen = _gen_of(model)
    opts = DecodingOptions(num_beams=3, max_new_tokens=8).resolve(gen)
    half = generate(_CastLogits(HFStepper(model), torch.bfloat16), _pixels(2), opts, gen)
    rounded = _CastLogits(_CastLogits(HFStepper(model), torch.bfloat16), torch.float32)
    assert half.scores.dtype == torch.float32
    assert torch.equal(half.sequences, generate(rounded, _pixels(2), opts, gen).sequences)


@pytest.mark.cuda
@pytest.mark.parametrize(
    "kwargs", [dict(max_new_tokens=10), dict(max_new_tokens=10, num_beams=4, num_return_sequences=2)]
)
def test_cuda_matches_cpu_reference(models, kwargs):
    model = models("gpt2")
    pixels = _pixels(3)
    ref = _hf(model, pixels, **kwargs)
    cuda_model = _build("gpt2").cuda()  # same seed, same weights and eos
    gen = _gen_of(cuda_model)
    ours = generate(HFStepper(cuda_model), pixels.cuda(), DecodingOptions.from_kwargs(**kwargs).resolve(gen), gen)
    assert ours.sequences.device.type == "cuda"
    assert torch.equal(ours.sequences.cpu(), ref.sequences)


# ------------------------------------------------------------------------------------------- ved's own model


@pytest.mark.parametrize("decoder", ["gpt2", "trocr"])
@pytest.mark.parametrize(
    "kwargs",
    [dict(max_new_tokens=9), dict(max_new_tokens=9, num_beams=3, num_return_sequences=2)],
    ids=["greedy", "beams"],
)
def test_engine_on_ved_model_matches_reference(tiny, decoder, kwargs):
    """The same engine driving ved's model (loaded from a folder transformers wrote) gives the reference's output."""
    from vedcli.checkpoints.load import load_model

    folder = tiny("vit", decoder, eos_boost=3.0)
    reference = T.VisionEncoderDecoderModel.from_pretrained(folder).eval()
    ours = load_model(folder, device="cpu", dtype="fp32")
    size = reference.config.encoder.image_size
    pixels = torch.randn(3, 3, size, size, generator=torch.Generator().manual_seed(5))
    expected = _hf(reference, pixels, **kwargs)
    gen = ours.generation_config
    got = generate(ours, pixels, DecodingOptions.from_kwargs(**kwargs).resolve(gen), gen)
    assert torch.equal(got.sequences, expected.sequences)
    if "num_beams" in kwargs:
        torch.testing.assert_close(got.scores, expected.sequences_scores, rtol=0, atol=1e-4)
