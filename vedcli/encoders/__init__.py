"""Image encoders. Each family module gives `config_from_hf`, a module with `forward_features(pixels) -> (B, N, C)`
and its weight table."""

from __future__ import annotations

from torch import nn

from ..config import EncoderConfig
from ..errors import ModelError
from ..weights import WeightTable
from . import beit, swin, vit

# model_type in config.json -> family module
FAMILIES = {"vit": vit, "deit": vit, "beit": beit, "data2vec-vision": beit, "swin": swin, "donut-swin": swin}
MODULES = {"vit": vit.ViTEncoder, "beit": beit.BeitEncoder, "swin": swin.SwinEncoder}


def encoder_config(d: dict, where: str | None = None) -> EncoderConfig:
    kind = d.get("model_type")
    if kind not in FAMILIES:
        raise ModelError(f"unsupported encoder model_type '{kind}' (supported: {', '.join(sorted(FAMILIES))})", where)
    return FAMILIES[kind].config_from_hf(d)


def build_encoder(cfg: EncoderConfig) -> nn.Module:
    return MODULES[cfg.family](cfg)


def encoder_weights(cfg: EncoderConfig) -> WeightTable:
    return FAMILIES[cfg.hf.get("model_type", cfg.family)].weight_table(cfg)


def encoder_reference_only(cfg: EncoderConfig) -> dict[str, tuple[int, ...]]:
    """HF names and shapes of tensors the reference's encoder has and ved does not use (empty for most)."""
    family = FAMILIES[cfg.hf.get("model_type", cfg.family)]
    return family.reference_only(cfg) if hasattr(family, "reference_only") else {}
