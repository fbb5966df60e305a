"""TEST ONLY: a transformers VisionEncoderDecoderModel behind the step interface that
`vedcli.generation.decoding` drives.

It lets the decoding engine be checked on the reference's own logits, independently of ved's model:

    enc = stepper.encode(pixel_values)                # encoder (+ enc_to_dec_proj), (B, N, C)
    cache = stepper.new_cache(enc, group=G, max_len=L)
    logits = stepper.decode_step(tokens, cache)       # transformers decoder with a DynamicCache
    cache.reorder(index)
    cache.select(images)                              # only these images' rows go on
"""

from __future__ import annotations

import torch
from transformers.cache_utils import DynamicCache, EncoderDecoderCache


class HFStepCache:
    """Encoder states repeated per row (as transformers' generate does) and the decoder's KV cache."""

    def __init__(self, enc_rows: torch.Tensor, kv: EncoderDecoderCache, group: int = 1):
        self.enc_rows = enc_rows  # (B*G, N, C)
        self.kv = kv
        self.group = group
        self.reorders = 0  # how many times the engine reordered this cache (tests look at it)

    def reorder(self, index: torch.Tensor) -> None:
        # Rows only move inside their image's group, so the repeated encoder states stay valid.
        self.kv.reorder_cache(index)
        self.reorders += 1

    def select(self, images: torch.Tensor) -> None:
        """Keep only these images' rows (the engine drops images that are done)."""
        rows = (images[:, None] * self.group + torch.arange(self.group)).reshape(-1)
        self.kv.reorder_cache(rows)  # index_select on the batch dimension, self- and cross-attention caches alike
        self.enc_rows = self.enc_rows[rows]


class HFStepper:
    """Adapter: transformers VisionEncoderDecoderModel -> encode / new_cache / decode_step."""

    def __init__(self, model):
        self.model = model.eval()
        self.calls: list[tuple[int, ...]] = []  # token shapes passed to decode_step
        self.caches: list[HFStepCache] = []  # every cache handed out

    @torch.no_grad()
    def encode(self, pixel_values: torch.Tensor) -> torch.Tensor:
        model = self.model
        hidden = model.encoder(pixel_values=pixel_values).last_hidden_state
        needs_projection = (
            model.encoder.config.hidden_size != model.decoder.config.hidden_size
            and getattr(model.decoder.config, "cross_attention_hidden_size", None) is None
        )
        return model.enc_to_dec_proj(hidden) if needs_projection else hidden

    def new_cache(self, enc: torch.Tensor, group: int, max_len: int) -> HFStepCache:
        config = self.model.config.get_text_config(decoder=True)
        kv = EncoderDecoderCache(DynamicCache(config=config), DynamicCache(config=config))
        cache = HFStepCache(enc.repeat_interleave(group, dim=0), kv, group)
        self.caches.append(cache)
        return cache

    @torch.no_grad()
    def decode_step(self, tokens: torch.Tensor, cache: HFStepCache) -> torch.Tensor:
        self.calls.append(tuple(tokens.shape))
        out = self.model.decoder(
            input_ids=tokens,
            encoder_hidden_states=cache.enc_rows,
            past_key_values=cache.kv,
            use_cache=True,
            return_dict=True,
        )
        cache.kv = out.past_key_values
        return out.logits
