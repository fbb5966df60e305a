"""Image encoders. Each family module gives its config reader, a module with `forward_features(pixels) -> (B, N, C)`
and its weight table, and ends with the records (vedcli/family.py) of the model_types it serves: found here."""

from __future__ import annotations

from torch import nn

from ..checkpoints.weights import WeightTable
from ..config import EncoderConfig
from ..family import EncoderFamily, discover, read_config

# model_type in config.json -> its record, from every module here
FAMILIES: dict[str, EncoderFamily] = discover(__name__, __path__)  # type: ignore[assignment]


def encoder_config(d: dict, where: str | None = None, section: str = "encoder") -> EncoderConfig:
    """The EncoderConfig of a config section, every field checked (ConfigFieldError names `section.key`)."""
    return read_config(FAMILIES, d, where, section)


def encoder_parameters(cfg: EncoderConfig) -> dict[str, int]:
    """About how many parameters the encoder has, by part: what the memory check counts before building it."""
    c, m = cfg.hidden_size, cfg.intermediate_size
    tokens = cfg.num_prefix_tokens + cfg.num_patches
    return {
        "encoder's patch embedding": c * cfg.num_channels * cfg.patch_size[0] * cfg.patch_size[1],
        "encoder's position embeddings": tokens * c,
        "encoder's layers": cfg.num_layers * (4 * c * c + 2 * c * m + 9 * c + m),
    }


def encoder_family(cfg: EncoderConfig) -> EncoderFamily:
    """The record of the model_type `cfg` was read from."""
    return FAMILIES[cfg.hf.get("model_type", cfg.family)]


def build_encoder(cfg: EncoderConfig) -> nn.Module:
    return encoder_family(cfg).module(cfg)


def encoder_weights(cfg: EncoderConfig) -> WeightTable:
    return encoder_family(cfg).weights(cfg)  # type: ignore[misc]


def encoder_reference_only(cfg: EncoderConfig) -> dict[str, tuple[int, ...]]:
    """HF names and shapes of tensors the reference's encoder has and ved does not use (empty for most)."""
    return encoder_family(cfg).reference_only(cfg)
