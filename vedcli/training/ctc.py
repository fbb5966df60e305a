"""An auxiliary CTC loss on the encoder, for training (`ved train --ctc-weight W`); never part of a checkpoint.

A small head (LayerNorm, then Linear from the encoder's width to the decoder's vocabulary plus one class, the CTC
blank: index `vocab_size`) reads the encoder's output sequence and is trained with the CTC loss against the target's
text ids (the labels without padding and without special tokens: start, pad, eos, bos/cls/sep, ...; an unknown-token
id stays, it stands for text). Frames are the encoder's patch tokens without its prefix (class) tokens; when they
form the config's patch grid (ViT, DeiT, BEiT at their image size) they are read column by column, left to right, so
that a text line runs along them; otherwise (Swin's merged grid) in the encoder's own order. A target that cannot
fit the frames (CTC needs a frame per id, and a blank between repeated ids) adds nothing (`zero_infinity`).

`WithCTC` holds the model and the head as one module, so that DistributedDataParallel wraps (and all-reduces) both
and the encoder runs once per batch for both losses. The head's weights live in RUN/last/training_state.pt only.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..model import VisionEncoderDecoder
from ..processing.tokenizer import Tokenizer
from .data import IGNORE_INDEX

STATE_KEY = "ctc"  # the head's entry in TrainingState.heads


class CTCHead(nn.Module):
    """Encoder features (B, P + N, C) -> per-frame logits (B, N, V + 1); the last class is the blank."""

    def __init__(self, width: int, vocab_size: int, prefix: int = 0, grid: tuple[int, int] | None = None):
        super().__init__()
        self.prefix = prefix  # class / distillation tokens, left out
        self.grid = grid  # (rows, columns) of the patch tokens, read column by column when they form it
        self.blank = vocab_size
        self.norm = nn.LayerNorm(width)
        self.proj = nn.Linear(width, vocab_size + 1)

    def forward(self, features: Tensor) -> Tensor:
        x = features[:, self.prefix :]  # (B, N, C)
        if self.grid is not None and self.grid[0] > 1 and x.shape[1] == self.grid[0] * self.grid[1]:
            b, _, c = x.shape
            x = x.reshape(b, *self.grid, c).transpose(1, 2).reshape(b, -1, c)  # column by column
        return self.proj(self.norm(x))  # (B, N, V + 1)


def new_head(model: VisionEncoderDecoder, seed: int) -> CTCHead:
    """A head for `model`'s encoder, initialised from `seed` alone (the global random streams are left alone):
    weights normal(0, 0.02), biases 0."""
    enc = model.config.encoder
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        head = CTCHead(enc.hidden_size, model.config.decoder.vocab_size, enc.num_prefix_tokens, enc.grid)
        nn.init.normal_(head.proj.weight, std=0.02)
        nn.init.zeros_(head.proj.bias)
    return head.to(model.device)


@dataclass
class CTCOutput:
    logits: Tensor  # (B, T, V) the decoder's, teacher-forced
    ctc_logits: Tensor  # (B, N, V + 1) the head's, one row per encoder frame


class WithCTC(nn.Module):
    """The model and the CTC head as one module: one encoder pass feeds the decoder and the head."""

    def __init__(self, model: VisionEncoderDecoder, head: CTCHead):
        super().__init__()
        self.model = model
        self.head = head

    def forward(self, pixel_values: Tensor, decoder_input_ids: Tensor) -> CTCOutput:
        model = self.model
        features = model.encoder.forward_features(pixel_values.to(model.device, model.dtype))  # (B, P + N, C)
        memory = model.enc_to_dec_proj(features) if model.enc_to_dec_proj is not None else features  # as encode()
        logits = model(decoder_input_ids=decoder_input_ids, encoder_outputs=memory).logits
        return CTCOutput(logits, self.head(features))


def special_ids(tokenizer: Tokenizer, *ids: int | None) -> list[int]:
    """Ids that are not text: the tokenizer's special tokens (its unknown token aside) and `ids` (start, pad, eos)."""
    special = {tokenizer.token_id(name) for name in tokenizer.special_tokens}
    special |= {i for i, token in tokenizer.backend.get_added_tokens_decoder().items() if token.special}
    special.discard(tokenizer.unk_token_id)
    special |= set(ids)
    return sorted(i for i in special if i is not None)


def targets(labels: Tensor, special: Tensor) -> tuple[Tensor, Tensor]:
    """(B, T) labels -> the text ids of all rows concatenated, and each row's count (B,)."""
    keep = (labels != IGNORE_INDEX) & ~torch.isin(labels, special)
    return labels[keep], keep.sum(dim=1)


def ctc_loss(logits: Tensor, labels: Tensor, special: Tensor, blank: int) -> Tensor:
    """The CTC loss of (B, N, V + 1) frame logits against `labels`' text ids, summed over the rows, in float32."""
    flat, lengths = targets(labels, special.to(labels.device))
    log_probs = F.log_softmax(logits.float(), dim=-1).transpose(0, 1)  # (N, B, V + 1)
    frames = torch.full((logits.shape[0],), logits.shape[1], dtype=torch.long, device=logits.device)
    return F.ctc_loss(log_probs, flat, frames, lengths, blank=blank, reduction="sum", zero_infinity=True)
