"""BERT and RoBERTa as decoders (BertLMHeadModel / RobertaForCausalLM): post-norm, embedding LayerNorm, MLM head.

RoBERTa (and XLM-R, CamemBERT) differ in one place: positions count from pad_token_id + 1. BERT's layers (and their
weight names) serve ELECTRA and BERT-generation too, which differ only in their embeddings and head.
"""

from __future__ import annotations

import re

from ..checkpoints.weights import Rule, WeightTable, linear, norm, output_head, param
from ..config import DecoderConfig
from ..errors import ModelError
from ..family import TOKEN_IDS, DecoderFamily, SizeKeys, read_sizes
from ..processing.special_tokens import BERT, ROBERTA
from ..validate import Fields

ROBERTA_LIKE = {"roberta", "xlm-roberta", "camembert"}
# BERT-named configs' keys an override may add
BERT_FIELDS = frozenset({*SizeKeys().names(), "vocab_size", "max_position_embeddings", "tie_word_embeddings",
                         *TOKEN_IDS})  # fmt: skip
BERT_PADDED = r".*embeddings\.word_embeddings\.weight"  # the embeddings nn.Embedding(padding_idx=pad) zeroes a row of


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
    return dict(
        **read_sizes(f, width=hidden, heads=heads, layers=layers, mlp=mlp),
        vocab_size=f.count("vocab_size", vocab),
        max_positions=f.count("max_position_embeddings", 512),
        pre_norm=False,
        embed_norm=True,
        head_bias=True,
        tie_embeddings=f.flag("tie_word_embeddings", True),
        pad_token_id=f.token("pad_token_id", pad),
        embed_dropout=f.fraction("hidden_dropout_prob", 0.1),
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


def bert_rules(base: str, token_types: bool = True) -> list[Rule]:
    """Embeddings and layers under BERT's names below `base` ("bert.", "roberta.", "electra.")."""
    emb, layer = base + "embeddings.", base + "encoder.layer.{i}."
    selfa, cross = layer + "attention.", layer + "crossattention."
    return [
        *param("embed.weight", emb + "word_embeddings.weight"),
        *param("pos.weight", emb + "position_embeddings.weight"),
        *(param("token_type.weight", emb + "token_type_embeddings.weight") if token_types else []),
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


def bert_buffers(base: str, token_types: bool = True) -> str:
    """The pattern of the position (and token type) id buffers some exports carry."""
    buffers = r"(position_ids|token_type_ids)" if token_types else "position_ids"
    return re.escape(base) + r"embeddings\." + buffers


def head_bias(head: str, tied: bool) -> WeightTable:
    """The LM head's bias: `bias` while the head is tied to the embeddings; an untied head (transformers 5) reads its
    own `decoder.bias` and leaves `bias` unused."""
    used, unused = "bias", "decoder.bias"
    if not tied:
        used, unused = unused, used
    return WeightTable(param("head.bias", head + used), [re.escape(head + unused)])


def weight_table(cfg: DecoderConfig) -> WeightTable:
    roberta = cfg.family == "roberta"
    base = "roberta." if roberta else "bert."
    rules = bert_rules(base)
    if roberta:
        head = "lm_head."
        rules += [*linear("head_dense", head + "dense"), *norm("head_norm", head + "layer_norm")]
    else:
        head = "cls.predictions."
        rules += [*linear("head_dense", head + "transform.dense"), *norm("head_norm", head + "transform.LayerNorm")]
    # buffers and an unused pooler
    table = WeightTable(rules, [bert_buffers(base), re.escape(base) + r"pooler\.dense\.(weight|bias)"])
    return table + head_bias(head, cfg.tie_embeddings) + output_head(cfg.tie_embeddings, head + "decoder.weight")


_BERT = dict(read=config_from_hf, weights=weight_table, overridable=BERT_FIELDS | {"type_vocab_size"})
_ROBERTA = dict(**_BERT, tokens=ROBERTA, head="lm_head.decoder.weight", prefix="roberta.",
                padded=r".*embeddings\.(word|position)_embeddings\.weight")  # fmt: skip
RECORDS = (
    DecoderFamily(model_type="bert", **_BERT, tokens=BERT, start="cls", end="sep", tokenizer="bert",
                  head="cls.predictions.decoder.weight", prefix="bert.", padded=BERT_PADDED),
    DecoderFamily(model_type="roberta", **_ROBERTA, tokenizer="roberta"),
    DecoderFamily(model_type="xlm-roberta", **_ROBERTA, tokenizer="xlm-roberta"),
    DecoderFamily(model_type="camembert", **_ROBERTA),
)  # fmt: skip
