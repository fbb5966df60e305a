"""Building blocks shared by every encoder and decoder family: attention, MLP, the block, and the KV cache."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .errors import ModelError

ACTIVATIONS = {
    "gelu": F.gelu,
    "gelu_new": lambda x: F.gelu(x, approximate="tanh"),
    "gelu_pytorch_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "gelu_fast": lambda x: F.gelu(x, approximate="tanh"),
    "relu": F.relu,
    "silu": F.silu,
    "swish": F.silu,
    "quick_gelu": lambda x: x * torch.sigmoid(1.702 * x),
    "tanh": torch.tanh,
}


def activation(name: str):
    """The activation function a config names; ModelError for one ved does not know."""
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ModelError(f"unsupported activation '{name}' (known: {', '.join(sorted(ACTIVATIONS))})") from None


class KVCache:
    """Self-attention keys and values of every layer, preallocated for `max_len` positions.

    `update` writes a layer's new keys/values at the current position and returns everything so far; `advance` moves
    the position once all layers have written. Rows are (image x group): `reorder` makes row r continue old row
    index[r] (beam search), `select` keeps some rows only (decoding drops rows that are done).

    A static cache (`static=True`, for CUDA graphs: generation/graphs.py) never changes a shape or an address: the
    position also lives on the device (`pos_t`), a step writes there and attends to all `max_len` positions with
    `visible()` masking the ones not written yet, and `reorder` gathers in place. It takes one token per step.
    """

    def __init__(self, layers: int, rows: int, heads: int, head_dim: int, max_len: int, dtype, device,
                 static: bool = False):  # fmt: skip
        shape = (layers, rows, heads, max_len, head_dim)
        self.k = torch.zeros(shape, dtype=dtype, device=device)
        self.v = torch.zeros(shape, dtype=dtype, device=device)
        self._spare: tuple[Tensor, Tensor] | None = None  # reorder writes here, then the two swap
        self.pos = 0
        self.max_len = max_len
        self.static = static
        self.pos_t = torch.zeros(1, dtype=torch.long, device=device) if static else None  # (1,) the position, on device
        self._slots = torch.arange(max_len, device=device) if static else None

    def update(self, layer: int, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        end = self.pos + k.shape[2]
        if end > self.max_len:
            raise ValueError(f"KV cache holds {self.max_len} positions, asked for {end}")
        if self.static:  # one token, written where the device-side position says; every slot is returned
            self.k[layer].index_copy_(2, self.pos_t, k)
            self.v[layer].index_copy_(2, self.pos_t, v)
            return self.k[layer], self.v[layer]
        self.k[layer, :, :, self.pos : end] = k
        self.v[layer, :, :, self.pos : end] = v
        return self.k[layer, :, :, :end], self.v[layer, :, :, :end]

    def visible(self) -> Tensor:
        """Static cache: (1, 1, 1, max_len) True at the positions written so far, this step's included."""
        return (self._slots <= self.pos_t)[None, None, None]

    def advance(self, steps: int) -> None:
        self.pos += steps
        if self.static:
            self.pos_t.add_(steps)

    def rewind(self, pos: int) -> None:
        """Back to position `pos` (what was written after it is overwritten by the next steps)."""
        self.pos = pos
        if self.static:
            self.pos_t.fill_(pos)

    def reorder(self, index: Tensor) -> None:
        """Row r continues old row index[r]: the filled positions are gathered once, into a spare buffer that then
        becomes the cache (no copy back; a static cache copies back, keeping its addresses); an unchanged order
        costs nothing."""
        unchanged = torch.arange(index.shape[0], device=index.device)
        if index.shape[0] == self.k.shape[1] and bool((index == unchanged).all()):
            return
        if self._spare is None or self._spare[0].shape != self.k.shape:
            self._spare = (torch.empty_like(self.k), torch.empty_like(self.v))
        k, v = self._spare
        torch.index_select(self.k[:, :, :, : self.pos], 1, index, out=k[:, :, :, : self.pos])
        torch.index_select(self.v[:, :, :, : self.pos], 1, index, out=v[:, :, :, : self.pos])
        if self.static:
            self.k[:, :, :, : self.pos].copy_(k[:, :, :, : self.pos])
            self.v[:, :, :, : self.pos].copy_(v[:, :, :, : self.pos])
            return
        self._spare = (self.k, self.v)
        self.k, self.v = k, v

    def select(self, rows: Tensor) -> None:
        """Keep only `rows` (in that order): later steps compute nothing for the others."""
        if self.static:
            raise ValueError("a static KV cache keeps its rows")
        self.k = self.k.index_select(1, rows)
        self.v = self.v.index_select(1, rows)
        self._spare = None


