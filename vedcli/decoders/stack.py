"""The text decoder every family shares: embeddings -> blocks with cross-attention -> LM head.

Families (gpt2.py, bert.py, trocr.py, bart.py, ...) only translate their config and weight names; the fields of
DecoderConfig select norms, positions, embedding width and heads here.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..config import DecoderConfig
from ..layers import Block, DecoderCache, KVCache, activation, causal_mask


def sinusoidal_table(rows: int, dim: int, padding_idx: int | None) -> Tensor:
    """fairseq/tensor2tensor positions: sin on the first half, cos on the second, zero row at padding_idx."""
    half = dim // 2
    freq = torch.exp(torch.arange(half, dtype=torch.float32) * -(math.log(10000) / (half - 1)))
    angles = torch.arange(rows, dtype=torch.float32)[:, None] * freq[None, :]
    table = torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)
    if dim % 2:
        table = torch.cat([table, torch.zeros(rows, 1)], dim=1)
    if padding_idx is not None:
        table[padding_idx] = 0
    return table


def embedding(rows: int, dim: int) -> nn.Embedding:
    """nn.Embedding(rows, dim), initialised as torch does except on the meta device (where checkpoints are built
    before loading): torch's normal_ on a meta tensor imports its compiler (torch._dynamo, seconds of start-up)."""
    weight = torch.empty(rows, dim)  # on the default device: meta while a model is built for loading
    if weight.device.type != "meta":
        nn.init.normal_(weight)
    return nn.Embedding(rows, dim, _weight=weight)


