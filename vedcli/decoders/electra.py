"""ELECTRA as a decoder (ElectraForCausalLM): BERT's layers, with embeddings that may be narrower than the layers.

When `embedding_size` differs from `hidden_size`, `embeddings_project` lifts the embeddings to the layer width, and
the generator head (dense -> gelu -> LayerNorm) brings the result back down so the tied projection fits.
"""

from __future__ import annotations

from ..checkpoints.weights import WeightTable, linear, norm, output_head, param
from ..config import DecoderConfig
from ..family import DecoderFamily
from ..processing.special_tokens import BERT
from ..validate import Fields
from .bert import BERT_FIELDS, BERT_PADDED, bert_buffers, bert_rules, bert_style

HEAD = "generator_lm_head."


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
    rules = [
        *bert_rules("electra."),
        *linear("head_dense", "generator_predictions.dense"),
        *norm("head_norm", "generator_predictions.LayerNorm"),
        *param("head.bias", HEAD + "bias"),
    ]
    if cfg.embedding_size != cfg.hidden_size:
        rules += linear("embed_proj", "electra.embeddings_project")
    return WeightTable(rules, [bert_buffers("electra.")]) + output_head(cfg.tie_embeddings, HEAD + "weight")


RECORDS = (
    DecoderFamily(model_type="electra", read=config_from_hf, weights=weight_table, head=HEAD + "weight",
                  overridable=BERT_FIELDS | {"type_vocab_size", "embedding_size"}, tokens=BERT, start="cls",
                  end="sep", tokenizer="bert", prefix="electra.", padded=BERT_PADDED),
)  # fmt: skip
