"""TrOCR (TrOCRForCausalLM): post-norm BART-style layers, learned (offset 2) or sinusoidal positions."""

from __future__ import annotations

import math

from ..config import DecoderConfig
from ..weights import WeightTable, linear, norm, output_head, param


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
        hf=d,
    )


def weight_table(cfg: DecoderConfig) -> WeightTable:
    dec = "model.decoder."
    layer = dec + "layers.{i}."
    sa, ca = layer + "self_attn.", layer + "encoder_attn."
    rules = [
        *param("embed.weight", dec + "embed_tokens.weight"),
        *(param("pos.weight", dec + "embed_positions.weight") if cfg.positions != "sinusoidal" else []),
        *(norm("embed_norm", dec + "layernorm_embedding") if cfg.embed_norm else []),
        *linear("blocks.{i}.self_attn.qkv", sa + "q_proj", sa + "k_proj", sa + "v_proj"),
        *linear("blocks.{i}.self_attn.out", sa + "out_proj"),
        *norm("blocks.{i}.ln_self", layer + "self_attn_layer_norm"),
        *linear("blocks.{i}.cross_attn.q", ca + "q_proj"),
        *linear("blocks.{i}.cross_attn.kv", ca + "k_proj", ca + "v_proj"),
        *linear("blocks.{i}.cross_attn.out", ca + "out_proj"),
        *norm("blocks.{i}.ln_cross", layer + "encoder_attn_layer_norm"),
        *linear("blocks.{i}.mlp.fc1", layer + "fc1"),
        *linear("blocks.{i}.mlp.fc2", layer + "fc2"),
        *norm("blocks.{i}.ln_mlp", layer + "final_layer_norm"),
    ]
    ignore = [r"model\.decoder\.embed_positions\._float_tensor"]  # fairseq leftover in some exports
    return WeightTable(rules, ignore) + output_head(cfg.tie_embeddings, "output_projection.weight")
