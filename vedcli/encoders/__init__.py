"""Image encoders. Each family module gives `config_from_hf`, a module with `forward_features(pixels) -> (B, N, C)`
and its weight table."""

from __future__ import annotations

from torch import nn

from ..checkpoints.weights import WeightTable
from ..config import EncoderConfig, resolve_aliases
from ..errors import ModelError
from ..validate import ConfigFieldError, show
from . import beit, swin, vit

# model_type in config.json -> family module
FAMILIES = {"vit": vit, "deit": vit, "beit": beit, "data2vec-vision": beit, "swin": swin, "donut-swin": swin}
MODULES = {"vit": vit.ViTEncoder, "beit": beit.BeitEncoder, "swin": swin.SwinEncoder}


def encoder_config(d: dict, where: str | None = None, section: str = "encoder") -> EncoderConfig:
    """The EncoderConfig of a config section, every field checked (ConfigFieldError names `section.key`)."""
    if not isinstance(d, dict):
        raise ConfigFieldError(f"{section} must be a JSON object, got {show(d)}", where, "", section)
    kind = d.get("model_type")
    if kind not in FAMILIES:
        raise ModelError(f"unsupported {section} model_type '{kind}' (supported: {', '.join(sorted(FAMILIES))})",
                         where)  # fmt: skip
    return FAMILIES[kind].config_from_hf(resolve_aliases(d), where, section)


def encoder_parameters(cfg: EncoderConfig) -> dict[str, int]:
    """About how many parameters the encoder has, by part: what the memory check counts before building it."""
    c, m = cfg.hidden_size, cfg.intermediate_size
    tokens = cfg.num_prefix_tokens + cfg.num_patches
    return {
        "encoder's patch embedding": c * cfg.num_channels * cfg.patch_size[0] * cfg.patch_size[1],
        "encoder's position embeddings": tokens * c,
        "encoder's layers": cfg.num_layers * (4 * c * c + 2 * c * m + 9 * c + m),
    }


def build_encoder(cfg: EncoderConfig) -> nn.Module:
    return MODULES[cfg.family](cfg)


def encoder_weights(cfg: EncoderConfig) -> WeightTable:
    return FAMILIES[cfg.hf.get("model_type", cfg.family)].weight_table(cfg)


def encoder_reference_only(cfg: EncoderConfig) -> dict[str, tuple[int, ...]]:
    """HF names and shapes of tensors the reference's encoder has and ved does not use (empty for most)."""
    family = FAMILIES[cfg.hf.get("model_type", cfg.family)]
    return family.reference_only(cfg) if hasattr(family, "reference_only") else {}
