"""Text decoders. Each family module gives its config reader and weight table, and ends with the records
(vedcli/family.py) of the model_types it serves: found here. All share `stack.TextDecoder`."""

from __future__ import annotations

from ..checkpoints.weights import WeightTable
from ..config import DecoderConfig
from ..family import DecoderFamily, discover, read_config
from ..validate import ConfigFieldError, check_token_ids, show

# model_type in config.json -> its record, from every module here; RECORDS holds those `ved compose` converts too
RECORDS: dict[str, DecoderFamily] = discover(__name__, __path__)  # type: ignore[assignment]
FAMILIES: dict[str, DecoderFamily] = {kind: r for kind, r in RECORDS.items() if r.read is not None}


def decoder_config(d: dict, where: str | None = None, section: str = "decoder") -> DecoderConfig:
    """The DecoderConfig of a config section, every field checked (ConfigFieldError names `section.key`)."""
    cfg = read_config(FAMILIES, d, where, section)
    check_token_ids({"pad_token_id": cfg.pad_token_id}, cfg.vocab_size, where, section)
    if cfg.positions == "padded":  # RoBERTa counts positions from pad_token_id + 1 in its own table
        if cfg.pad_token_id is None or cfg.pad_token_id + 2 > cfg.max_positions:
            raise ConfigFieldError(
                f"{section}.pad_token_id {show(cfg.pad_token_id)} leaves no room in {section}.max_position_embeddings "
                f"{cfg.max_positions} ({d['model_type']} positions count from pad_token_id + 1)",
                where,
                "pad_token_id",
                section,
            )
    return cfg


def decoder_parameters(cfg: DecoderConfig) -> dict[str, int]:
    """About how many parameters the decoder has, by part: what the memory check counts before building it."""
    c, e, m, v = cfg.hidden_size, cfg.embedding_size, cfg.intermediate_size, cfg.vocab_size
    x = cfg.cross_attention_size or c
    layer = 4 * c * c + 2 * c * x + 2 * c * c + 2 * c * m + 13 * c + m  # self-attention, cross-attention, MLP, norms
    return {
        "decoder's token embeddings": v * e * (1 if cfg.tie_embeddings else 2),
        "decoder's position embeddings": (cfg.max_positions + cfg.position_offset) * e,
        "decoder's layers": cfg.num_layers * layer,
    }


def decoder_weights(cfg: DecoderConfig) -> WeightTable:
    return FAMILIES[cfg.family].weights(cfg)  # type: ignore[misc]
