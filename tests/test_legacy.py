"""Checkpoints as transformers 4.x wrote them (most published ones): every config attribute serialised in both
sub-configs, generation settings inside config.json and no generation_config.json, pickled weights with buffers."""

from __future__ import annotations

import json

import pytest
import torch

from checkpoints import natural_eos, reference, write_checkpoint
from vedcli.checkpoints.load import load_model

# What PretrainedConfig.to_dict() wrote into every (sub-)config under transformers 4.x.
V4_COMMON = dict(
    return_dict=True,
    output_hidden_states=False,
    output_attentions=False,
    torchscript=False,
    torch_dtype=None,
    use_bfloat16=False,
    tf_legacy_loss=False,
    pruned_heads={},
    chunk_size_feed_forward=0,
    is_encoder_decoder=False,
    cross_attention_hidden_size=None,
    tie_encoder_decoder=False,
    max_length=20,
    min_length=0,
    do_sample=False,
    early_stopping=False,
    num_beams=1,
    num_beam_groups=1,
    diversity_penalty=0.0,
    temperature=1.0,
    top_k=50,
    top_p=1.0,
    typical_p=1.0,
    repetition_penalty=1.0,
    length_penalty=1.0,
    no_repeat_ngram_size=0,
    encoder_no_repeat_ngram_size=0,
    bad_words_ids=None,
    num_return_sequences=1,
    output_scores=False,
    return_dict_in_generate=False,
    forced_bos_token_id=None,
    forced_eos_token_id=None,
    remove_invalid_values=False,
    exponential_decay_length_penalty=None,
    suppress_tokens=None,
    begin_suppress_tokens=None,
    finetuning_task=None,
    id2label={"0": "LABEL_0", "1": "LABEL_1"},
    label2id={"LABEL_0": 0, "LABEL_1": 1},
    tokenizer_class=None,
    prefix=None,
    sep_token_id=None,
    task_specific_params=None,
    problem_type=None,
    _name_or_path="",
)


def as_v4(folder, top_level_generation: dict) -> None:
    """Rewrite a transformers 5 checkpoint folder into the 4.x layout."""
    path = folder / "config.json"
    cfg = json.loads(path.read_text())
    cross = cfg["decoder"].get("cross_attention_hidden_size")
    for side in ("encoder", "decoder"):
        cfg[side] = {**V4_COMMON, **cfg[side]}
    cfg["decoder"]["cross_attention_hidden_size"] = cross
    cfg.pop("dtype", None)
    cfg.update(torch_dtype="float32", transformers_version="4.36.2", **top_level_generation)
    path.write_text(json.dumps(cfg, indent=2))
    (folder / "generation_config.json").unlink()


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
