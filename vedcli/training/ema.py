"""An exponential moving average of the model's weights (`--ema-decay`), the smoother model to evaluate and keep.

After every optimizer update each average moves towards the weights: avg += (1 - d) * (w - avg), with d rising from
0 towards the decay asked for as updates accumulate, d = min(decay, (1 + n) / (10 + n)), so that an average started
late (or on --resume of a run that had none) is not held back by the weights it started from. With it on,
evaluation and RUN/best use the averaged weights; RUN/last keeps the trained weights (what training continues from)
and the averages in its training state.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

STATE_KEY = "ema"  # its entry in TrainingState.heads


class WeightAverage:
    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.names = [name for name, p in model.named_parameters() if p.requires_grad]
        params = dict(model.named_parameters())
        self.params = [params[name] for name in self.names]
        self.averages = [p.detach().float().clone() for p in self.params]
        self.updates = 0

    def rate(self) -> float:
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self) -> None:
        """Move each average towards its weight (after an optimizer update)."""
        weight = 1.0 - self.rate()
        torch._foreach_lerp_(self.averages, [p.detach().float() for p in self.params], weight)
        self.updates += 1

    @contextmanager
    def swapped_in(self):
        """The model holds the averaged weights inside the block, its trained ones again after it."""
        kept = [p.detach().clone() for p in self.params]
        with torch.no_grad():
            for p, average in zip(self.params, self.averages, strict=True):
                p.copy_(average)
        try:
            yield
        finally:
            with torch.no_grad():
                for p, trained in zip(self.params, kept, strict=True):
                    p.copy_(trained)

    def state_dict(self) -> dict[str, Any]:
        return {"updates": self.updates, "averages": dict(zip(self.names, self.averages, strict=True))}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        averages = state["averages"]
        if set(averages) != set(self.names):
            raise ValueError("the saved weight averages do not match the model's parameters")
        self.averages = [averages[name].float().clone() for name in self.names]
        self.updates = int(state["updates"])
