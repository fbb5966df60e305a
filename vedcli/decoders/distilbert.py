"""DistilBERT as a decoder: the reference cannot use it as one, so ved writes it as a BERT decoder (BertLMHeadModel
names): the same weights, zero token-type embeddings (BERT adds row 0, so nothing changes), causal self-attention
and new cross-attention. Used by `ved compose`."""

from __future__ import annotations

import re
from typing import Any

import torch
from torch import Tensor

from ..family import TOKEN_IDS, DecoderFamily
from ..processing.special_tokens import BERT

# DistilBERT name (after `distilbert.`) -> BERT name in BertLMHeadModel; `{bias}` is the LM head's bias name
DISTILBERT_NAMES = [
    (r"embeddings\.(word_embeddings|position_embeddings|LayerNorm)\.", r"bert.embeddings.\1."),
    (r"transformer\.layer\.(\d+)\.attention\.q_lin\.", r"bert.encoder.layer.\1.attention.self.query."),
    (r"transformer\.layer\.(\d+)\.attention\.k_lin\.", r"bert.encoder.layer.\1.attention.self.key."),
    (r"transformer\.layer\.(\d+)\.attention\.v_lin\.", r"bert.encoder.layer.\1.attention.self.value."),
    (r"transformer\.layer\.(\d+)\.attention\.out_lin\.", r"bert.encoder.layer.\1.attention.output.dense."),
    (r"transformer\.layer\.(\d+)\.sa_layer_norm\.", r"bert.encoder.layer.\1.attention.output.LayerNorm."),
    (r"transformer\.layer\.(\d+)\.ffn\.lin1\.", r"bert.encoder.layer.\1.intermediate.dense."),
    (r"transformer\.layer\.(\d+)\.ffn\.lin2\.", r"bert.encoder.layer.\1.output.dense."),
    (r"transformer\.layer\.(\d+)\.output_layer_norm\.", r"bert.encoder.layer.\1.output.LayerNorm."),
    (r"vocab_transform\.", "cls.predictions.transform.dense."),
    (r"vocab_layer_norm\.", "cls.predictions.transform.LayerNorm."),
    (r"vocab_projector\.weight$", "cls.predictions.decoder.weight"),
    (r"vocab_projector\.bias$", "{bias}"),
]
DISTILBERT_LAYER_NORM_EPS = 1e-12  # fixed in DistilBERT's code, whatever the config says


def distilbert_as_bert(d: dict[str, Any], state: dict[str, Tensor]) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """A DistilBERT config and (possibly empty) state dict as a BERT decoder's: the same computation once BERT adds
    zero token-type embeddings. Names no rule knows (task heads, buffers) keep their DistilBERT names."""
    tied = d.get("tie_word_embeddings", d.get("tie_weights_", True))
    bert = {
        "model_type": "bert",
        "architectures": ["BertLMHeadModel"],
        "vocab_size": d.get("vocab_size", 30522),
        "hidden_size": d.get("dim", 768),
        "num_hidden_layers": d.get("n_layers", 6),
        "num_attention_heads": d.get("n_heads", 12),
        "intermediate_size": d.get("hidden_dim", 3072),
        "hidden_act": d.get("activation", "gelu"),
        "hidden_dropout_prob": d.get("dropout", 0.1),
        "attention_probs_dropout_prob": d.get("attention_dropout", 0.1),
        "max_position_embeddings": d.get("max_position_embeddings", 512),
        "type_vocab_size": 2,
        "initializer_range": d.get("initializer_range", 0.02),
        "layer_norm_eps": DISTILBERT_LAYER_NORM_EPS,
        "position_embedding_type": "absolute",
        "pad_token_id": d.get("pad_token_id", 0),
        "tie_word_embeddings": tied,
    }
    for key in ("bos_token_id", "eos_token_id", "decoder_start_token_id"):
        if d.get(key) is not None:
            bert[key] = d[key]
    bias = "cls.predictions.bias" if tied else "cls.predictions.decoder.bias"
    out: dict[str, Tensor] = {}
    for key, tensor in state.items():
        name = key.removeprefix("distilbert.")
        for pattern, replacement in DISTILBERT_NAMES:
            if re.match(pattern, name):
                name = re.sub(pattern, replacement.replace("{bias}", bias), name, count=1)
                break
        else:
            name = key
        out[name] = tensor
    words = out.get("bert.embeddings.word_embeddings.weight")
    if words is not None:  # BERT adds token_type_embeddings[0]; zeros leave DistilBERT's sum as it was
        out["bert.embeddings.token_type_embeddings.weight"] = words.new_zeros(2, words.shape[1])
    elif d.get("sinusoidal_pos_embds"):  # a random DistilBERT with fixed sinusoidal positions keeps them
        rows, dim = bert["max_position_embeddings"], bert["hidden_size"]
        out["bert.embeddings.position_embeddings.weight"] = _distilbert_sinusoids(rows, dim)
    return bert, out


def _distilbert_sinusoids(rows: int, dim: int) -> Tensor:
    """DistilBERT's fixed position table: sin on even columns, cos on odd ones, wavelength 10000^(2*(j//2)/dim)."""
    pos = torch.arange(rows, dtype=torch.float64)[:, None]
    j = torch.arange(dim, dtype=torch.float64)[None, :]
    angles = pos / torch.pow(10000.0, 2 * torch.div(j, 2, rounding_mode="floor") / dim)
    table = torch.empty(rows, dim, dtype=torch.float64)
    table[:, 0::2], table[:, 1::2] = torch.sin(angles[:, 0::2]), torch.cos(angles[:, 1::2])
    return table.float()


# DistilBERT is no decoder ved reads (no config reader or weight table of its own): `ved compose` converts it
RECORDS = (
    DecoderFamily(
        model_type="distilbert",
        read=None,
        weights=None,
        aliases={"hidden_size": "dim", "num_attention_heads": "n_heads", "num_hidden_layers": "n_layers"},
        overridable=frozenset({"vocab_size", "dim", "n_layers", "n_heads", "hidden_dim", "activation",
                               "max_position_embeddings", "sinusoidal_pos_embds", "tie_word_embeddings", *TOKEN_IDS,
                               "dropout", "attention_dropout"}),
        head="vocab_projector.weight",
        tokens=BERT,
        start="cls",
        end="sep",
        as_decoder=distilbert_as_bert,
        note="distilbert becomes a BERT decoder: same weights, causal self-attention, zero token types",
    ),
)  # fmt: skip
