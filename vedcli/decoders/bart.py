"""BART and mBART as decoders (BartForCausalLM / MBartForCausalLM, Donut's decoder).

Both: learned positions from row 2, a LayerNorm right after the embeddings (`layernorm_embedding`), optional
sqrt(d_model) embedding scale, an LM head without bias tied to the token embeddings. BART normalises after each
residual sum; mBART before each sublayer, with one more LayerNorm after the last layer (`layer_norm`).
"""

from __future__ import annotations

import math

from ..checkpoints.weights import Rule, WeightTable, linear, norm, output_head, param
from ..config import DecoderConfig
from ..family import FAIRSEQ_SIZES, TOKEN_IDS, DecoderFamily, read_sizes
from ..processing.special_tokens import ROBERTA
from ..validate import Fields

PRE_NORM = {"mbart"}  # model_types whose layers normalise first and end in a final LayerNorm
HEAD = "lm_head.weight"
# fairseq-named configs' keys an override may add
FAIRSEQ_FIELDS = frozenset({*FAIRSEQ_SIZES.names(), "vocab_size", "max_position_embeddings", "scale_embedding",
                            "tie_word_embeddings", *TOKEN_IDS, "decoder_start_token_id",
                            "activation_dropout"})  # fmt: skip
# what every fairseq family's record says the same way
FAIRSEQ = dict(
    padded=r".*embed_tokens\.weight",
    prefix="model.",
    tokens=ROBERTA,
    # BART-style models share one embedding matrix between encoder and decoder; saved models may keep only that copy
    copies={"model.decoder.embed_tokens.weight": ("model.shared.weight", "shared.weight")},
)


def fairseq_style(f: Fields, max_positions: int) -> dict:
    """DecoderConfig fields fairseq-named configs (BART, mBART, TrOCR) set the same way, checked."""
    sizes = read_sizes(f, FAIRSEQ_SIZES, width=1024, heads=16, mlp=4096, eps=1e-5, attn_dropout=0.0)
    return dict(
        **sizes,  # layer_norm_eps is nn.LayerNorm's default: these families do not configure it
        vocab_size=f.count("vocab_size", 50265),
        max_positions=f.count("max_position_embeddings", max_positions),
        embed_scale=math.sqrt(sizes["hidden_size"]) if f.flag("scale_embedding", False) else 1.0,
        tie_embeddings=f.flag("tie_word_embeddings", True),
        pad_token_id=f.token("pad_token_id", 1),
        embed_dropout=f.fraction("dropout", 0.1),
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
    return WeightTable(fairseq_rules(cfg)) + output_head(cfg.tie_embeddings, HEAD)


# BART's num_hidden_layers and num_attention_heads name its encoder's, which a decoder-only ved model does not read
_ALIASES = {"num_attention_heads": "encoder_attention_heads", "hidden_size": "d_model",
            "num_hidden_layers": "encoder_layers"}  # fmt: skip
_BART = dict(read=config_from_hf, weights=weight_table, aliases=_ALIASES, overridable=FAIRSEQ_FIELDS, head=HEAD,
             cache_by_encoder_layers=True, **FAIRSEQ)  # fmt: skip
RECORDS = (
    DecoderFamily(model_type="bart", **_BART, tokenizer="roberta"),
    DecoderFamily(model_type="mbart", **_BART),
)