class TextDecoder(nn.Module):
    def __init__(self, cfg: DecoderConfig):
        super().__init__()
        self.cfg = cfg
        c, e = cfg.hidden_size, cfg.embedding_size  # e < c only for ELECTRA, whose embeddings are projected up
        self.embed = embedding(cfg.vocab_size, e)
        if cfg.positions == "sinusoidal":
            rows = cfg.max_positions + (cfg.pad_token_id or 0) + 1
            self.register_buffer("pos_table", sinusoidal_table(rows, e, cfg.pad_token_id), persistent=False)
            self.pos = None
        else:
            self.pos = embedding(cfg.max_positions + cfg.position_offset, e)
        self.token_type = embedding(cfg.type_vocab_size, e) if cfg.type_vocab_size else None
        self.embed_norm = nn.LayerNorm(e, eps=cfg.layer_norm_eps) if cfg.embed_norm else None
        self.embed_drop = nn.Dropout(cfg.embed_dropout)
        self.embed_proj = nn.Linear(e, c) if e != c else None
        self.blocks = nn.ModuleList(
            Block(
                c,
                cfg.num_heads,
                cfg.intermediate_size,
                cfg.activation,
                cfg.layer_norm_eps,
                pre_norm=cfg.pre_norm,
                cross_dim=cfg.cross_attention_size,
                bias=cfg.bias,
                attn_scale=1.0 / math.sqrt(cfg.head_dim) / (i + 1) if cfg.scale_attn_by_layer else None,
                dropout=cfg.dropout,
                attn_dropout=cfg.attn_dropout,
                act_dropout=cfg.act_dropout,
            )
            for i in range(cfg.num_layers)
        )
        self.final_norm = nn.LayerNorm(c, eps=cfg.layer_norm_eps) if cfg.final_norm else None
        if cfg.head == "mlm":  # the transform ends at the embedding width, so a tied projection fits
            self.head_dense = nn.Linear(c, e)
            self.head_act = activation(cfg.head_activation)
            self.head_norm = nn.LayerNorm(e, eps=cfg.layer_norm_eps)
        self.head = nn.Linear(e if cfg.head == "mlm" else c, cfg.vocab_size, bias=cfg.head_bias)
        if cfg.tie_embeddings:
            self.head.weight = self.embed.weight

    def init_buffers(self, device, dtype) -> None:
        """Recompute buffers that are not saved in checkpoints (after loading into a meta-device model)."""
        if self.pos is None:
            rows = self.cfg.max_positions + (self.cfg.pad_token_id or 0) + 1
            self.pos_table = sinusoidal_table(rows, self.cfg.embedding_size, self.cfg.pad_token_id).to(device)

    def positions(self, ids: Tensor, past: int | Tensor) -> Tensor:
        """(B, T) position ids of new tokens after `past` cached ones (a (1,) tensor: one token, a static cache; learned
        absolute positions take a decoding step's row in `embed_tokens` instead)."""
        if self.cfg.positions == "absolute":
            t = ids.shape[1]
            return torch.arange(past, past + t, device=ids.device)[None].expand_as(ids) + self.cfg.position_offset
        # padded / sinusoidal: count non-pad tokens from pad_token_id + 1; pad tokens sit at pad_token_id
        pad = self.cfg.pad_token_id
        real = ids.ne(pad).long()
        return (torch.cumsum(real, dim=1) + past) * real + pad

    def embed_tokens(self, ids: Tensor, past: int | Tensor) -> Tensor:
        x = self.embed(ids)  # (B, T, E)
        if self.cfg.embed_scale != 1.0:
            x = x * self.cfg.embed_scale
        if self.pos is not None and self.cfg.positions == "absolute" and ids.shape[1] == 1:  # a decoding step
            return self._embedded(x + self.pos.weight[past + self.cfg.position_offset])  # one row for every row
        pos = self.positions(ids, past)
        x = x + (self.pos_table[pos].to(x.dtype) if self.pos is None else self.pos(pos))
        return self._embedded(x)

    def _embedded(self, x: Tensor) -> Tensor:
        if self.token_type is not None:
            x = x + self.token_type.weight[0]
        if self.embed_norm is not None:
            x = self.embed_norm(x)
        x = self.embed_drop(x)
        return self.embed_proj(x) if self.embed_proj is not None else x  # (B, T, C)

    def cross_kv(self, memory: Tensor) -> list[tuple[Tensor, Tensor]]:
        """Each layer's cross-attention keys/values for the image features (images, N, C_enc)."""
        return [block.cross_attn.project(memory) for block in self.blocks]

    def logits(self, x: Tensor) -> Tensor:
        if self.final_norm is not None:
            x = self.final_norm(x)
        if self.cfg.head == "mlm":
            x = self.head_norm(self.head_act(self.head_dense(x)))
        return self.head(x)  # (B, T, V)

    def forward(
        self,
        ids: Tensor,
        cross: list[tuple[Tensor, Tensor]],
        cache: KVCache | None = None,
        group: int = 1,
        attention_mask: Tensor | None = None,
    ) -> Tensor:
        """(B, T) token ids -> (B, T, V) logits. With a cache, `ids` are the tokens after the cached ones."""
        past = cache.pos if cache is not None else 0
        t = ids.shape[1]
        if cache is not None and cache.static:  # one token at the device-side position; no shape depends on it
            if t != 1 or attention_mask is not None:
                raise ValueError("a static KV cache takes one token per step and no attention mask")
            x, mask = self.embed_tokens(ids, cache.pos_t), cache.visible()
        else:
            x, mask = self.embed_tokens(ids, past), causal_mask(t, past, attention_mask, ids.device)
        for i, block in enumerate(self.blocks):
            x = block(x, mask, cache, i, cross[i], group)
        if cache is not None:
            cache.advance(t)
        return self.logits(x)

    def new_cache(self, memory: Tensor, group: int, max_len: int, static: bool = False) -> DecoderCache:
        cfg = self.cfg
        rows = memory.shape[0] * group
        kv = KVCache(cfg.num_layers, rows, cfg.num_heads, cfg.head_dim, max_len, memory.dtype, memory.device, static)
        return DecoderCache(kv, self.cross_kv(memory), group)
