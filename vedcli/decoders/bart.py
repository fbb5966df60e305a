"""BART and mBART as decoders (BartForCausalLM / MBartForCausalLM, Donut's decoder).

Both: learned positions from row 2, a LayerNorm right after the embeddings (`layernorm_embedding`), optional
sqrt(d_model) embedding scale, an LM head without bias tied to the token embeddings. BART normalises after each
residual sum; mBART before each sublayer, with one more LayerNorm after the last layer (`layer_norm`).
"""

from __future__ import annotations

import math

from ..checkpoints.weights import Rule, WeightTable, linear, norm, output_head, param
from ..config import DecoderConfig
from ..validate import Fields

PRE_NORM = {"mbart"}  # model_types whose layers normalise first and end in a final LayerNorm


def fairseq_style(f: Fields, max_positions: int) -> dict:
    """DecoderConfig fields fairseq-named configs (BART, mBART, TrOCR) set the same way, checked."""
    width_key = "d_model" if "d_model" in f.d or "hidden_size" not in f.d else "hidden_size"
    c, heads = f.count(width_key, 1024), f.count("decoder_attention_heads", 16)
    f.divides(width_key, c, "decoder_attention_heads", heads)
    return dict(
        vocab_size=f.count("vocab_size", 50265),
        hidden_size=c,
        num_layers=f.layers("decoder_layers", 12),
        num_heads=heads,
        intermediate_size=f.count("decoder_ffn_dim", 4096),
        activation=f.activation("activation_function", "gelu"),
        layer_norm_eps=1e-5,  # nn.LayerNorm's default: these families do not configure it
        max_positions=f.count("max_position_embeddings", max_positions),
        embed_scale=math.sqrt(c) if f.flag("scale_embedding", False) else 1.0,
        tie_embeddings=f.flag("tie_word_embeddings", True),
        pad_token_id=f.token("pad_token_id", 1),
        dropout=f.fraction("dropout", 0.1),
        embed_dropout=f.fraction("dropout", 0.1),
        attn_dropout=f.fraction("attention_dropout", 0.0),
        act_dropout=f.fraction("activation_dropout", 0.0),
        hf=f.d,
    )


def config_from_hf(d: dict, where: str | None = None, section: str = "decoder") -> DecoderConfig:
    f = Fields(d, section, where)
    pre = d.get("model_type", "bart") in PRE_NORM
    return DecoderConfig(
        family="mbart" if pre else "bart",
        position_offset=2,
        pre_norm=pre,
        embed_norm=True,
        final_norm=pre,
        **fairseq_style(f, max_positions=1024),
    )


def fairseq_rules(cfg: DecoderConfig, dec: str = "model.decoder.") -> list[Rule]:
    """Embeddings and layers under fairseq's names, shared by BART, mBART and TrOCR."""
    layer = dec + "layers.{i}."
    sa, ca = layer + "self_attn.", layer + "encoder_attn."
    return [
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
        *(norm("final_norm", dec + "layer_norm") if cfg.final_norm else []),
    ]


def weight_table(cfg: DecoderConfig) -> WeightTable:
    return WeightTable(fairseq_rules(cfg)) + output_head(cfg.tie_embeddings, "lm_head.weight")
