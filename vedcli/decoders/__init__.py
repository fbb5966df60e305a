"""Text decoders. Each family module gives `config_from_hf` and its weight table; all share `stack.TextDecoder`."""

from __future__ import annotations

from ..config import DecoderConfig
from ..errors import ModelError
from ..weights import WeightTable
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


def decoder_config(d: dict, where: str | None = None) -> DecoderConfig:
    kind = d.get("model_type")
    if kind not in FAMILIES:
        raise ModelError(f"unsupported decoder model_type '{kind}' (supported: {', '.join(sorted(FAMILIES))})", where)
    return FAMILIES[kind].config_from_hf(d)


def decoder_weights(cfg: DecoderConfig) -> WeightTable:
    return TABLES[cfg.family].weight_table(cfg)
