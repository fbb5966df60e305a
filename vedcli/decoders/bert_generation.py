"""BERT-generation as a decoder (BertGenerationDecoder): BERT's layers without token types, a plain biased LM head."""

from __future__ import annotations

import re

from ..checkpoints.weights import WeightTable, linear, norm, output_head, param
from ..config import DecoderConfig
from ..validate import Fields
from .bert import bert_style


def config_from_hf(d: dict, where: str | None = None, section: str = "decoder") -> DecoderConfig:
    sizes = dict(hidden=1024, layers=24, heads=16, mlp=4096, vocab=50358)
    return DecoderConfig(family="bert-generation", **bert_style(Fields(d, section, where), "bert-generation", **sizes))


def weight_table(cfg: DecoderConfig) -> WeightTable:
    emb = "bert.embeddings."
    layer = "bert.encoder.layer.{i}."
    selfa, cross = layer + "attention.", layer + "crossattention."
    rules = [
        *param("embed.weight", emb + "word_embeddings.weight"),
        *param("pos.weight", emb + "position_embeddings.weight"),
        *norm("embed_norm", emb + "LayerNorm"),
        *linear("blocks.{i}.self_attn.qkv", selfa + "self.query", selfa + "self.key", selfa + "self.value"),
        *linear("blocks.{i}.self_attn.out", selfa + "output.dense"),
        *norm("blocks.{i}.ln_self", selfa + "output.LayerNorm"),
        *linear("blocks.{i}.cross_attn.q", cross + "self.query"),
        *linear("blocks.{i}.cross_attn.kv", cross + "self.key", cross + "self.value"),
        *linear("blocks.{i}.cross_attn.out", cross + "output.dense"),
        *norm("blocks.{i}.ln_cross", cross + "output.LayerNorm"),
        *linear("blocks.{i}.mlp.fc1", layer + "intermediate.dense"),
        *linear("blocks.{i}.mlp.fc2", layer + "output.dense"),
        *norm("blocks.{i}.ln_mlp", layer + "output.LayerNorm"),
    ]
    # The projection's bias is lm_head.bias while the head is tied to the embeddings; an untied head (transformers 5)
    # reads its own lm_head.decoder.bias and leaves lm_head.bias unused.
    used, unused = "lm_head.bias", "lm_head.decoder.bias"
    if not cfg.tie_embeddings:
        used, unused = unused, used
    rules += param("head.bias", used)
    ignore = [r"bert\.embeddings\.position_ids", re.escape(unused)]
    return WeightTable(rules, ignore) + output_head(cfg.tie_embeddings, "lm_head.decoder.weight")
