"""The optimizer and learning-rate schedule `ved train` uses: AdamW with decoupled weight decay, warm-up then decay.

Weight decay applies to matrices only (linear and embedding weights, position tables, class tokens); biases and
normalisation weights -- every parameter with fewer than two dimensions -- are not decayed, as is usual for
Transformers. The schedule is a pure function of the step, computed as transformers'
`get_{linear,cosine,constant}_schedule_with_warmup` do, so resuming needs nothing but the step count.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import OptionError, option

SCHEDULES = ("linear", "cosine", "constant")


def lr_factor(step: int, warmup: int, total: int, schedule: str = "linear") -> float:
    """Multiplier of the base learning rate for the update made after `step` updates (0 for the first).

    Warm-up rises linearly from 0 over `warmup` steps; then `linear` falls to 0 at `total`, `cosine` follows half a
    cosine down to 0 at `total`, `constant` stays at 1."""
    if schedule not in SCHEDULES:
        raise OptionError(f"unknown schedule '{schedule}' (use {', '.join(SCHEDULES)})", option("schedule"))
    if step < warmup:
        return step / max(1, warmup)
    if schedule == "constant":
        return 1.0
    if schedule == "linear":
        return max(0.0, (total - step) / max(1, total - warmup))
    progress = (step - warmup) / max(1, total - warmup)
    return max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress)))


def decays(param: nn.Parameter) -> bool:
    """Whether weight decay applies: matrices yes; biases and norm weights (1-D and scalar parameters) no."""
    return param.dim() >= 2


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """The trainable parameters in two AdamW groups, in the model's parameter order: decayed, then not decayed."""
    decayed, kept = [], []
    for param in model.parameters():  # tied parameters appear once
        if param.requires_grad:
            (decayed if decays(param) else kept).append(param)
    return [
        {"params": decayed, "weight_decay": weight_decay},
        {"params": kept, "weight_decay": 0.0},
    ]


def make_optimizer(model: nn.Module, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW (betas 0.9/0.999, eps 1e-8, as transformers' Trainer) over the trainable parameters."""
    groups = param_groups(model, weight_decay)
    if not any(group["params"] for group in groups):
        raise OptionError("nothing to train: every parameter is frozen", option("freeze_encoder"))
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.999), eps=1e-8)
