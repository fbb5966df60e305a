"""Swin and Donut-Swin encoders against the reference (SwinModel / DonutSwinModel) on tiny random weights.

Every variant is saved by transformers and loaded through ved's weight table; its image sizes are chosen so that
patch padding, window padding, shifted windows, an unshifted one-window stage, odd-sized patch merging, non-square
images, absolute positions and qkv without bias all occur (`test_variants_cover_every_geometry` checks that they do).
The pairings with decoders (swin + bart, donut-swin + mbart) run in test_model.py / test_generate_parity.py.
"""

from __future__ import annotations

import copy

import pytest
import torch
import transformers as T
from safetensors.torch import load_file

from support.checkpoints import randomize, reference
from vedcli.checkpoints.load import load_model
from vedcli.checkpoints.weights import to_hf, to_ved
from vedcli.encoders import build_encoder, encoder_config, encoder_weights, swin
from vedcli.errors import ModelError

# name -> (model_type, config overrides, image sizes (height, width) to compare at)
VARIANTS = {
    # 32 px / patch 3 pads to 11x11 patches, window 6 pads to 12x12 and shifts; merging pads 11 to 12; stage 2 (6x6)
    # is one unshifted window. 40x33 and 33x52: non-square, padded on one side only.
    "swin": (
        "swin",
        dict(
            image_size=32,
            patch_size=3,
            embed_dim=24,
            depths=[2, 2],
            num_heads=[2, 4],
            window_size=6,
            mlp_ratio=2.5,
            layer_norm_eps=1e-6,
        ),
        [(32, 32), (40, 33), (33, 52)],
    ),
    # Absolute positions trained on a square grid (8x8) are resampled at other sizes, as with interpolate_pos_encoding.
    "swin-absolute": (
        "swin",
        dict(
            image_size=32,
            patch_size=4,
            embed_dim=24,
            depths=[2, 2],
            num_heads=[3, 3],
            window_size=4,
            use_absolute_embeddings=True,
            layer_norm_eps=1e-6,
        ),
        [(32, 32), (48, 40)],
    ),
    # Positions trained on a non-square grid only fit that size; no qkv bias; tanh GELU; window 3 pads 10 cols to 12.
    "swin-absolute-oblong": (
        "swin",
        dict(
            image_size=[24, 40],
            patch_size=4,
            embed_dim=20,
            depths=[2, 2],
            num_heads=[2, 5],
            window_size=3,
            use_absolute_embeddings=True,
            qkv_bias=False,
            hidden_act="gelu_new",
            layer_norm_eps=1e-4,
        ),
        [(24, 40)],
    ),
    # Both stages shifted and padded (as in Donut's large pages); no final LayerNorm.
    "donut-swin": (
        "donut-swin",
        dict(image_size=32, patch_size=4, embed_dim=28, depths=[2, 2], num_heads=[2, 4], window_size=3),
        [(32, 32), (36, 50), (40, 30)],
    ),
    # Three stages, odd depth, merging of odd maps on both axes; the last stage is exactly one window wide.
    "donut-swin-3": (
        "donut-swin",
        dict(
            image_size=[64, 48],
            patch_size=4,
            embed_dim=16,
            depths=[2, 3, 2],
            num_heads=[2, 2, 4],
            window_size=3,
            mlp_ratio=3.0,
        ),
        [(64, 48), (70, 45)],
    ),
}


@pytest.fixture(scope="module")
def encoders(tmp_path_factory):
    """encoders(variant) -> (reference model, ved encoder, saved HF tensors), made once per module."""
    made = {}

    def make(name: str):
        if name not in made:
            kind, over, _ = VARIANTS[name]
            if kind == "swin":
                ref = T.SwinModel(T.SwinConfig(**over))
            else:
                ref = T.DonutSwinModel(T.DonutSwinConfig(**over))
            randomize(ref.eval(), seed=len(made))
            folder = tmp_path_factory.mktemp(name)
            ref.save_pretrained(folder)
            saved = load_file(folder / "model.safetensors")
            made[name] = ref, load_encoder(ref.config.to_dict(), saved), saved
        return made[name]

    return make


def load_encoder(hf_config: dict, state: dict) -> torch.nn.Module:
    """ved's encoder for an HF encoder config, loaded strictly through its weight table."""
    cfg = encoder_config(hf_config)
    model = build_encoder(cfg).eval()
    table = encoder_weights(cfg)
    shapes = {k: v.shape for k, v in model.state_dict().items()}
    model.load_state_dict(to_ved(state, table.expand(cfg.num_layers), table, shapes, "test"), strict=True)
    return model


