"""GPT-2 (GPT2LMHeadModel with add_cross_attention): pre-norm, learned positions, Conv1D weights, tied head."""

from __future__ import annotations

from ..checkpoints.weights import WeightTable, linear, norm, output_head, param
from ..config import DecoderConfig
from ..validate import Fields


def config_from_hf(d: dict, where: str | None = None, section: str = "decoder") -> DecoderConfig:
    f = Fields(d, section, where)
    c, heads = f.count("n_embd", 768), f.count("n_head", 12)
    f.divides("n_embd", c, "n_head", heads)
    return DecoderConfig(
        family="gpt2",
        vocab_size=f.count("vocab_size", 50257),
        hidden_size=c,
        num_layers=f.layers("n_layer", 12),
        num_heads=heads,
        intermediate_size=f.optional_count("n_inner") or 4 * c,
        activation=f.activation("activation_function", "gelu_new"),
        layer_norm_eps=f.eps("layer_norm_epsilon", 1e-5),
        max_positions=f.count("n_positions", 1024),
        pre_norm=True,
        final_norm=True,
        tie_embeddings=f.flag("tie_word_embeddings", True),
        cross_attention_size=f.optional_count("cross_attention_hidden_size"),
        scale_attn_by_layer=f.flag("scale_attn_by_inverse_layer_idx", False),
        pad_token_id=f.token("pad_token_id"),
        dropout=f.fraction("resid_pdrop", 0.1),
        embed_dropout=f.fraction("embd_pdrop", 0.1),
        attn_dropout=f.fraction("attn_pdrop", 0.1),
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
    return WeightTable(rules, ignore) + output_head(cfg.tie_embeddings, "lm_head.weight")
