"""Decoder families beyond the core (BART, mBART, ELECTRA, XLM-R, CamemBERT, BERT-generation) against the reference.

test_model.py and test_generate_parity.py already compare logits, loss, greedy and beam search for each pairing
in conftest.EXTRA_PAIRS; here are the family-specific details: the saved weight names, cached decoding, config
variants (ELECTRA with and without its embedding projection, BART's embedding scale, untied heads) and mBART with a
forced first token, as Donut and multilingual checkpoints configure it.
"""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from conftest import EXTRA_PAIRS
from support.checkpoints import reference
from vedcli.checkpoints.load import load_model
from vedcli.decoders import decoder_config
from vedcli.errors import ModelError

NEW_DECODERS = {"electra", "xlm-roberta", "bart", "mbart", "camembert", "bert-generation"}
FAMILIES = [(e, d) for e, d in EXTRA_PAIRS if d in NEW_DECODERS and e in ("vit", "deit")]
PIXELS = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(5))


def _ids(vocab: int, rows: int = 3, length: int = 6) -> torch.Tensor:
    return torch.randint(0, vocab, (rows, length), generator=torch.Generator().manual_seed(7))


def _assert_logits_match(folder) -> None:
    ref, ours = reference(folder), load_model(folder)
    ids = _ids(ours.config.decoder.vocab_size)
    with torch.no_grad():
        expected = ref(pixel_values=PIXELS, decoder_input_ids=ids).logits
        got = ours(pixel_values=PIXELS, decoder_input_ids=ids).logits
    assert got.shape == expected.shape
    assert (got - expected).abs().max() < 1e-4


@pytest.mark.parametrize("encoder,decoder", FAMILIES)
def test_weight_names_round_trip(tiny, encoder, decoder):
    """Every saved decoder tensor is read, and writing back gives exactly the names and tensors transformers saved."""
    folder = tiny(encoder, decoder)
    saved = load_file(folder / "model.safetensors")
    ours = load_model(folder).hf_state_dict()
    assert {k for k in ours if k.startswith("decoder.")} == {k for k in saved if k.startswith("decoder.")}
    assert {k for k in set(saved) - set(ours) if not k.startswith("encoder.pooler.")} == set()  # ViT's unused pooler
    for name, tensor in ours.items():
        assert torch.equal(tensor, saved[name]), name


def test_roberta_like_decoders_keep_roberta_names(tiny):
    """XLMRobertaForCausalLM and CamembertForCausalLM save under `roberta.` and `lm_head.`, as RoBERTa does."""
    for decoder in ("xlm-roberta", "camembert"):
        folder = tiny("vit", decoder)
        assert json.loads((folder / "config.json").read_text())["decoder"]["model_type"] == decoder
        prefixes = {k.split(".")[1] for k in load_file(folder / "model.safetensors") if k.startswith("decoder.")}
        assert prefixes == {"roberta", "lm_head"}


@pytest.mark.parametrize("decoder", [d for _, d in FAMILIES])
def test_cached_steps_equal_full_forward(tiny, decoder):
    model = load_model(tiny("vit", decoder))
    ids = _ids(model.config.decoder.vocab_size)
    with torch.no_grad():
        full = model(pixel_values=PIXELS, decoder_input_ids=ids).logits
        cache = model.new_cache(model.encode(PIXELS), group=1, max_len=6)
        steps = [model.decode_step(ids[:, :3], cache)]
        steps += [model.decode_step(ids[:, t : t + 1], cache) for t in range(3, 6)]
    assert (torch.cat(steps, dim=1) - full).abs().max() < 1e-4


@pytest.mark.parametrize("embedding_size", [40, 16], ids=["same-width", "projected"])
def test_electra_embedding_projection(tiny, embedding_size):
    """embeddings_project exists only when the embeddings are narrower; either way the logits match."""
    folder = tiny("vit", "electra", decoder_over=dict(embedding_size=embedding_size))
    saved = load_file(folder / "model.safetensors")
    projected = embedding_size != 40
    assert ("decoder.electra.embeddings_project.weight" in saved) == projected
    model = load_model(folder)
    assert (model.decoder.embed_proj is not None) == projected
    assert model.decoder.head.weight.shape == (model.config.decoder.vocab_size, embedding_size)
    _assert_logits_match(folder)


@pytest.mark.parametrize("scale", [True, False])
def test_bart_embedding_scale(tiny, scale):
    folder = tiny("vit", "bart", decoder_over=dict(scale_embedding=scale))
    model = load_model(folder)
    assert model.config.decoder.embed_scale == (24**0.5 if scale else 1.0)
    _assert_logits_match(folder)


@pytest.mark.parametrize("decoder", ["bart", "mbart", "electra", "bert-generation", "xlm-roberta", "bert"])
def test_untied_heads(tiny, decoder):
    """With tie_word_embeddings false the head is saved on its own, and BERT-like heads read `decoder.bias`."""
    folder = tiny("vit", decoder, decoder_over=dict(tie_word_embeddings=False), seed=3)
    model = load_model(folder)
    assert model.decoder.head.weight.data_ptr() != model.decoder.embed.weight.data_ptr()
    _assert_logits_match(folder)


def test_mbart_forced_first_token_generates_like_reference(tiny, tmp_path):
    """Donut/mBART style: generation_config.json forces the first generated token (a task or language token)."""
    import shutil

    folder = tmp_path / "mbart"
    shutil.copytree(tiny("deit", "mbart"), folder)
    gen_path = folder / "generation_config.json"
    gen = json.loads(gen_path.read_text())
    forced = 57
    gen["forced_bos_token_id"] = forced
    gen_path.write_text(json.dumps(gen))
    ref, ours = reference(folder), load_model(folder)
    for options in (dict(max_new_tokens=6), dict(max_new_tokens=6, num_beams=3)):
        expected = ref.generate(PIXELS, **options)
        got = ours.generate(PIXELS, **options)
        assert torch.equal(got, expected), options
        assert (got[:, 1] == forced).all()
        assert all(gen["forced_eos_token_id"] in row for row in got.tolist())  # and </s> at the end at the latest


def test_relative_positions_are_refused():
    for kind in ("electra", "bert-generation"):
        with pytest.raises(ModelError, match="position_embedding_type 'relative_key'"):
            decoder_config({"model_type": kind, "position_embedding_type": "relative_key"})
