"""Configs as dataclasses: one for the image encoder, one for the text decoder, one for the pair.

Each family module (`encoders/vit.py`, `decoders/gpt2.py`, ...) translates its Hugging Face `config.json` section into
these; the original dict is kept in `hf` so a checkpoint can be written back unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class EncoderConfig:
    """A vision Transformer that turns pixels into a sequence of features."""

    family: str = "vit"  # module in vedcli/encoders that builds it
    hidden_size: int = 768  # feature width C of the output (B, N, C)
    num_layers: int = 12
    num_heads: int = 12
    intermediate_size: int = 3072  # MLP width
    activation: str = "gelu"
    layer_norm_eps: float = 1e-12
    image_size: tuple[int, int] = (224, 224)  # (height, width) the position embeddings were trained for
    patch_size: tuple[int, int] = (16, 16)
    num_channels: int = 3
    qkv_bias: bool = True
    num_prefix_tokens: int = 1  # class token (ViT); class + distillation tokens (DeiT)
    absolute_positions: bool = True  # learned position embeddings added to the tokens (optional in BEiT)
    relative_bias: bool = False  # a relative position bias table in every layer (BEiT)
    shared_relative_bias: bool = False  # one relative position bias table for all layers (BEiT)
    layer_scale: bool = False  # per-channel factors on each residual branch (BEiT lambda_1 / lambda_2)
    final_norm: bool = True  # LayerNorm on the output sequence (BEiT with mean pooling has none)
    dropout: float = 0.0  # on embeddings and sublayer outputs, in training (hidden_dropout_prob)
    attn_dropout: float = 0.0  # on attention probabilities, in training
    drop_path: float = 0.0  # stochastic depth of the last block (rising from 0 over the blocks), in training
    hf: dict[str, Any] = field(default_factory=dict, repr=False)  # the config.json section it came from

    def __post_init__(self) -> None:
        self.image_size = _pair(self.image_size)
        self.patch_size = _pair(self.patch_size)
        self.head_dim = self.hidden_size // self.num_heads
        self.grid = (self.image_size[0] // self.patch_size[0], self.image_size[1] // self.patch_size[1])
        self.num_patches = self.grid[0] * self.grid[1]


@dataclass
class DecoderConfig:
    """A causal language model with cross-attention. Families differ in the fields below, not in wiring."""

    family: str = "gpt2"  # module in vedcli/decoders that maps its weights
    vocab_size: int = 50257
    hidden_size: int = 768
    embedding_size: int | None = None  # width of token/position embeddings and the mlm head (None: hidden_size)
    num_layers: int = 12
    num_heads: int = 12
    intermediate_size: int = 3072
    activation: str = "gelu_new"
    layer_norm_eps: float = 1e-5
    max_positions: int = 1024  # learned position embeddings rows (without offset)
    positions: str = (
        "absolute"  # absolute: past + t; padded: counted past pad_token_id (RoBERTa); sinusoidal: padded, fixed table
    )
    position_offset: int = 0  # TrOCR/BART learned positions start at row 2
    pre_norm: bool = True  # GPT-2 normalises before each sublayer; BERT/TrOCR after the residual sum
    embed_scale: float = 1.0  # sqrt(hidden_size) when scale_embedding
    embed_norm: bool = False  # LayerNorm right after the embeddings (BERT, layernorm_embedding)
    type_vocab_size: int = 0  # BERT-style token type embeddings (row 0 is always added)
    final_norm: bool = False  # LayerNorm after the last block (GPT-2 ln_f)
    head: str = "linear"  # linear: one projection; mlm: dense -> act -> LayerNorm -> projection (BERT/RoBERTa)
    head_activation: str = "gelu"  # the mlm head's activation
    head_bias: bool = False
    tie_embeddings: bool = True  # output projection shares the token embedding matrix
    cross_attention_size: int | None = None  # width of encoder features the cross-attention reads (None: hidden_size)
    scale_attn_by_layer: bool = False  # GPT-2 scale_attn_by_inverse_layer_idx
    bias: bool = True  # biases in attention and MLP projections
    pad_token_id: int | None = None
    dropout: float = 0.0  # on sublayer outputs, in training
    embed_dropout: float = 0.0  # on the embeddings, in training
    attn_dropout: float = 0.0  # on attention probabilities, in training
    act_dropout: float = 0.0  # after the MLP activation, in training (BART's activation_dropout)
    hf: dict[str, Any] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.head_dim = self.hidden_size // self.num_heads
        if self.cross_attention_size is None:
            self.cross_attention_size = self.hidden_size
        if self.embedding_size is None:  # ELECTRA projects narrower embeddings up to hidden_size
            self.embedding_size = self.hidden_size

    @property
    def max_length(self) -> int:
        """The longest sequence (start token included) the position embeddings can place."""
        if self.positions == "padded":  # counted from pad_token_id + 1 inside the table of max_positions rows
            return self.max_positions - (self.pad_token_id or 0) - 1
        return self.max_positions


@dataclass
class ModelConfig:
    """The composite: an encoder, a decoder, and the special tokens that join them."""

    encoder: EncoderConfig
    decoder: DecoderConfig
    decoder_start_token_id: int | None = None
    pad_token_id: int | None = None
    eos_token_id: int | list[int] | None = None
    hf: dict[str, Any] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        # The reference adds a projection when the widths differ and the decoder does not declare its own.
        declared = self.decoder.hf.get("cross_attention_hidden_size")
        self.projection = self.encoder.hidden_size != self.decoder.hidden_size and declared is None
        if self.projection:
            self.decoder.cross_attention_size = self.decoder.hidden_size


def _pair(value: Any) -> tuple[int, int]:
    if isinstance(value, (list, tuple)):
        return int(value[0]), int(value[1])
    return int(value), int(value)
