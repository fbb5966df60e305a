"""BERT-generation as a decoder (BertGenerationDecoder): BERT's layers without token types, a plain biased LM head."""

from __future__ import annotations

from ..checkpoints.weights import WeightTable, output_head
from ..config import DecoderConfig
from ..family import DecoderFamily
from ..processing.special_tokens import ROBERTA
from ..validate import Fields
from .bert import BERT_FIELDS, BERT_PADDED, bert_buffers, bert_rules, bert_style, head_bias

HEAD = "lm_head."


def config_from_hf(d: dict, where: str | None = None, section: str = "decoder") -> DecoderConfig:
    sizes = dict(hidden=1024, layers=24, heads=16, mlp=4096, vocab=50358)
    return DecoderConfig(family="bert-generation", **bert_style(Fields(d, section, where), "bert-generation", **sizes))


def weight_table(cfg: DecoderConfig) -> WeightTable:
    table = WeightTable(bert_rules("bert.", token_types=False), [bert_buffers("bert.", token_types=False)])
    return table + head_bias(HEAD, cfg.tie_embeddings) + output_head(cfg.tie_embeddings, HEAD + "decoder.weight")


RECORDS = (
    DecoderFamily(model_type="bert-generation", read=config_from_hf, weights=weight_table, head=HEAD + "decoder.weight",
                  overridable=BERT_FIELDS, tokens=ROBERTA, prefix="bert.", padded=BERT_PADDED),
)  # fmt: skip
