"""BEiT and data2vec-vision encoders against the reference: features, bias tables, weight names, the zero key bias."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import transformers as T
from safetensors.torch import load_file, save_file
from transformers.models.beit.modeling_beit import BeitRelativePositionBias

from support.checkpoints import encoder_config as reference_encoder_config
from support.checkpoints import randomize, reference
from vedcli.checkpoints.load import load_model
from vedcli.checkpoints.weights import to_hf, to_ved
from vedcli.encoders import build_encoder, encoder_config, encoder_weights
from vedcli.encoders.beit import relative_index
from vedcli.errors import ModelError

# encoder kind -> the decoder it is paired with in conftest.EXTRA_PAIRS (so the checkpoints are written once)
KINDS = {"beit": "trocr", "beit-shared": "roberta", "data2vec-vision": "gpt2"}
# keys transformers saves that ved reads nothing from, per kind
UNUSED = {
    "beit": {"encoder.embeddings.mask_token"},
    "beit-shared": {"encoder.pooler.layernorm.weight", "encoder.pooler.layernorm.bias"},
    "data2vec-vision": set(),
}


def pixels(height: int = 32, width: int = 32, batch: int = 2, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, 3, height, width, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("size", [(32, 32), (48, 40), (24, 32)])
def test_features_match_reference(tiny, kind, size):
    """last_hidden_state as the reference's encoder gives it to the decoder, at the trained size and others (the
    reference resamples BEiT's position embeddings and bias tables whenever the size differs)."""
    folder = tiny(kind, KINDS[kind])
    ref, ours = reference(folder), load_model(folder)
    x = pixels(*size)
    with torch.no_grad():
        expected = ref.encoder(pixel_values=x).last_hidden_state
        got = ours.encoder.forward_features(x)
    assert got.shape == expected.shape
    assert (got - expected).abs().max() < 1e-4


@pytest.mark.parametrize("kind", KINDS)
def test_config_options_reach_the_model(tiny, kind):
    """Each variant switches what its config says (so the parity tests above cover every option)."""
    hf = json.loads((tiny(kind, KINDS[kind]) / "config.json").read_text())["encoder"]
    cfg = encoder_config(hf)
    assert hf["model_type"] == ("data2vec-vision" if kind == "data2vec-vision" else "beit")
    assert cfg.relative_bias == hf["use_relative_position_bias"]
    assert cfg.shared_relative_bias == hf["use_shared_relative_position_bias"]
    assert cfg.absolute_positions == hf["use_absolute_position_embeddings"]
    assert cfg.layer_scale == (hf["layer_scale_init_value"] > 0)
    assert cfg.final_norm == (not hf["use_mean_pooling"])


def test_variants_cover_every_option():
    options = ["use_relative_position_bias", "use_shared_relative_position_bias", "use_absolute_position_embeddings"]
    options += ["use_mean_pooling", "use_mask_token"]
    configs = [reference_encoder_config(kind).to_dict() for kind in KINDS]
    for option in options:
        assert {c[option] for c in configs} == {True, False}, option
    assert {c["layer_scale_init_value"] > 0 for c in configs} == {True, False}


@pytest.mark.parametrize("kind", KINDS)
def test_weight_names_round_trip(tiny, kind):
    """Writing back gives exactly the tensors transformers saved; only the known-unused keys are left out."""
    folder = tiny(kind, KINDS[kind])
    saved = {k: v for k, v in load_file(folder / "model.safetensors").items() if k.startswith("encoder.")}
    ours = {k: v for k, v in load_model(folder).hf_state_dict().items() if k.startswith("encoder.")}
    assert set(saved) - set(ours) == UNUSED[kind]
    assert set(ours) <= set(saved)
    for name, tensor in ours.items():
        assert torch.equal(tensor, saved[name]), name


def test_key_bias_is_zero_and_never_written(tiny):
    folder = tiny("beit", KINDS["beit"])
    model = load_model(folder)
    saved = load_file(folder / "model.safetensors")
    c = model.config.encoder.hidden_size
    for i, block in enumerate(model.encoder.blocks):
        q, k, v = block.self_attn.qkv.bias.detach().split(c)
        prefix = f"encoder.encoder.layer.{i}.attention.attention."
        assert torch.equal(k, torch.zeros(c))
        assert torch.equal(q, saved[prefix + "query.bias"]) and torch.equal(v, saved[prefix + "value.bias"])
    written = model.hf_state_dict()
    assert not [name for name in written if name.endswith("attention.attention.key.bias")]
    assert "encoder.encoder.layer.0.attention.attention.key.weight" in written


