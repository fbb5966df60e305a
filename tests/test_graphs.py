"""Static-cache decoding steps (what CUDA graphs replay) against the usual steps, and the graphs themselves on CUDA.

On the CPU the static steps run without capture: every strategy must give the usual sequences and scores, for each
kind of position embedding (learned absolute, learned with an offset, padded, sinusoidal).
"""

from __future__ import annotations

import pytest
import torch

from vedcli.checkpoints.load import load_model
from vedcli.generation import graphs as G
from vedcli.generation.decoding import DecodingOptions, generate
from vedcli.layers import KVCache

STRATEGIES = {
    "greedy": dict(max_new_tokens=9),
    "beams": dict(max_new_tokens=9, num_beams=3, num_return_sequences=2),
    "sampling": dict(max_new_tokens=9, do_sample=True, top_k=20, seed=3),
}


def _pixels(model, count: int, seed: int) -> torch.Tensor:
    size = model.config.encoder.image_size
    return torch.randn(count, 3, *size, generator=torch.Generator().manual_seed(seed))


def _run(model, pixels, kwargs):
    gen = getattr(model, "model", model).generation_config  # a GraphedSteps decodes with its model's defaults
    return generate(model, pixels, DecodingOptions.from_kwargs(**kwargs).resolve(gen), gen)


@pytest.mark.parametrize("decoder", ["gpt2", "bert", "roberta", "trocr", "trocr-sinusoidal"])
@pytest.mark.parametrize("strategy", list(STRATEGIES))
def test_static_steps_give_the_usual_output(tiny, decoder, strategy):
    model = load_model(tiny("vit", decoder, eos_boost=3.0), device="cpu", dtype="fp32")
    steps = G.GraphedSteps(model, capture=False)
    for seed in (1, 2):  # the second batch reuses the first one's cache (same shapes)
        pixels = _pixels(model, 4, seed)
        usual, static = _run(model, pixels, STRATEGIES[strategy]), _run(steps, pixels, STRATEGIES[strategy])
        assert torch.equal(static.sequences, usual.sequences)
        torch.testing.assert_close(static.scores, usual.scores, rtol=0, atol=1e-4)
    assert len(steps._kept) == 1


def test_rows_that_finish_early_stay_padded(tiny):
    """A static cache keeps finished rows (no dropping): their later tokens must still be pad."""
    model = load_model(tiny("vit", "gpt2", eos_boost=3.0), device="cpu", dtype="fp32")
    pixels = _pixels(model, 8, 4)
    usual = _run(model, pixels, dict(max_new_tokens=12))
    lengths = (usual.sequences != model.generation_config.pad_token_id).sum(dim=1)
    assert lengths.min() < lengths.max()  # the rows really end at different steps
    assert torch.equal(_run(G.GraphedSteps(model, capture=False), pixels, dict(max_new_tokens=12)).sequences,
                       usual.sequences)  # fmt: skip


def test_static_cache_keeps_its_buffers():
    cache = KVCache(2, 3, 2, 4, 6, torch.float32, "cpu", static=True)
    addresses = (cache.k.data_ptr(), cache.v.data_ptr())
    for step in range(3):
        k = torch.full((3, 2, 1, 4), float(step))
        cache.update(0, k, k)
        cache.update(1, k, k)
        cache.advance(1)
    assert cache.pos == 3 and int(cache.pos_t) == 3
    assert cache.visible().flatten().tolist() == [True, True, True, True, False, False]
    cache.k[0, :, 0, 0, 0] = torch.tensor([10.0, 11.0, 12.0])
    cache.reorder(torch.tensor([2, 2, 0]))
    assert (cache.k.data_ptr(), cache.v.data_ptr()) == addresses
    assert cache.k[0, :, 0, 0, 0].tolist() == [12.0, 12.0, 10.0]
    with pytest.raises(ValueError, match="keeps its rows"):
        cache.select(torch.tensor([0]))
    cache.rewind(1)
    assert cache.pos == 1 and int(cache.pos_t) == 1


def test_static_cache_takes_one_token(tiny):
    model = load_model(tiny("vit", "gpt2"), device="cpu", dtype="fp32")
    enc = model.encode(_pixels(model, 1, 0))
    cache = model.decoder.new_cache(enc, 1, 8, static=True)
    with pytest.raises(ValueError, match="one token"):
        model.decode_step(torch.zeros(1, 2, dtype=torch.long), cache)


def test_graphs_only_on_cuda(tiny, monkeypatch):
    model = load_model(tiny("vit", "gpt2"), device="cpu", dtype="fp32")
    assert not G.graphs_wanted(model)
    monkeypatch.setattr(G, "_on_cuda", lambda model: True)
    assert G.graphs_wanted(model)
    monkeypatch.setenv("VED_CUDA_GRAPHS", "0")
    assert not G.graphs_wanted(model)
    assert not G.graphs_wanted(object())  # not a ved model (a reference stepper): never wrapped
    assert G.graphed(model) is G.graphed(model)  # kept on the model: the batches of a run share the graphs


@pytest.mark.cuda
@pytest.mark.parametrize("strategy", list(STRATEGIES))
@pytest.mark.parametrize("dtype", ["fp32", "fp16"])
def test_cuda_graphs_replay_the_static_steps(tiny, strategy, dtype):
    model = load_model(tiny("vit", "trocr", eos_boost=3.0), device="cuda", dtype=dtype)
    pixels = _pixels(model, 4, 1).cuda()
    eager = _run(G.GraphedSteps(model, capture=False), pixels, STRATEGIES[strategy])
    steps = G.GraphedSteps(model)
    for _ in range(2):  # captured, then replayed from the kept graph
        graphed = _run(steps, pixels, STRATEGIES[strategy])
        assert torch.equal(graphed.sequences, eager.sequences)
    assert all(state.graph is not None and not state.failed for state in steps._kept.values())
