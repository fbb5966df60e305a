"""ELECTRA as a decoder (ElectraForCausalLM): BERT's layers, with embeddings that may be narrower than the layers.

When `embedding_size` differs from `hidden_size`, `embeddings_project` lifts the embeddings to the layer width, and
the generator head (dense -> gelu -> LayerNorm) brings the result back down so the tied projection fits.
"""

from __future__ import annotations

from ..checkpoints.weights import WeightTable, linear, norm, output_head, param
from ..config import DecoderConfig
from ..validate import Fields
from .bert import bert_style


def config_from_hf(d: dict, where: str | None = None, section: str = "decoder") -> DecoderConfig:
    f = Fields(d, section, where)
    return DecoderConfig(
        family="electra",
        embedding_size=f.count("embedding_size", 128),
        type_vocab_size=f.count("type_vocab_size", 2),
        head="mlm",
        head_activation="gelu",  # the generator head's activation is fixed, whatever hidden_act says
        **bert_style(f, "electra", hidden=256, heads=4, mlp=1024),
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
