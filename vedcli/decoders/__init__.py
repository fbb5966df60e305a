"""Text decoders. Each family module gives `config_from_hf` and its weight table; all share `stack.TextDecoder`."""

from __future__ import annotations

from ..checkpoints.weights import WeightTable
from ..config import DecoderConfig, resolve_aliases
from ..errors import ModelError
from ..validate import ConfigFieldError, check_token_ids, show
from . import bart, bert, bert_generation, electra, gpt2, trocr

# model_type in config.json -> family module
FAMILIES = {
    "gpt2": gpt2,
    "bert": bert,
    "roberta": bert,
    "xlm-roberta": bert,
    "camembert": bert,
    "trocr": trocr,
    "bart": bart,
    "mbart": bart,
    "electra": electra,
    "bert-generation": bert_generation,
}
# DecoderConfig.family -> module with its weight table
TABLES = {
    "gpt2": gpt2,
    "bert": bert,
    "roberta": bert,
    "trocr": trocr,
    "bart": bart,
    "mbart": bart,
    "electra": electra,
    "bert-generation": bert_generation,
}


def decoder_config(d: dict, where: str | None = None, section: str = "decoder") -> DecoderConfig:
    """The DecoderConfig of a config section, every field checked (ConfigFieldError names `section.key`)."""
    if not isinstance(d, dict):
        raise ConfigFieldError(f"{section} must be a JSON object, got {show(d)}", where, "", section)
    kind = d.get("model_type")
    if kind not in FAMILIES:
        raise ModelError(f"unsupported {section} model_type '{kind}' (supported: {', '.join(sorted(FAMILIES))})",
                         where)  # fmt: skip
    cfg = FAMILIES[kind].config_from_hf(resolve_aliases(d), where, section)
    check_token_ids({"pad_token_id": cfg.pad_token_id}, cfg.vocab_size, where, section)
    if cfg.positions == "padded":  # RoBERTa counts positions from pad_token_id + 1 in its own table
        if cfg.pad_token_id is None or cfg.pad_token_id + 2 > cfg.max_positions:
            raise ConfigFieldError(
                f"{section}.pad_token_id {show(cfg.pad_token_id)} leaves no room in {section}.max_position_embeddings "
                f"{cfg.max_positions} ({kind} positions count from pad_token_id + 1)",
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
    return TABLES[cfg.family].weight_table(cfg)
