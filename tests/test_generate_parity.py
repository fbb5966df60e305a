"""ved's model + decoding engine end to end against the reference's generate(), on tiny random checkpoints.

Each checkpoint gets an end-of-sequence token the random model actually emits (checkpoints.natural_eos), so
sequences stop at different lengths and the stopping, padding and beam-finalisation logic is exercised.
"""

from __future__ import annotations

import shutil

import pytest
import torch

from conftest import PAIRS
from support.checkpoints import natural_eos, reference
from vedcli.checkpoints.load import load_model
from vedcli.generation.decoding import DecodingOptions, generate

PIXELS = torch.randn(5, 3, 32, 32, generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="module")
def stopping(tiny, tmp_path_factory):
    """tiny checkpoint with a natural end-of-sequence token -> (reference model, ved model). Works on a copy, so the
    shared tiny checkpoints other tests use keep their own end-of-sequence token."""
    made = {}

    def make(encoder, decoder):
        if (encoder, decoder) not in made:
            folder = tmp_path_factory.mktemp(f"{encoder}-{decoder}-eos") / "ckpt"
            shutil.copytree(tiny(encoder, decoder), folder)
            natural_eos(folder, PIXELS)
            made[encoder, decoder] = reference(folder), load_model(folder)
        return made[encoder, decoder]

    return make


def assert_same(ref, ours, **options):
    expected = ref.generate(PIXELS, **options)
    got = ours.generate(PIXELS, **options)
    assert got.shape == expected.shape, options
    assert torch.equal(got, expected), options
    return got


@pytest.mark.parametrize("encoder,decoder", PAIRS)
def test_greedy_and_beam_match_reference_for_every_pair(stopping, encoder, decoder):
    ref, ours = stopping(encoder, decoder)
    greedy = assert_same(ref, ours, max_new_tokens=10)
    eos = ref.generation_config.eos_token_id
    assert (greedy == eos).any(), "some sequence should stop"
    assert_same(ref, ours, max_new_tokens=10, num_beams=3)


OPTION_SETS = [
    dict(),  # the checkpoint's defaults (max_length 20)
    dict(max_new_tokens=4),
    dict(min_new_tokens=6, max_new_tokens=9),
    dict(num_beams=2, max_new_tokens=8),
    dict(num_beams=5, max_new_tokens=8, num_return_sequences=5),
    dict(num_beams=4, length_penalty=0.0, max_new_tokens=8),
    dict(num_beams=4, length_penalty=-1.0, max_new_tokens=8),
    dict(num_beams=4, length_penalty=2.0, early_stopping=True, max_new_tokens=8),
    dict(num_beams=3, early_stopping="never", num_return_sequences=2, max_new_tokens=8),
    dict(num_beams=3, early_stopping=False, max_new_tokens=8),
    dict(no_repeat_ngram_size=2, max_new_tokens=12),
    dict(num_beams=3, no_repeat_ngram_size=1, max_new_tokens=8),
    dict(repetition_penalty=1.5, max_new_tokens=10),
    dict(num_beams=3, repetition_penalty=0.7, max_new_tokens=8),
    dict(bad_words_ids=[[5], [7, 8]], max_new_tokens=10),
]


@pytest.mark.parametrize("options", OPTION_SETS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "defaults")
@pytest.mark.parametrize("decoder", ["gpt2", "trocr"])
def test_options_match_reference(stopping, decoder, options):
    ref, ours = stopping("vit", decoder)
    assert_same(ref, ours, **options)


@pytest.mark.parametrize("length_penalty", [0.0, 1.0, 2.0])
def test_beam_scores_match_reference(stopping, length_penalty):
    ref, ours = stopping("deit", "bert")
    options = dict(num_beams=3, num_return_sequences=2, max_new_tokens=8, length_penalty=length_penalty)
    expected = ref.generate(PIXELS, output_scores=True, return_dict_in_generate=True, **options)
    resolved = DecodingOptions.from_kwargs(**options).resolve(ours.generation_config)
    got = generate(ours, PIXELS, resolved, ours.generation_config)
    assert torch.equal(got.sequences, expected.sequences)
    assert torch.allclose(got.scores, expected.sequences_scores, atol=1e-5)


def test_greedy_score_is_sum_of_chosen_log_probs(stopping):
    ref, ours = stopping("vit", "roberta")
    resolved = DecodingOptions(max_new_tokens=6).resolve(ours.generation_config)
    got = generate(ours, PIXELS, resolved, ours.generation_config)
    with torch.no_grad():
        logits = ours(pixel_values=PIXELS, decoder_input_ids=got.sequences[:, :-1]).logits
    logp = torch.log_softmax(logits, -1).gather(-1, got.sequences[:, 1:, None])[..., 0]
    pad = ours.generation_config.pad_token_id
    eos = ours.generation_config.eos_token_id
    # positions after the first eos are padding, not choices
    live = torch.ones_like(logp, dtype=torch.bool)
    for row, seq in enumerate(got.sequences[:, 1:].tolist()):
        if eos in seq:
            live[row, seq.index(eos) + 1 :] = False
    expected = (logp * live).sum(-1)
    assert torch.allclose(got.scores, expected, atol=1e-4)
    assert pad is not None


def test_sampling_is_seeded(stopping):
    _, ours = stopping("vit", "gpt2")
    a = ours.generate(PIXELS, do_sample=True, seed=3, top_k=20, max_new_tokens=8)
    b = ours.generate(PIXELS, do_sample=True, seed=3, top_k=20, max_new_tokens=8)
    c = ours.generate(PIXELS, do_sample=True, seed=4, top_k=20, max_new_tokens=8)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


@pytest.mark.parametrize("dtype", ["bf16", "fp16"])
def test_half_precision_generates(tiny, dtype):
    model = load_model(tiny("vit", "gpt2"), dtype=dtype)
    out = model.generate(PIXELS, num_beams=2, max_new_tokens=5)
    assert out.shape[0] == PIXELS.shape[0] and out.dtype == torch.int64


@pytest.mark.cuda
def test_cuda_generation_matches_cpu(stopping):
    ref, ours = stopping("vit", "trocr")
    cpu = ours.generate(PIXELS, num_beams=3, max_new_tokens=8)
    gpu = ours.to("cuda").generate(PIXELS.cuda(), num_beams=3, max_new_tokens=8).cpu()
    ours.to("cpu")
    assert torch.equal(cpu, gpu)


def test_generated_ids_can_be_training_labels(tiny):
    """generate() returns ordinary tensors (not inference-mode ones): a training step can use them as labels."""
    model = load_model(tiny("vit", "trocr"))
    ids = model.generate(PIXELS[:2], max_new_tokens=4)
    loss = model(pixel_values=PIXELS[:2], labels=ids[:, 1:]).loss
    loss.backward()
    assert model.decoder.embed.weight.grad is not None
