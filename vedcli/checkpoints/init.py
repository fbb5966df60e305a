"""How the reference initialises weights, by HF name: the families' `_init_weights` cases as data (same
distributions, not the same numbers). `ved compose` uses it for new layers and presets, `ved convert` for tensors a
source lacks."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from ..encoders.swin import relative_index as swin_relative_index

_VISION = {"vit", "deit", "beit", "data2vec-vision", "swin", "donut-swin"}
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


# (model types, name pattern, initialisation): the families' own `_init_weights` cases, checked before the generic
# ones (vectors named *.bias zeros, other vectors ones (norms), matrices normal(0, std) with the padding row zeroed)
SPECIAL_INITS: list[tuple[set[str], re.Pattern, Init]] = [
    ({"vit"}, re.compile(r"embeddings\.(cls_token|position_embeddings)"), _trunc_normal),
    (_VISION, re.compile(r"embeddings\.(cls_token|distillation_token|position_embeddings|mask_token)"), _zeros),
    (_VISION, re.compile(r".*relative_position_bias_table"), _zeros),
    ({"beit", "data2vec-vision"}, re.compile(r".*\.lambda_[12]"), _layer_scale),
    ({"gpt2"}, re.compile(r".*\.c_proj\.weight"), _normal(_gpt2_residual_std)),
]
# model types -> embeddings whose row `pad_token_id` the reference zeroes (nn.Embedding's padding_idx)
PADDED_EMBEDDINGS: list[tuple[set[str], re.Pattern]] = [
    ({"bert", "electra", "bert-generation"}, re.compile(r".*embeddings\.word_embeddings\.weight")),
    ({"roberta", "xlm-roberta", "camembert"}, re.compile(r".*embeddings\.(word|position)_embeddings\.weight")),
    ({"bart", "mbart", "trocr"}, re.compile(r".*embed_tokens\.weight")),
]


def init_std(d: dict[str, Any]) -> float:
    """The standard deviation a family initialises with: initializer_range, init_std (BART, TrOCR), else 0.02."""
    for key in ("initializer_range", "init_std"):
        if isinstance(d.get(key), (int, float)):
            return float(d[key])
    return 0.02


def init_tensor(name: str, shape: tuple[int, ...], d: dict[str, Any], generator: torch.Generator) -> Tensor:
    """A float32 tensor for HF parameter `name` (relative to its side) of a model with config `d`, initialised as
    the reference's `_init_weights` for d["model_type"] initialises it (same distribution; not the same numbers)."""
    kind = d.get("model_type")
    if name.endswith("relative_position_index"):  # a derived buffer (Donut-Swin), not a weight
        return swin_relative_index(math.isqrt(shape[0]), "cpu")
    t = torch.empty(shape, dtype=torch.float32)
    for kinds, pattern, how in SPECIAL_INITS:
        if kind in kinds and pattern.fullmatch(name):
            how(t, d, generator)
            return t
    leaf = name.rsplit(".", 1)[-1]
    if t.dim() == 1:
        return t.zero_() if leaf != "weight" else t.fill_(1.0)  # biases (and head biases) zero; norm weights one
    t.normal_(0.0, init_std(d), generator=generator)
    pad = d.get("pad_token_id")
    if isinstance(pad, int) and 0 <= pad < t.shape[0]:
        if any(kind in kinds and pattern.fullmatch(name) for kinds, pattern in PADDED_EMBEDDINGS):
            t[pad] = 0
    return t