@dataclass
class DecoderCache:
    """Everything a decoding step needs besides the new tokens.

    `cross` holds each layer's cross-attention keys/values, (images, heads, N, head_dim), computed once per image;
    `group` rows of the self-attention cache (beams or return sequences) share one image's entry.
    """

    self_kv: KVCache
    cross: list[tuple[Tensor, Tensor]]
    group: int = 1

    @property
    def pos(self) -> int:
        return self.self_kv.pos

    def reorder(self, index: Tensor) -> None:
        self.self_kv.reorder(index)

    def select(self, images: Tensor) -> None:
        """Keep only these images (in that order) and their `group` rows each; the rest are done."""
        rows = (images[:, None] * self.group + torch.arange(self.group, device=images.device)).reshape(-1)
        self.self_kv.select(rows)
        self.cross = [(k.index_select(0, images), v.index_select(0, images)) for k, v in self.cross]


FEW_QUERIES = 16  # attention over this many queries or fewer, without gradients, runs as two matmuls and a softmax
SHORT_KEYS = 256  # CPU training: attention over this many keys or fewer runs as matmuls too (any length in bf16/fp16)


def attention(q: Tensor, k: Tensor, v: Tensor, scale: float, mask: Tensor | None = None, dropout: float = 0.0):
    """softmax(q k^T * scale) v: q (..., T, D), k and v (..., S, D) -> (..., T, D); mask: True where a query may attend
    (bool), or added to the scores (float).

    Two matmuls and a softmax where they beat the fused kernel: a decoding step (one query per row, a few with beams
    folded in, nothing masked), and training on a CPU, where the fused kernel's backward is slow (fp32 over 160 keys
    1.1x, bf16 3.7x slower than the matmuls, forward and backward, on AMX; over 578 keys fp32 it wins, 43 vs 66 ms).
    Elsewhere (inference over long queries, CUDA) the fused kernel.
    """
    step = mask is None and q.shape[-2] <= FEW_QUERIES and dropout == 0.0 and not torch.is_grad_enabled()
    cpu_training = q.device.type == "cpu" and q.requires_grad
    if step or (cpu_training and (q.dtype != torch.float32 or k.shape[-2] <= SHORT_KEYS)):
        w = torch.matmul(q, k.transpose(-1, -2)).mul_(scale)  # (..., T, S)
        if mask is not None and mask.dtype == torch.bool:
            w = w.masked_fill(~mask, torch.finfo(w.dtype).min)
        elif mask is not None:  # a float mask is added (BEiT's relative position bias)
            w = w + mask
        w = w.softmax(dim=-1)
        return torch.matmul(F.dropout(w, dropout) if dropout else w, v)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale, dropout_p=dropout)


def split_heads(x: Tensor, heads: int) -> Tensor:
    """(B, T, H*D) -> (B, H, T, D)"""
    b, t, _ = x.shape
    return x.view(b, t, heads, -1).transpose(1, 2)


def merge_heads(x: Tensor) -> Tensor:
    """(B, H, T, D) -> (B, T, H*D)"""
    b, h, t, d = x.shape
    return x.transpose(1, 2).reshape(b, t, h * d)


