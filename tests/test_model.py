"""ved's model against the reference on tiny random checkpoints: logits, loss, cache, loading."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from conftest import PAIRS
from support.checkpoints import reference
from vedcli.checkpoints.load import load_model
from vedcli.errors import ModelError
from vedcli.layers import attention


def inputs(vocab: int, batch: int = 2, length: int = 7, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    pixels = torch.randn(batch, 3, 32, 32, generator=g)
    ids = torch.randint(0, vocab, (batch, length), generator=g)
    return pixels, ids


@pytest.mark.parametrize("encoder,decoder", PAIRS)
def test_logits_and_loss_match_reference(tiny, encoder, decoder):
    folder = tiny(encoder, decoder)
    ref, ours = reference(folder), load_model(folder)
    pixels, ids = inputs(ours.config.decoder.vocab_size)
    labels = ids.clone()
    labels[0, 4:] = -100  # padded label positions are ignored
    with torch.no_grad():
        expected = ref(pixel_values=pixels, decoder_input_ids=ids)
        got = ours(pixel_values=pixels, decoder_input_ids=ids)
        expected_loss = ref(pixel_values=pixels, labels=labels).loss
        got_loss = ours(pixel_values=pixels, labels=labels).loss
    assert got.logits.shape == expected.logits.shape
    assert (got.logits - expected.logits).abs().max() < 1e-4
    assert abs(got_loss.item() - expected_loss.item()) < 1e-5


@pytest.mark.parametrize("decoder", ["gpt2", "bert", "roberta", "trocr", "trocr-sinusoidal"])
def test_cached_steps_equal_full_forward(tiny, decoder):
    model = load_model(tiny("vit", decoder))
    pixels, ids = inputs(model.config.decoder.vocab_size, batch=3, length=6)
    with torch.no_grad():
        full = model(pixel_values=pixels, decoder_input_ids=ids).logits
        cache = model.new_cache(model.encode(pixels), group=1, max_len=6)
        steps = [model.decode_step(ids[:, :2], cache)] + [
            model.decode_step(ids[:, t : t + 1], cache) for t in range(2, 6)
        ]
    assert cache.pos == 6
    assert (torch.cat(steps, dim=1) - full).abs().max() < 1e-4


def test_group_shares_image_features_without_copies(tiny):
    """Rows of one image (beams) read one cross-attention entry; results equal per-row expanded features."""
    model = load_model(tiny("deit", "trocr"))
    pixels, _ = inputs(model.config.decoder.vocab_size, batch=2)
    group = 3
    ids = torch.randint(0, model.config.decoder.vocab_size, (2 * group, 4))
    with torch.no_grad():
        encoded = model.encode(pixels)
        cache = model.new_cache(encoded, group=group, max_len=4)
        assert cache.cross[0][0].shape[0] == 2  # one entry per image, not per row
        grouped = torch.cat([model.decode_step(ids[:, t : t + 1], cache) for t in range(4)], dim=1)
        expanded = model(encoder_outputs=encoded.repeat_interleave(group, 0), decoder_input_ids=ids).logits
    assert (grouped - expanded).abs().max() < 1e-4


def test_reorder_moves_cache_rows(tiny):
    model = load_model(tiny("vit", "gpt2"))
    pixels, _ = inputs(model.config.decoder.vocab_size, batch=1)
    ids = torch.randint(0, model.config.decoder.vocab_size, (2, 3))
    with torch.no_grad():
        cache = model.new_cache(model.encode(pixels), group=2, max_len=3)
        model.decode_step(ids[:, :2], cache)
        cache.reorder(torch.tensor([1, 1]))
        last = model.decode_step(ids[:, 2:], cache)
        swapped = torch.stack([ids[1], ids[1]])
        swapped[:, 2] = ids[:, 2]
        expected = model(encoder_outputs=model.encode(pixels).expand(2, -1, -1), decoder_input_ids=swapped).logits
    assert (last[:, 0] - expected[:, 2]).abs().max() < 1e-4


LAYOUTS = [dict(safe=False), dict(max_shard_size="20KB"), dict(safe=False, max_shard_size="20KB")]


@pytest.mark.parametrize("decoder,layout", [("bert", lay) for lay in LAYOUTS] + [("gpt2", dict(safe=False))])
def test_every_weight_layout_loads(tiny, decoder, layout):
    """pytorch_model.bin (with GPT-2's legacy buffers and tied head), shards of either kind: same tensors."""
    folder = tiny("vit", decoder, **layout)
    names = {p.name for p in folder.iterdir()}
    if not layout.get("safe", True):
        assert any(n.startswith("pytorch_model") for n in names)
    if "max_shard_size" in layout:
        assert any(n.endswith(".index.json") for n in names)
    baseline = load_model(tiny("vit", decoder))
    model = load_model(folder)
    for (name, a), b in zip(baseline.state_dict().items(), model.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_saved_names_round_trip(tiny):
    """The weight table maps back to exactly the names and tensors transformers saved."""
    for encoder, decoder in [("vit", "gpt2"), ("deit", "roberta"), ("vit", "trocr")]:
        folder = tiny(encoder, decoder)
        saved = load_file(folder / "model.safetensors")
        ours = load_model(folder).hf_state_dict()
        tied = {
            "decoder.lm_head.weight",
            "decoder.cls.predictions.decoder.weight",
            "decoder.lm_head.decoder.weight",
            "decoder.output_projection.weight",
        }
        assert set(ours) - tied <= set(saved)
        for name, tensor in ours.items():
            if name in saved:
                assert torch.equal(tensor, saved[name]), name


def _copy(folder, tmp_path):
    target = tmp_path / "ckpt"
    shutil.copytree(folder, target)
    return target


def _edit_weights(folder, edit):
    state = load_file(folder / "model.safetensors")
    edit(state)
    save_file(state, folder / "model.safetensors", metadata={"format": "pt"})


def test_missing_key_is_one_clear_error(tiny, tmp_path):
    folder = _copy(tiny("vit", "gpt2"), tmp_path)
    _edit_weights(folder, lambda s: s.pop("decoder.transformer.h.1.ln_2.weight"))
    with pytest.raises(ModelError, match=r"missing decoder\.transformer\.h\.1\.ln_2\.weight"):
        load_model(folder)


def test_unexpected_key_and_wrong_shape_are_reported(tiny, tmp_path):
    folder = _copy(tiny("vit", "gpt2"), tmp_path)

    def edit(state):
        state["decoder.transformer.h.0.extra.weight"] = torch.zeros(3)
        state["encoder.layernorm.bias"] = torch.zeros(5)

    _edit_weights(folder, edit)
    with pytest.raises(ModelError) as err:
        load_model(folder)
    message = str(err.value)
    assert "unexpected decoder.transformer.h.0.extra.weight" in message
    assert "wrong shape encoder.layernorm.bias (5,) != (48,)" in message
    assert "\n" not in message


def test_known_buffers_and_legacy_names_are_accepted(tiny, tmp_path):
    folder = _copy(tiny("vit", "gpt2"), tmp_path)

    def edit(state):
        state["decoder.transformer.h.0.attn.bias"] = torch.ones(1, 1, 4, 4)  # GPT-2 causal mask buffer
        state["decoder.transformer.h.0.attn.masked_bias"] = torch.tensor(-1e4)
        state["encoder.layernorm.gamma"] = state.pop("encoder.layernorm.weight")  # TF-era LayerNorm names
        state["encoder.layernorm.beta"] = state.pop("encoder.layernorm.bias")

    _edit_weights(folder, edit)
    pixels, ids = inputs(load_model(tiny("vit", "gpt2")).config.decoder.vocab_size)
    with torch.no_grad():
        a = load_model(folder)(pixel_values=pixels, decoder_input_ids=ids).logits
        b = reference(tiny("vit", "gpt2"))(pixel_values=pixels, decoder_input_ids=ids).logits
    assert (a - b).abs().max() < 1e-4


def test_unsupported_architecture_lists_supported(tiny, tmp_path):
    folder = _copy(tiny("vit", "gpt2"), tmp_path)
    cfg = json.loads((folder / "config.json").read_text())
    cfg["decoder"]["model_type"] = "llama"
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelError, match=r"unsupported decoder model_type 'llama' \(supported: .*gpt2.*trocr"):
        load_model(folder)


@pytest.mark.parametrize("dtype", ["bf16", "fp16"])
def test_half_precision_stays_close(tiny, dtype):
    folder = tiny("vit", "trocr")
    full, half = load_model(folder), load_model(folder, dtype=dtype)
    assert half.dtype == {"bf16": torch.bfloat16, "fp16": torch.float16}[dtype]
    pixels, ids = inputs(full.config.decoder.vocab_size)
    with torch.no_grad():
        a = full(pixel_values=pixels, decoder_input_ids=ids).logits
        b = half(pixel_values=pixels, decoder_input_ids=ids).logits.float()
    assert torch.isfinite(b).all()
    assert (a - b).abs().max() < 0.1 * a.abs().max()


@pytest.mark.cuda
def test_cuda_matches_cpu(tiny):
    folder = tiny("vit", "gpt2")
    cpu, gpu = load_model(folder, device="cpu"), load_model(folder, device="cuda")
    pixels, ids = inputs(cpu.config.decoder.vocab_size)
    with torch.no_grad():
        a = cpu(pixel_values=pixels, decoder_input_ids=ids).logits
        b = gpu(pixel_values=pixels.cuda(), decoder_input_ids=ids.cuda()).logits.cpu()
    assert (a - b).abs().max() < 1e-3


@pytest.mark.parametrize("encoder", ["vit", "deit"])
@pytest.mark.parametrize("size", [(48, 48), (24, 40)])
def test_other_image_sizes_interpolate_positions_like_reference(tiny, encoder, size):
    folder = tiny(encoder, "trocr")
    ref, ours = reference(folder), load_model(folder)
    pixels = torch.randn(2, 3, *size, generator=torch.Generator().manual_seed(3))
    ids = torch.randint(0, ours.config.decoder.vocab_size, (2, 5))
    with torch.no_grad():
        expected = ref(pixel_values=pixels, decoder_input_ids=ids, interpolate_pos_encoding=True).logits
        got = ours(pixel_values=pixels, decoder_input_ids=ids).logits
        got_explicit = ours(pixel_values=pixels, decoder_input_ids=ids, interpolate_pos_encoding=True).logits
    assert (got - expected).abs().max() < 1e-4
    assert torch.equal(got, got_explicit)
    assert torch.equal(
        ours.generate(pixels, max_new_tokens=6, num_beams=2),
        ref.generate(pixels, max_new_tokens=6, num_beams=2, interpolate_pos_encoding=True),
    )
    with pytest.raises(ModelError, match=r"image size \(\d+, \d+\) does not match the encoder's \(32, 32\)"):
        ours(pixel_values=pixels, decoder_input_ids=ids, interpolate_pos_encoding=False)


@pytest.mark.parametrize("decoder", ["gpt2", "bert", "trocr"])
def test_dropout_is_active_in_training_only(tiny, decoder):
    model = load_model(tiny("vit", decoder))
    cfg = model.config.decoder
    assert cfg.dropout > 0 and cfg.dropout == cfg.hf.get(
        "resid_pdrop", cfg.hf.get("hidden_dropout_prob", cfg.hf.get("dropout"))
    )
    pixels, ids = inputs(cfg.vocab_size)
    model.train()
    a = model(pixel_values=pixels, decoder_input_ids=ids).logits
    b = model(pixel_values=pixels, decoder_input_ids=ids).logits
    assert not torch.equal(a, b)
    model.eval()
    with torch.no_grad():
        assert torch.equal(
            model(pixel_values=pixels, decoder_input_ids=ids).logits,
            model(pixel_values=pixels, decoder_input_ids=ids).logits,
        )


def test_training_mode_without_dropout_matches_reference(tiny, tmp_path):
    folder = _copy(tiny("vit", "bert"), tmp_path)
    cfg = json.loads((folder / "config.json").read_text())
    cfg["decoder"].update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    (folder / "config.json").write_text(json.dumps(cfg))
    ref, ours = reference(folder).train(), load_model(folder).train()
    pixels, ids = inputs(ours.config.decoder.vocab_size)
    expected = ref(pixel_values=pixels, labels=ids)
    got = ours(pixel_values=pixels, labels=ids)
    assert abs(got.loss.item() - expected.loss.item()) < 1e-5
    got.loss.backward()
    expected.loss.backward()
    assert torch.allclose(
        ours.decoder.head_dense.weight.grad, ref.decoder.cls.predictions.transform.dense.weight.grad, atol=1e-5
    )


@pytest.mark.parametrize("encoder", ["beit", "swin"])
def test_stochastic_depth_in_training_only(tiny, encoder):
    """BEiT and Swin drop whole residual branches per sample in training (drop_path_rate, rising over the blocks)."""
    model = load_model(tiny(encoder, "trocr"))
    assert model.config.encoder.drop_path == model.config.encoder.hf.get("drop_path_rate", 0.1) > 0
    pixels, _ = inputs(model.config.decoder.vocab_size, batch=4)
    model.encoder.train()
    a, b = model.encoder.forward_features(pixels), model.encoder.forward_features(pixels)
    assert not torch.equal(a, b)
    model.encoder.eval()
    with torch.no_grad():
        assert torch.equal(model.encoder.forward_features(pixels), model.encoder.forward_features(pixels))


@pytest.mark.parametrize("mask_kind", [None, "causal", "padded", "bias"])
def test_cpu_training_attention_matches_the_fused_kernel(mask_kind):
    """Training on a CPU runs attention as matmuls (layers.attention): same values and gradients as the fused kernel."""
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, t, 8, generator=gen) for t in (7, 9, 9))
    mask = {
        None: None,
        "causal": torch.ones(7, 9, dtype=torch.bool).tril(2)[None, None],
        "padded": torch.tensor([[1] * 9, [1] * 5 + [0] * 4], dtype=torch.bool)[:, None, None, :],
        "bias": torch.randn(1, 3, 7, 9, generator=gen),
    }[mask_kind]
    grad = torch.randn(2, 3, 7, 8, generator=gen)
    results = []
    for fused in (False, True):
        leaves = [t.clone().requires_grad_() for t in (q, k, v)]
        if fused:
            out = F.scaled_dot_product_attention(*leaves, attn_mask=mask, scale=0.3)
        else:
            out = attention(*leaves, 0.3, mask)
        out.backward(grad)
        results.append([out.detach(), *(t.grad for t in leaves)])
    for ours, fused in zip(*results, strict=True):
        torch.testing.assert_close(ours, fused, rtol=1e-5, atol=1e-5)
