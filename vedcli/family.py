"""One record per model_type: everything ved knows about a family of image encoders or text decoders.

A family file in encoders/ or decoders/ reads its config and names its weights, and ends with `RECORDS`, the records
of the model_types it serves; its package finds them (`discover`), and vedcli/registry.py maps any model_type to its
record. Adding a family is adding one file. Also here: the sizes every family reads, under its own config keys
(`SizeKeys`, `read_sizes`), so that the config readers differ only in what really differs.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import ModelError
from .validate import ConfigFieldError, Fields, show

if TYPE_CHECKING:
    from torch import nn

    from .checkpoints.weights import WeightTable
    from .processing.special_tokens import TokenSet

TOKEN_IDS = ("bos_token_id", "eos_token_id", "pad_token_id")  # special token ids every decoder config may set


@dataclass(frozen=True)
class Derived:
    """Config fields a family computes from others: an override may not set them, and they follow those it sets."""

    fields: tuple[str, ...] = ()  # e.g. Swin's hidden_size and num_layers
    sources: str = ""  # the fields they come from, as a message names them ("embed_dim and depths")
    recompute: Callable[[dict[str, Any]], None] | None = None  # sets them again in a config dict, in place


@dataclass(frozen=True, kw_only=True)
class Family:
    """What both sides have: how ved reads the config, names the weights and initialises new ones."""

    model_type: str  # as config.json names it
    read: Callable[..., Any] | None  # (config section, where, section name) -> EncoderConfig | DecoderConfig, checked
    weights: Callable[[Any], WeightTable] | None  # that config -> its table of HF weight names (checkpoints/weights.py)
    aliases: Mapping[str, str] = field(default_factory=dict)  # transformers' attribute_map: other name -> field
    overridable: frozenset[str] = frozenset()  # config keys an override may add to a preset: those ved reads and
    # the special token ids; not position_embedding_type (read only to refuse all but "absolute"), nor
    # cross_attention_hidden_size outside TrOCR (the only family whose cross-attention width it sets)
    derived: Derived = Derived()
    inits: tuple[tuple[str, str], ...] = ()  # (HF name pattern, how): the reference's own _init_weights cases, in
    # the order it tries them; `how` is a name in checkpoints/init.py (zeros, trunc_normal, layer_scale, ...)
    padded: str | None = None  # pattern of the embeddings whose row pad_token_id the reference zeroes (padding_idx)
    prefix: str = ""  # what the family's task models put before the base model's names ("vit.", "transformer.")

    def field_name(self, key: str) -> str:
        """The field config key `key` sets (itself unless it is one of the family's aliases)."""
        return self.aliases.get(key, key)

    def resolve_aliases(self, d: dict[str, Any]) -> dict[str, Any]:
        """Config dict `d` with the aliases it uses read into the fields they name, as transformers reads them: the
        alias wins when both are given (`d` itself when it holds none)."""
        if not self.aliases.keys() & d.keys():
            return d
        out = {k: v for k, v in d.items() if k not in self.aliases}
        out.update({self.aliases[k]: v for k, v in d.items() if k in self.aliases})
        return out


def _nothing(cfg: Any) -> dict[str, tuple[int, ...]]:
    return {}


@dataclass(frozen=True, kw_only=True)
class EncoderFamily(Family):
    """An image encoder: pixels in, (B, N, C) features out."""

    module: Callable[[Any], nn.Module]  # EncoderConfig -> the encoder, with forward_features(pixels)
    reference_only: Callable[[Any], dict[str, tuple[int, ...]]] = _nothing  # HF tensors the reference has and
    # ved does not use (ViT's pooler), by name, with shapes: written so that transformers finds them
    image_processor: str = "ViTImageProcessor"  # the processor class a new (preset) encoder gets


@dataclass(frozen=True, kw_only=True)
class DecoderFamily(Family):
    """A text decoder with cross-attention (or a model `ved compose` turns into one)."""

    head: str  # HF name of the LM head's projection weight (a saved copy of a tied one is not "left out")
    tokens: TokenSet  # the special tokens its tokenizers use (processing/special_tokens.py)
    start: str = "bos"  # the role of the token a caption starts with (decoder_start_token_id)
    end: str = "eos"  # the role of the token that ends it
    tokenizer: str | None = None  # the tokenizer family of a folder whose tokenizer_config.json names no class
    copies: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # HF name -> other names a source may
    # hold it under (BART's token embeddings, shared with its encoder as `model.shared`)
    as_decoder: Callable[..., Any] | None = None  # (config, state) -> those of a family ved reads (DistilBERT's)
    reads_encoder_width: bool = False  # declares the width its cross-attention reads: composed to read the
    # encoder's features directly, as published checkpoints of the family do (TrOCR)
    cache_by_encoder_layers: bool = False  # transformers sizes the decoder's cache by encoder_layers (BART)
    note: str | None = None  # what `ved compose` tells about a decoder of this family


def read_config(families: Mapping[str, Family], d: Any, where: str | None, section: str) -> Any:
    """The config of section `d` (of config.json), read by the record of its model_type in `families` with its
    aliases resolved, every field checked (ConfigFieldError names `section.key`)."""
    if not isinstance(d, dict):
        raise ConfigFieldError(f"{section} must be a JSON object, got {show(d)}", where, "", section)
    kind = d.get("model_type")
    if kind not in families:
        raise ModelError(f"unsupported {section} model_type '{kind}' (supported: {', '.join(sorted(families))})",
                         where)  # fmt: skip
    record = families[kind]
    return record.read(record.resolve_aliases(d), where, section)  # type: ignore[misc]


def discover(package: str, path: Iterable[str]) -> dict[str, Family]:
    """model_type -> record, from the `RECORDS` of every module of `package` (a package's `__name__` and
    `__path__`), in module-name order; a model_type claimed twice is a programming error."""
    found: dict[str, Family] = {}
    for info in sorted(pkgutil.iter_modules(path), key=lambda m: m.name):
        module = importlib.import_module(f"{package}.{info.name}")
        for record in getattr(module, "RECORDS", ()):
            if record.model_type in found:
                raise AssertionError(f"model_type {record.model_type} has two records ({package}.{info.name})")
            found[record.model_type] = record
    return found


@dataclass(frozen=True)
class SizeKeys:
    """The config keys a family keeps the sizes every Transformer has under: BERT's names by default (ViT, BEiT,
    BERT, RoBERTa, ELECTRA)."""

    width: str = "hidden_size"
    heads: str = "num_attention_heads"
    layers: str = "num_hidden_layers"
    mlp: str = "intermediate_size"
    activation: str = "hidden_act"
    eps: str | None = "layer_norm_eps"  # None: fixed (fairseq families use nn.LayerNorm's default)
    dropout: str = "hidden_dropout_prob"
    attn_dropout: str = "attention_probs_dropout_prob"

    def names(self) -> tuple[str, ...]:
        keys = (self.width, self.heads, self.layers, self.mlp, self.activation, self.eps, self.dropout,
                self.attn_dropout)  # fmt: skip
        return tuple(k for k in keys if k is not None)


GPT2_SIZES = SizeKeys("n_embd", "n_head", "n_layer", "n_inner", "activation_function", "layer_norm_epsilon",
                      "resid_pdrop", "attn_pdrop")  # fmt: skip
FAIRSEQ_SIZES = SizeKeys("d_model", "decoder_attention_heads", "decoder_layers", "decoder_ffn_dim",
                         "activation_function", None, "dropout", "attention_dropout")  # fmt: skip


def read_sizes(
    f: Fields,
    keys: SizeKeys = SizeKeys(),
    *,
    width: int = 768,
    heads: int = 12,
    layers: int = 12,
    mlp: int | None = 3072,
    activation: str = "gelu",
    eps: float = 1e-12,
    dropout: float = 0.1,
    attn_dropout: float = 0.1,
) -> dict[str, Any]:
    """Width, heads (which must divide it), layers, MLP width, activation, LayerNorm epsilon and dropouts, each
    checked, as EncoderConfig and DecoderConfig name them. The defaults are the family's base model's; `mlp` None:
    the key is optional and 4 x width when absent (GPT-2's n_inner)."""
    c, h = f.count(keys.width, width), f.count(keys.heads, heads)
    f.divides(keys.width, c, keys.heads, h)
    return dict(
        hidden_size=c,
        num_layers=f.layers(keys.layers, layers),
        num_heads=h,
        intermediate_size=f.count(keys.mlp, mlp) if mlp is not None else f.optional_count(keys.mlp) or 4 * c,
        activation=f.activation(keys.activation, activation),
        layer_norm_eps=f.eps(keys.eps, eps) if keys.eps is not None else eps,
        dropout=f.fraction(keys.dropout, dropout),
        attn_dropout=f.fraction(keys.attn_dropout, attn_dropout),
    )
