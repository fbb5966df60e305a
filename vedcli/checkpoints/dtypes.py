"""The floating-point types ved computes and stores weights in: one table of their names.

The short names are what ved's options take (`fp32`, `fp16`, `bf16`); `config.json` records the long ones
(`float32`, ...), which are accepted too, as is `half`.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}  # short name -> dtype
CONFIG_NAMES = {torch.float32: "float32", torch.float16: "float16", torch.bfloat16: "bfloat16"}  # dtype -> config.json
ALIASES = {**DTYPES, **{name: dtype for dtype, name in CONFIG_NAMES.items()}, "half": torch.float16}


def stored_dtype(tensors: Iterable[Tensor]) -> torch.dtype:
    """The tensors' floating dtype when they all share one that ved writes, else float32."""
    kinds = {t.dtype for t in tensors if t.is_floating_point()}
    return kinds.pop() if len(kinds) == 1 and next(iter(kinds)) in CONFIG_NAMES else torch.float32