def pixels(size: tuple[int, int], batch: int = 2) -> torch.Tensor:
    return torch.randn(batch, 3, *size, generator=torch.Generator().manual_seed(size[0] * 100 + size[1]))


def run_reference(ref, x: torch.Tensor, interpolate: bool = False) -> torch.Tensor:
    # A copy per call: the reference's layers keep the window/shift they clamped for the last image size they saw.
    with torch.no_grad():
        return copy.deepcopy(ref)(pixel_values=x, interpolate_pos_encoding=interpolate).last_hidden_state


def trained_size(ref) -> tuple[int, int]:
    size = ref.config.image_size
    return tuple(size) if isinstance(size, (list, tuple)) else (size, size)


CASES = [(name, size) for name, (_, _, sizes) in VARIANTS.items() for size in sizes]


@pytest.mark.parametrize("name,size", CASES, ids=[f"{n}-{h}x{w}" for n, (h, w) in CASES])
def test_features_match_reference(encoders, name, size):
    ref, ours, _ = encoders(name)
    x = pixels(size)
    expected = run_reference(ref, x, interpolate=size != trained_size(ref))  # ved resamples positions by itself
    with torch.no_grad():
        got = ours.forward_features(x)
    assert got.shape == expected.shape
    assert got.shape[-1] == ours.cfg.hidden_size == ref.config.hidden_size
    assert (got - expected).abs().max() < 1e-4


def test_variants_cover_every_geometry(encoders, monkeypatch):
    """The sizes above exercise each branch: a failure here means a variant stopped testing what it claims."""
    plans, merged = [], []
    plan, merge = swin.Windows.plan.__func__, swin.PatchMerging.forward

    def spy_plan(cls, height, width, window, dtype, device):
        plans.append(((height, width), plan(cls, height, width, window, dtype, device)))
        return plans[-1][1]

    def spy_merge(self, x, grid):
        merged.append(grid)
        return merge(self, x, grid)

    monkeypatch.setattr(swin.Windows, "plan", classmethod(spy_plan))
    monkeypatch.setattr(swin.PatchMerging, "forward", spy_merge)
    patch_padded = False
    for name, size in CASES:
        _, ours, _ = encoders(name)
        patch = ours.cfg.patch_size
        patch_padded |= size[0] % patch[0] != 0 or size[1] % patch[1] != 0
        with torch.no_grad():
            ours.forward_features(pixels(size, batch=1))
    assert patch_padded
    assert any(p.shift and p.pad != (0, 0) for _, p in plans)  # shifted windows over a padded map
    assert any(p.shift and p.pad == (0, 0) for _, p in plans)
    assert any(not p.shift and min(grid) == p.size for grid, p in plans)  # one window high or wide: no shift
    assert any(grid[0] != grid[1] for grid, _ in plans)
    assert any(h % 2 and w % 2 for h, w in merged) and any(h % 2 != w % 2 for h, w in merged)  # odd maps merged


def test_feature_map_smaller_than_window_is_refused_like_the_reference(encoders):
    """Below the window size the reference shrinks the window but not its bias table, and fails; ved says why."""
    ref, ours, _ = encoders("swin")
    x = pixels((16, 16))  # 6x6 patches, then 3x3 < window 6
    with pytest.raises(RuntimeError):
        run_reference(ref, x)
    with pytest.raises(ModelError, match=r"3x3 Swin feature map, smaller than its 6x6 window"):
        ours.forward_features(x)


def test_positions_trained_on_an_oblong_grid_only_fit_their_size(encoders):
    ref, ours, _ = encoders("swin-absolute-oblong")
    x = pixels((28, 40))
    for interpolate in (False, True):
        with pytest.raises(RuntimeError):
            run_reference(ref, x, interpolate)
    with pytest.raises(ModelError, match=r"cannot resize position embeddings trained for a non-square grid \(6, 10\)"):
        ours.forward_features(x)


