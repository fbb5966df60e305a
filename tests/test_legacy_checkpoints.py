"""Checkpoints as transformers 4.x wrote them (most published ones): every config attribute serialised in both
sub-configs, generation settings inside config.json and no generation_config.json, pickled weights with buffers."""

from __future__ import annotations

import pytest
import torch

from support.checkpoints import natural_eos, reference, write_checkpoint
from support.legacy import as_v4
from vedcli.checkpoints.load import load_model

# What PretrainedConfig.to_dict() wrote into every (sub-)config under transformers 4.x.


PIXELS = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(7))


@pytest.mark.parametrize(
    "encoder,decoder,generation",
    [
        ("vit", "gpt2", dict(max_length=12)),  # nlpconnect-style
        (
            "deit",
            "trocr",
            dict(max_length=10, num_beams=4, early_stopping=True, no_repeat_ngram_size=3, length_penalty=2.0),
        ),  # trocr-style
        ("vit", "bert", dict(num_beams=2, repetition_penalty=1.2)),
    ],
)
def test_transformers4_checkpoint_loads_and_generates_like_reference(tmp_path, encoder, decoder, generation):
    folder = write_checkpoint(tmp_path / "ckpt", encoder, decoder, safe=False)
    eos = natural_eos(folder, PIXELS)
    as_v4(folder, {**generation, "eos_token_id": eos})
    assert not (folder / "generation_config.json").exists()
    assert (folder / "pytorch_model.bin").exists()
    ref, ours = reference(folder), load_model(folder)
    ids = torch.randint(0, ours.config.decoder.vocab_size, (4, 5))
    with torch.no_grad():
        expected = ref(pixel_values=PIXELS, decoder_input_ids=ids).logits
        got = ours(pixel_values=PIXELS, decoder_input_ids=ids).logits
    assert (got - expected).abs().max() < 1e-4
    # the defaults come from config.json, as the reference reads them
    assert torch.equal(ours.generate(PIXELS), ref.generate(PIXELS))
    assert ours.generation_config.num_beams == generation.get("num_beams", ours.generation_config.num_beams)
