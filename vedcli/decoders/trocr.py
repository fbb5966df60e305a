"""TrOCR (TrOCRForCausalLM): post-norm BART-style layers, learned (offset 2) or sinusoidal positions."""

from __future__ import annotations

from ..checkpoints.weights import WeightTable, output_head
from ..config import DecoderConfig
from ..family import DecoderFamily
from ..validate import Fields
from .bart import FAIRSEQ, FAIRSEQ_FIELDS, fairseq_rules, fairseq_style

HEAD = "output_projection.weight"


def config_from_hf(d: dict, where: str | None = None, section: str = "decoder") -> DecoderConfig:
    f = Fields(d, section, where)
    learned = f.flag("use_learned_position_embeddings", True)
    return DecoderConfig(
        family="trocr",
        positions="absolute" if learned else "sinusoidal",
        position_offset=2 if learned else 0,
        pre_norm=False,
        embed_norm=f.flag("layernorm_embedding", True),
        cross_attention_size=f.optional_count("cross_attention_hidden_size"),
        **fairseq_style(f, max_positions=512),
    )


def weight_table(cfg: DecoderConfig) -> WeightTable:
    ignore = [r"model\.decoder\.embed_positions\._float_tensor"]  # fairseq leftover in some exports
    return WeightTable(fairseq_rules(cfg), ignore) + output_head(cfg.tie_embeddings, HEAD)


RECORDS = (
    DecoderFamily(
        model_type="trocr",
        read=config_from_hf,
        weights=weight_table,
        aliases={"num_attention_heads": "decoder_attention_heads", "hidden_size": "d_model",
                 "num_hidden_layers": "decoder_layers"},
        overridable=FAIRSEQ_FIELDS | {"use_learned_position_embeddings", "layernorm_embedding",
                                      "cross_attention_hidden_size"},
        head=HEAD,
        start="eos",  # TrOCR's captions start with </s>
        reads_encoder_width=True,
        **FAIRSEQ,
    ),
)  # fmt: skip