class SelfAttention(nn.Module):
    """Multi-head self-attention with fused q/k/v; causality comes from the mask the caller passes."""

    def __init__(
        self,
        dim: int,
        heads: int,
        qkv_bias: bool = True,
        out_bias: bool = True,
        scale: float | None = None,
        dropout: float = 0.0,
    ):
        super().__init__()
        self.heads = heads
        self.scale = scale if scale is not None else 1.0 / math.sqrt(dim // heads)
        self.dropout = dropout  # on the attention probabilities, in training
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.out = nn.Linear(dim, dim, bias=out_bias)

    def forward(self, x: Tensor, mask: Tensor | None = None, cache: KVCache | None = None, layer: int = 0) -> Tensor:
        q, k, v = (split_heads(t, self.heads) for t in self.qkv(x).chunk(3, dim=-1))  # (B, H, T, D) each
        if cache is not None:
            k, v = cache.update(layer, k, v)  # (B, H, past + T, D)
        y = attention(q, k, v, self.scale, mask, self.dropout if self.training else 0.0)
        return self.out(merge_heads(y))  # (B, T, C)


class CrossAttention(nn.Module):
    """Queries from the text, keys/values from the image features (computed once per image, see `project`)."""

    def __init__(self, dim: int, heads: int, kv_dim: int, bias: bool = True, dropout: float = 0.0):
        super().__init__()
        self.heads = heads
        self.scale = 1.0 / math.sqrt(dim // heads)
        self.dropout = dropout  # on the attention probabilities, in training
        self.q = nn.Linear(dim, dim, bias=bias)
        self.kv = nn.Linear(kv_dim, 2 * dim, bias=bias)
        self.out = nn.Linear(dim, dim, bias=bias)

    def project(self, memory: Tensor) -> tuple[Tensor, Tensor]:
        """(images, N, kv_dim) -> keys, values (images, H, N, D), each contiguous: made once per image and read at
        every decoding step, where a strided copy would be gathered again each time (`attention`'s matmuls)."""
        k, v = self.kv(memory).chunk(2, dim=-1)
        return split_heads(k, self.heads).contiguous(), split_heads(v, self.heads).contiguous()

    def forward(self, x: Tensor, k: Tensor, v: Tensor, group: int = 1) -> Tensor:
        q = split_heads(self.q(x), self.heads)  # (images * group, H, T, D)
        rows, h, t, d = q.shape
        # The `group` rows of one image become extra query positions of that image: no copy of k/v per row.
        q = q.view(rows // group, group, h, t, d).transpose(1, 2).reshape(rows // group, h, group * t, d)
        y = attention(q, k, v, self.scale, dropout=self.dropout if self.training else 0.0)  # (images, H, group * T, D)
        y = y.view(rows // group, h, group, t, d).transpose(1, 2).reshape(rows, h, t, d)
        return self.out(merge_heads(y))  # (rows, T, C)


class LayerScale(nn.Module):
    """A learned per-channel factor on a residual branch (BEiT's lambda_1 / lambda_2, CaiT's gamma)."""

    def __init__(self, dim: int):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        return self.gamma * x


class DropPath(nn.Module):
    """Stochastic depth: in training, drop a residual branch for whole samples with probability p (the kept ones
    scaled by 1 / (1 - p)), as BEiT and Swin train. Identity in eval mode."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
        return x * mask / keep


def drop_path_rates(rate: float, blocks: int) -> list[float]:
    """Stochastic-depth probability per block, rising linearly from 0 to `rate` over the encoder."""
    return [rate * i / max(blocks - 1, 1) for i in range(blocks)]


class MLP(nn.Module):
    def __init__(self, dim: int, hidden: int, act: str, bias: bool = True, dropout: float = 0.0):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden, bias=bias)
        self.act = activation(act)
        self.drop = nn.Dropout(dropout)  # after the activation (BART's activation_dropout)
        self.fc2 = nn.Linear(hidden, dim, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.drop(self.act(self.fc1(x))))


class Block(nn.Module):
    """One Transformer layer: self-attention, optional cross-attention, MLP; pre- or post-norm.

    Encoders use it without cross-attention; decoders with it. Families differ only in the arguments.
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        mlp_dim: int,
        act: str,
        eps: float,
        pre_norm: bool = True,
        cross_dim: int | None = None,
        bias: bool = True,
        qkv_bias: bool | None = None,
        attn_scale: float | None = None,
        layer_scale: bool = False,
        dropout: float = 0.0,
        attn_dropout: float = 0.0,
        act_dropout: float = 0.0,
        drop_path: float = 0.0,
    ):
        super().__init__()
        self.pre_norm = pre_norm
        self.drop_path = DropPath(drop_path)  # stochastic depth on the residual branches (pre-norm encoders)
        self.drop = nn.Dropout(dropout)  # on each sublayer's output, before the residual sum (training only)
        self.ln_self = nn.LayerNorm(dim, eps=eps)
        self.self_attn = SelfAttention(
            dim, heads, bias if qkv_bias is None else qkv_bias, bias, attn_scale, dropout=attn_dropout
        )
        if cross_dim is not None:
            self.ln_cross = nn.LayerNorm(dim, eps=eps)
            self.cross_attn = CrossAttention(dim, heads, cross_dim, bias, dropout=attn_dropout)
        else:
            self.cross_attn = None
        self.ln_mlp = nn.LayerNorm(dim, eps=eps)
        self.mlp = MLP(dim, mlp_dim, act, bias, dropout=act_dropout)
        # Pre-norm encoders (BEiT) may scale each residual branch per channel before adding it.
        if layer_scale and not pre_norm:
            raise ValueError("layer scale is only defined for pre-norm blocks")
        self.ls_self = LayerScale(dim) if layer_scale else nn.Identity()
        self.ls_mlp = LayerScale(dim) if layer_scale else nn.Identity()

    def forward(
        self,
        x: Tensor,
        mask: Tensor | None = None,
        cache: KVCache | None = None,
        layer: int = 0,
        cross_kv: tuple[Tensor, Tensor] | None = None,
        group: int = 1,
    ) -> Tensor:
        drop, skip = self.drop, self.drop_path
        if self.pre_norm:
            x = x + skip(self.ls_self(drop(self.self_attn(self.ln_self(x), mask, cache, layer))))  # (B, T, C)
            if self.cross_attn is not None:
                x = x + drop(self.cross_attn(self.ln_cross(x), *cross_kv, group))
            return x + skip(self.ls_mlp(drop(self.mlp(self.ln_mlp(x)))))
        x = self.ln_self(x + drop(self.self_attn(x, mask, cache, layer)))
        if self.cross_attn is not None:
            x = self.ln_cross(x + drop(self.cross_attn(x, *cross_kv, group)))
        return self.ln_mlp(x + drop(self.mlp(x)))


def causal_mask(t: int, past: int, padding: Tensor | None = None, device=None) -> Tensor | None:
    """Boolean mask (B or 1, 1, T, past + T): True where a query may attend. None when nothing is masked."""
    if t == 1 and padding is None:
        return None
    s = past + t
    i = torch.arange(t, device=device)[:, None]
    j = torch.arange(s, device=device)[None, :]
    mask = (j <= i + past)[None, None]  # (1, 1, T, S)
    if padding is not None:
        mask = mask & padding[:, None, None, :s].bool()
    return mask
