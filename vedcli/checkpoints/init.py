"""How the reference initialises weights, by HF name: the generic cases here, each family's own in its record
(`inits`, `padded`): the same distributions, not the same numbers. `ved compose` uses it for new layers and
presets, `ved convert` for tensors a source lacks."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from ..encoders.swin import relative_index as swin_relative_index
from ..registry import family

Init = Callable[[Tensor, dict[str, Any], torch.Generator], None]


def _normal(std_of: Callable[[dict[str, Any]], float]) -> Init:
    def init(t: Tensor, d: dict[str, Any], g: torch.Generator) -> None:
        t.normal_(0.0, std_of(d), generator=g)

    return init


def _trunc_normal(t: Tensor, d: dict[str, Any], g: torch.Generator) -> None:
    torch.nn.init.trunc_normal_(t, 0.0, init_std(d), a=-2.0, b=2.0, generator=g)


def _zeros(t: Tensor, d: dict[str, Any], g: torch.Generator) -> None:
    t.zero_()


def _layer_scale(t: Tensor, d: dict[str, Any], g: torch.Generator) -> None:
    t.fill_(d.get("layer_scale_init_value", 0.1))


def _gpt2_residual_std(d: dict[str, Any]) -> float:
    """GPT-2 scales the projections back into the residual stream by 1/sqrt(2 * layers)."""
    return init_std(d) / math.sqrt(2 * d.get("n_layer", 12))


# how -> initialisation, for the families' own `_init_weights` cases (their records' `inits`), tried before the
# generic ones: vectors named *.bias zeros, other vectors ones (norms), matrices normal(0, std), with the row
# pad_token_id zeroed in the embeddings a record calls `padded`
INITS: dict[str, Init] = {
    "zeros": _zeros,
    "trunc_normal": _trunc_normal,
    "layer_scale": _layer_scale,
    "residual_normal": _normal(_gpt2_residual_std),
}


def init_std(d: dict[str, Any]) -> float:
    """The standard deviation a family initialises with: initializer_range, init_std (BART, TrOCR), else 0.02."""
    for key in ("initializer_range", "init_std"):
        if isinstance(d.get(key), (int, float)):
            return float(d[key])
    return 0.02


def init_tensor(name: str, shape: tuple[int, ...], d: dict[str, Any], generator: torch.Generator) -> Tensor:
    """A float32 tensor for HF parameter `name` (relative to its side) of a model with config `d`, initialised as
    the reference's `_init_weights` for d["model_type"] initialises it (same distribution; not the same numbers)."""
    record = family(d.get("model_type"))
    if name.endswith("relative_position_index"):  # a derived buffer (Donut-Swin), not a weight
        return swin_relative_index(math.isqrt(shape[0]), "cpu")
    t = torch.empty(shape, dtype=torch.float32)
    for pattern, how in record.inits if record is not None else ():
        if re.fullmatch(pattern, name):
            INITS[how](t, d, generator)
            return t
    leaf = name.rsplit(".", 1)[-1]
    if t.dim() == 1:
        return t.zero_() if leaf != "weight" else t.fill_(1.0)  # biases (and head biases) zero; norm weights one
    t.normal_(0.0, init_std(d), generator=generator)
    pad = d.get("pad_token_id")
    if isinstance(pad, int) and 0 <= pad < t.shape[0] and record is not None and record.padded is not None:
        if re.fullmatch(record.padded, name):
            t[pad] = 0
    return t
