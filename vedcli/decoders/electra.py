"""ELECTRA as a decoder (ElectraForCausalLM): BERT's layers, with embeddings that may be narrower than the layers.

When `embedding_size` differs from `hidden_size`, `embeddings_project` lifts the embeddings to the layer width, and
the generator head (dense -> gelu -> LayerNorm) brings the result back down so the tied projection fits.
"""

from __future__ import annotations

from ..config import DecoderConfig
from ..errors import ModelError
from ..weights import WeightTable, linear, norm, output_head, param


def config_from_hf(d: dict) -> DecoderConfig:
    if d.get("position_embedding_type", "absolute") != "absolute":
        kind = d["position_embedding_type"]
        raise ModelError(f"electra decoder with position_embedding_type '{kind}' is not supported")
    return DecoderConfig(
        family="electra",
        vocab_size=d.get("vocab_size", 30522),
        hidden_size=d.get("hidden_size", 256),
        embedding_size=d.get("embedding_size", 128),
        num_layers=d.get("num_hidden_layers", 12),
        num_heads=d.get("num_attention_heads", 4),
        intermediate_size=d.get("intermediate_size", 1024),
        activation=d.get("hidden_act", "gelu"),
        layer_norm_eps=d.get("layer_norm_eps", 1e-12),
        max_positions=d.get("max_position_embeddings", 512),
        pre_norm=False,
        embed_norm=True,
        type_vocab_size=d.get("type_vocab_size", 2),
        head="mlm",
        head_activation="gelu",  # the generator head's activation is fixed, whatever hidden_act says
        head_bias=True,
        tie_embeddings=d.get("tie_word_embeddings", True),
        pad_token_id=d.get("pad_token_id", 0),
        dropout=d.get("hidden_dropout_prob", 0.1),
        embed_dropout=d.get("hidden_dropout_prob", 0.1),
        attn_dropout=d.get("attention_probs_dropout_prob", 0.1),
        hf=d,
    )


def weight_table(cfg: DecoderConfig) -> WeightTable:
    emb = "electra.embeddings."
    layer = "electra.encoder.layer.{i}."
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
        *linear("head_dense", "generator_predictions.dense"),
        *norm("head_norm", "generator_predictions.LayerNorm"),
        *param("head.bias", "generator_lm_head.bias"),
    ]
    if cfg.embedding_size != cfg.hidden_size:
        rules += linear("embed_proj", "electra.embeddings_project")
    ignore = [r"electra\.embeddings\.(position_ids|token_type_ids)"]  # buffers some exports carry
    return WeightTable(rules, ignore) + output_head(cfg.tie_embeddings, "generator_lm_head.weight")
