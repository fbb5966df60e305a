"""BERT and RoBERTa as decoders (BertLMHeadModel / RobertaForCausalLM): post-norm, embedding LayerNorm, MLM head.

RoBERTa (and XLM-R, CamemBERT) differ in one place: positions count from pad_token_id + 1.
"""

from __future__ import annotations

import re

from ..checkpoints.weights import WeightTable, linear, norm, output_head, param
from ..config import DecoderConfig
from ..errors import ModelError
from ..validate import Fields

ROBERTA_LIKE = {"roberta", "xlm-roberta", "camembert"}


def bert_style(
    f: Fields,
    kind: str,
    hidden: int = 768,
    layers: int = 12,
    heads: int = 12,
    mlp: int = 3072,
    vocab: int = 30522,
    pad: int = 0,
) -> dict:
    """DecoderConfig fields every BERT-named config (BERT, RoBERTa, ELECTRA, BERT-generation) sets the same way:
    post-norm, embedding LayerNorm, absolute learned positions. The defaults are the family's base model's."""
    positions = f.d.get("position_embedding_type", "absolute")
    if positions != "absolute":
        raise ModelError(f"{kind} decoder with position_embedding_type '{positions}' is not supported "
                         f"({f.name('position_embedding_type')})", f.where)  # fmt: skip
    width, num_heads = f.count("hidden_size", hidden), f.count("num_attention_heads", heads)
    f.divides("hidden_size", width, "num_attention_heads", num_heads)
    return dict(
        vocab_size=f.count("vocab_size", vocab),
        hidden_size=width,
        num_layers=f.layers("num_hidden_layers", layers),
        num_heads=num_heads,
        intermediate_size=f.count("intermediate_size", mlp),
        activation=f.activation("hidden_act", "gelu"),
        layer_norm_eps=f.eps("layer_norm_eps", 1e-12),
        max_positions=f.count("max_position_embeddings", 512),
        pre_norm=False,
        embed_norm=True,
        head_bias=True,
        tie_embeddings=f.flag("tie_word_embeddings", True),
        pad_token_id=f.token("pad_token_id", pad),
        dropout=f.fraction("hidden_dropout_prob", 0.1),
        embed_dropout=f.fraction("hidden_dropout_prob", 0.1),
        attn_dropout=f.fraction("attention_probs_dropout_prob", 0.1),
        hf=f.d,
    )


def config_from_hf(d: dict, where: str | None = None, section: str = "decoder") -> DecoderConfig:
    f = Fields(d, section, where)
    kind = d.get("model_type", "bert")
    roberta = kind in ROBERTA_LIKE
    return DecoderConfig(
        family="roberta" if roberta else "bert",
        positions="padded" if roberta else "absolute",
        type_vocab_size=f.count("type_vocab_size", 2),
        head="mlm",
        head_activation="gelu" if roberta else f.activation("hidden_act", "gelu"),
        cross_attention_size=f.optional_count("cross_attention_hidden_size"),
        **bert_style(f, kind, pad=1 if roberta else 0),
    )


def weight_table(cfg: DecoderConfig) -> WeightTable:
    roberta = cfg.family == "roberta"
    base = "roberta." if roberta else "bert."
    layer = base + "encoder.layer.{i}."
    emb = base + "embeddings."
    selfa, cross = layer + "attention.", layer + "crossattention."
    rules = [
        *param("embed.weight", emb + "word_embeddings.weight"),
        *param("pos.weight", emb + "position_embeddings.weight"),
        *param("token_type.weight", emb + "token_type_embeddings.weight"),
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
    if roberta:
        head = "lm_head."
        rules += [*linear("head_dense", head + "dense"), *norm("head_norm", head + "layer_norm")]
    else:
        head = "cls.predictions."
        rules += [*linear("head_dense", head + "transform.dense"), *norm("head_norm", head + "transform.LayerNorm")]
    # The projection's bias is `bias` while the head is tied to the embeddings; an untied head (transformers 5)
    # reads its own `decoder.bias` and leaves `bias` unused.
    used, unused = "bias", "decoder.bias"
    if not cfg.tie_embeddings:
        used, unused = unused, used
    rules += param("head.bias", head + used)
    # buffers, an unused pooler, and the head bias the projection does not read
    ignore = [
        re.escape(base) + r"embeddings\.(position_ids|token_type_ids)",
        re.escape(base) + r"pooler\.dense\.(weight|bias)",
        re.escape(head + unused),
    ]
    return WeightTable(rules, ignore) + output_head(cfg.tie_embeddings, head + "decoder.weight")
