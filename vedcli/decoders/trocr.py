"""TrOCR (TrOCRForCausalLM): post-norm BART-style layers, learned (offset 2) or sinusoidal positions."""

from __future__ import annotations

import math

from ..config import DecoderConfig
from ..weights import WeightTable, output_head
from .bart import fairseq_rules


def config_from_hf(d: dict) -> DecoderConfig:
    c = d.get("d_model", d.get("hidden_size", 1024))
    learned = d.get("use_learned_position_embeddings", True)
    return DecoderConfig(
        family="trocr",
        vocab_size=d.get("vocab_size", 50265),
        hidden_size=c,
        num_layers=d.get("decoder_layers", 12),
        num_heads=d.get("decoder_attention_heads", 16),
        intermediate_size=d.get("decoder_ffn_dim", 4096),
        activation=d.get("activation_function", "gelu"),
        layer_norm_eps=1e-5,  # nn.LayerNorm's default; TrOCR does not configure it
        max_positions=d.get("max_position_embeddings", 512),
        positions="absolute" if learned else "sinusoidal",
        position_offset=2 if learned else 0,
        pre_norm=False,
        embed_scale=math.sqrt(c) if d.get("scale_embedding", False) else 1.0,
        embed_norm=d.get("layernorm_embedding", True),
        tie_embeddings=d.get("tie_word_embeddings", True),
        cross_attention_size=d.get("cross_attention_hidden_size"),
        pad_token_id=d.get("pad_token_id", 1),
        dropout=d.get("dropout", 0.1),
        embed_dropout=d.get("dropout", 0.1),
        attn_dropout=d.get("attention_dropout", 0.0),
        act_dropout=d.get("activation_dropout", 0.0),
        hf=d,
    )


def weight_table(cfg: DecoderConfig) -> WeightTable:
    ignore = [r"model\.decoder\.embed_positions\._float_tensor"]  # fairseq leftover in some exports
    return WeightTable(fairseq_rules(cfg), ignore) + output_head(cfg.tie_embeddings, "output_projection.weight")