def test_composite_resamples_positions_unless_told_not_to(tiny):
    """In the encoder-decoder, as for ViT: other sizes resample, interpolate_pos_encoding=False refuses them."""
    over = dict(patch_size=4, window_size=4, use_absolute_embeddings=True)
    folder = tiny("swin", "bart", encoder_over=over)
    ref, ours = reference(folder), load_model(folder)
    x = pixels((48, 40))
    ids = torch.randint(0, ours.config.decoder.vocab_size, (2, 5), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = ref(pixel_values=x, decoder_input_ids=ids, interpolate_pos_encoding=True).logits
        got = ours(pixel_values=x, decoder_input_ids=ids).logits
        same_size = ours(pixel_values=pixels((32, 32)), decoder_input_ids=ids, interpolate_pos_encoding=False).logits
    assert (got - expected).abs().max() < 1e-4
    assert same_size.shape == got.shape
    with pytest.raises(ModelError, match=r"image size \(48, 40\) does not match the encoder's \(32, 32\)"):
        ours(pixel_values=x, decoder_input_ids=ids, interpolate_pos_encoding=False)


def test_donut_absolute_positions_are_refused_like_the_reference():
    cfg = T.DonutSwinConfig(
        image_size=16, patch_size=4, embed_dim=8, depths=[2], num_heads=[2], window_size=2, use_absolute_embeddings=True
    )
    with pytest.raises(RuntimeError):
        T.DonutSwinModel(cfg).eval()(pixel_values=pixels((16, 16)))
    with pytest.raises(ModelError, match="donut-swin with use_absolute_embeddings"):
        encoder_config(cfg.to_dict())


def test_config_sizes_match_reference(encoders):
    for name in VARIANTS:
        ref, ours, _ = encoders(name)
        assert ours.cfg.hidden_size == ref.config.hidden_size == ref.num_features
        assert ours.cfg.num_layers == sum(ref.config.depths)
        assert (ours.norm is not None) == isinstance(ref, T.SwinModel)


@pytest.mark.parametrize("name", list(VARIANTS))
def test_weight_table_round_trip(encoders, name):
    """ved's tensors map back to exactly what transformers saved (less the derived relative_position_index)."""
    _, ours, saved = encoders(name)
    table = encoder_weights(ours.cfg)
    back = to_hf(ours.state_dict(), table.expand(ours.cfg.num_layers))
    derived = {k for k in saved if k.endswith("relative_position_index")}
    assert bool(derived) == (name.startswith("donut"))  # DonutSwinModel saves the index; SwinModel no longer does
    assert set(back) == set(saved) - derived
    for key, tensor in back.items():
        assert torch.equal(tensor, saved[key]), key


def test_legacy_swin_checkpoint_with_index_buffers_loads(encoders):
    """transformers 4 saved Swin's relative_position_index too: it is recognised and ignored."""
    ref, ours, saved = encoders("swin")
    legacy = dict(saved)
    legacy["encoder.layers.1.blocks.0.attention.self.relative_position_index"] = torch.zeros(36, 36, dtype=torch.long)
    reloaded = load_encoder(ref.config.to_dict(), legacy)
    for (key, a), b in zip(ours.state_dict().items(), reloaded.state_dict().values(), strict=True):
        assert torch.equal(a, b), key
    legacy["encoder.layers.1.blocks.0.attention.self.extra"] = torch.zeros(1)
    with pytest.raises(ModelError, match=r"unexpected encoder\.layers\.1\.blocks\.0\.attention\.self\.extra"):
        load_encoder(ref.config.to_dict(), legacy)


@pytest.mark.parametrize("encoder,decoder", [("swin", "bart"), ("donut-swin", "mbart")])
def test_composite_saved_names_round_trip(tiny, encoder, decoder):
    """Inside a VisionEncoderDecoder the encoder's names are the saved ones under `encoder.`."""
    folder = tiny(encoder, decoder)
    saved = {k: v for k, v in load_file(folder / "model.safetensors").items() if k.startswith("encoder.")}
    ours = {k: v for k, v in load_model(folder).hf_state_dict().items() if k.startswith("encoder.")}
    assert set(ours) == {k for k in saved if not k.endswith("relative_position_index")}
    for key, tensor in ours.items():
        assert torch.equal(tensor, saved[key]), key


@pytest.mark.cuda
@pytest.mark.parametrize("name", ["swin", "donut-swin"])
def test_cuda_matches_reference(encoders, name):
    ref, ours, _ = encoders(name)
    x = pixels(VARIANTS[name][2][1])
    expected = run_reference(ref, x)
    gpu = copy.deepcopy(ours).cuda()
    with torch.no_grad():
        got = gpu.forward_features(x.cuda()).cpu()
    assert (got - expected).abs().max() < 1e-3 * max(1.0, expected.abs().max().item())


@pytest.mark.parametrize("encoder,decoder", [("swin", "bart"), ("donut-swin", "mbart")])
def test_bfloat16_stays_close(tiny, encoder, decoder):
    """Masks and bias tables follow the model's dtype (SDPA and the eager path both need them to match)."""
    folder = tiny(encoder, decoder)
    full, half = load_model(folder), load_model(folder, dtype="bf16")
    x = pixels((32, 32))
    with torch.no_grad():
        a = full.encode(x)
        b = half.encode(x).float()
    assert torch.isfinite(b).all()
    assert (a - b).abs().max() < 0.05 * a.abs().max()
