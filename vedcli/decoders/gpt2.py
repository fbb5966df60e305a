"""GPT-2 (GPT2LMHeadModel with add_cross_attention): pre-norm, learned positions, Conv1D weights, tied head."""

from __future__ import annotations

from dataclasses import replace

from ..checkpoints.weights import WeightTable, linear, norm, output_head, param
from ..config import DecoderConfig
from ..family import GPT2_SIZES, TOKEN_IDS, DecoderFamily, read_sizes
from ..processing.special_tokens import GPT2
from ..validate import Fields

HEAD = "lm_head.weight"


def config_from_hf(d: dict, where: str | None = None, section: str = "decoder") -> DecoderConfig:
    f = Fields(d, section, where)
    return DecoderConfig(
        family="gpt2",
        **read_sizes(f, GPT2_SIZES, mlp=None, activation="gelu_new", eps=1e-5),
        vocab_size=f.count("vocab_size", 50257),
        max_positions=f.count("n_positions", 1024),
        pre_norm=True,
        final_norm=True,
        tie_embeddings=f.flag("tie_word_embeddings", True),
        cross_attention_size=f.optional_count("cross_attention_hidden_size"),
        scale_attn_by_layer=f.flag("scale_attn_by_inverse_layer_idx", False),
        pad_token_id=f.token("pad_token_id"),
        embed_dropout=f.fraction("embd_pdrop", 0.1),
        hf=d,
    )


def weight_table(cfg: DecoderConfig) -> WeightTable:
    h = "transformer.h.{i}."
    conv = dict(transpose=True)  # Conv1D keeps (in, out)
    rules = [
        *param("embed.weight", "transformer.wte.weight"),
        *param("pos.weight", "transformer.wpe.weight"),
        *norm("blocks.{i}.ln_self", h + "ln_1"),
        *linear("blocks.{i}.self_attn.qkv", h + "attn.c_attn", **conv),
        *linear("blocks.{i}.self_attn.out", h + "attn.c_proj", **conv),
        *norm("blocks.{i}.ln_cross", h + "ln_cross_attn"),
        *linear("blocks.{i}.cross_attn.q", h + "crossattention.q_attn", **conv),
        *linear("blocks.{i}.cross_attn.kv", h + "crossattention.c_attn", **conv),
        *linear("blocks.{i}.cross_attn.out", h + "crossattention.c_proj", **conv),
        *norm("blocks.{i}.ln_mlp", h + "ln_2"),
        *linear("blocks.{i}.mlp.fc1", h + "mlp.c_fc", **conv),
        *linear("blocks.{i}.mlp.fc2", h + "mlp.c_proj", **conv),
        *norm("final_norm", "transformer.ln_f"),
    ]
    # old checkpoints carry the causal-mask buffers; a tied head may be saved too
    ignore = [r"transformer\.h\.\d+\.(attn|crossattention)\.(bias|masked_bias)"]
    return WeightTable(rules, ignore) + output_head(cfg.tie_embeddings, HEAD)


RECORDS = (
    DecoderFamily(
        model_type="gpt2",
        read=config_from_hf,
        weights=weight_table,
        aliases={"hidden_size": "n_embd", "max_position_embeddings": "n_positions", "num_attention_heads": "n_head",
                 "num_hidden_layers": "n_layer"},
        overridable=frozenset({*GPT2_SIZES.names(), "vocab_size", "n_positions", "scale_attn_by_inverse_layer_idx",
                               "tie_word_embeddings", "embd_pdrop", *TOKEN_IDS}),
        inits=((r".*\.c_proj\.weight", "residual_normal"),),  # scaled by 1 / sqrt(2 * n_layer)
        prefix="transformer.",
        head=HEAD,
        tokens=replace(GPT2, pad=GPT2.eos),  # GPT2Tokenizer has no pad token: ved pads with its end-of-text token
        tokenizer="gpt2",
        note="GPT-2 tokenizers add no end-of-sequence token: training appends <|endoftext|> to each caption",
    ),
)  # fmt: skip
