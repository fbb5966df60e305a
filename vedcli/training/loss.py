"""The training loss: cross-entropy summed over the target tokens, as the reference computes it."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from ..model import VisionEncoderDecoder
from .data import IGNORE_INDEX


def token_loss(logits: Tensor, labels: Tensor, label_smoothing: float = 0.0) -> Tensor:
    """Cross-entropy summed over the target tokens (labels != -100), in float32."""
    return F.cross_entropy(
        logits.float().reshape(-1, logits.shape[-1]),
        labels.reshape(-1),
        ignore_index=IGNORE_INDEX,
        reduction="sum",
        label_smoothing=label_smoothing,
    )


def batch_loss(model: VisionEncoderDecoder, batch: dict[str, Tensor], label_smoothing: float = 0.0) -> Tensor:
    """Mean loss per target token of one batch: the reference's `forward(pixel_values, labels).loss`."""
    labels = batch["labels"].to(model.device)
    logits = model(pixel_values=batch["pixel_values"], decoder_input_ids=model.shift_right(labels)).logits
    return token_loss(logits, labels, label_smoothing) / (labels != IGNORE_INDEX).sum()
