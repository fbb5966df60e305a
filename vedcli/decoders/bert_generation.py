"""BERT-generation as a decoder (BertGenerationDecoder): BERT's layers without token types, a plain biased LM head."""

from __future__ import annotations

import re

from ..config import DecoderConfig
from ..errors import ModelError
from ..weights import WeightTable, linear, norm, output_head, param


def config_from_hf(d: dict) -> DecoderConfig:
    if d.get("position_embedding_type", "absolute") != "absolute":
        kind = d["position_embedding_type"]
        raise ModelError(f"bert-generation decoder with position_embedding_type '{kind}' is not supported")
    return DecoderConfig(
        family="bert-generation",
        vocab_size=d.get("vocab_size", 50358),
        hidden_size=d.get("hidden_size", 1024),
        num_layers=d.get("num_hidden_layers", 24),
        num_heads=d.get("num_attention_heads", 16),
        intermediate_size=d.get("intermediate_size", 4096),
        activation=d.get("hidden_act", "gelu"),
        layer_norm_eps=d.get("layer_norm_eps", 1e-12),
        max_positions=d.get("max_position_embeddings", 512),
        pre_norm=False,
        embed_norm=True,
        head_bias=True,
        tie_embeddings=d.get("tie_word_embeddings", True),
        pad_token_id=d.get("pad_token_id", 0),
        dropout=d.get("hidden_dropout_prob", 0.1),
        embed_dropout=d.get("hidden_dropout_prob", 0.1),
        attn_dropout=d.get("attention_probs_dropout_prob", 0.1),
        hf=d,
    )


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