def test_a_saved_key_bias_is_reported_not_dropped(tiny, tmp_path):
    """The zero part is ved's own: a checkpoint that does hold a key bias does not match a BEiT config."""
    folder = _copy(tiny("beit", KINDS["beit"]), tmp_path)
    name = "encoder.encoder.layer.1.attention.attention.key.bias"
    _edit_weights(folder, lambda s: s.__setitem__(name, torch.ones(48)))
    with pytest.raises(ModelError, match=r"unexpected .*layer\.1\.attention\.attention\.key\.bias"):
        load_model(folder)


def test_older_checkpoints_with_index_buffers_load(tiny, tmp_path):
    """transformers 4 saved the relative position index buffers; they are recomputed, not read."""
    source = tiny("data2vec-vision", KINDS["data2vec-vision"])
    folder = _copy(source, tmp_path)

    def add_buffers(state):
        grid = 17
        state["encoder.encoder.relative_position_bias.relative_position_index"] = torch.zeros(grid, grid).long()
        for i in range(2):
            key = f"encoder.encoder.layer.{i}.attention.attention.relative_position_bias.relative_position_index"
            state[key] = torch.zeros(grid, grid).long()

    _edit_weights(folder, add_buffers)
    x = pixels()
    with torch.no_grad():
        assert torch.equal(load_model(folder).encode(x), load_model(source).encode(x))


@pytest.mark.parametrize("grid", [(1, 1), (2, 3), (4, 4), (5, 2)])
def test_relative_index_matches_reference(grid):
    expected = BeitRelativePositionBias.generate_relative_position_index(grid)
    assert torch.equal(relative_index(grid, torch.device("cpu")), expected)


@pytest.mark.parametrize("size", [(24, 40), (32, 32)])
def test_non_square_trained_grid_matches_reference(tmp_path, size):
    """A (3, 5) trained grid: the bias tables are read and resampled exactly as the reference does."""
    folder = _bare_encoder(tmp_path, "beit", image_size=[24, 40], use_absolute_position_embeddings=False)
    ref, ours = T.AutoModel.from_pretrained(folder).eval(), _load_bare(folder)
    x = pixels(*size)
    with torch.no_grad():
        expected = ref(pixel_values=x).last_hidden_state
        got = ours.forward_features(x)
    assert got.shape == expected.shape
    assert (got - expected).abs().max() < 1e-4


def test_non_square_position_embeddings_refuse_other_sizes(tmp_path):
    folder = _bare_encoder(tmp_path, "data2vec-vision", image_size=[24, 40])
    model = _load_bare(folder)
    with pytest.raises(ModelError, match="non-square grid"):
        model.forward_features(pixels(32, 32))


def _bare_encoder(tmp_path: Path, kind: str, **over) -> Path:
    """A BeitModel / Data2VecVisionModel alone, saved by transformers (the names match those under `encoder.`)."""
    model = T.AutoModel.from_config(reference_encoder_config(kind, **over))
    randomize(model, seed=3)
    model.save_pretrained(tmp_path / kind)
    return tmp_path / kind


def _load_bare(folder: Path):
    cfg = encoder_config(json.loads((folder / "config.json").read_text()))
    table = encoder_weights(cfg)
    model = build_encoder(cfg)
    shapes = {k: v.shape for k, v in model.state_dict().items()}
    state = load_file(folder / "model.safetensors")
    tensors = to_ved(state, table.expand(cfg.num_layers), table, shapes, str(folder))
    model.load_state_dict(tensors, strict=True)
    assert to_hf(model.state_dict(), table.expand(cfg.num_layers)).keys() <= state.keys()
    return model.eval()


def _copy(folder: Path, tmp_path: Path) -> Path:
    target = tmp_path / "ckpt"
    shutil.copytree(folder, target)
    return target


def _edit_weights(folder: Path, edit) -> None:
    state = load_file(folder / "model.safetensors")
    edit(state)
    save_file(state, folder / "model.safetensors", metadata={"format": "pt"})


def test_relative_index_made_under_inference_mode_serves_training_later():
    """The cached index table must not be an inference tensor: captioning and then training in one process (or one
    test run) would fail with "Inference tensors cannot be saved for backward"."""
    relative_index.cache_clear()
    with torch.inference_mode():
        relative_index((3, 3), torch.device("cpu"))
    table = torch.zeros(30, requires_grad=True)
    table[relative_index((3, 3), torch.device("cpu"))].sum().backward()
    assert table.grad is not None and table.grad.sum() == 100  # (3 * 3 + 1) ** 2 pairs, each one row of the table
