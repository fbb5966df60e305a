"""Loading a published checkpoint as a ved model: device and dtype names, the weights read and checked."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import Tensor

from ..errors import OptionError, VedWarning, option
from ..generation.defaults import GenerationConfig
from ..model import VisionEncoderDecoder, model_config
from .dtypes import ALIASES, DTYPES
from .fast import auto_dtype, check_quantize, quantize_int8, warn_slow_bf16
from .files import load_state_dict, read_json
from .hub import resolve_model
from .weights import non_finite


def resolve_device(device: str | torch.device | None) -> torch.device:
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise OptionError(f"unknown device '{device}' (use auto, cpu or cuda)", option("device")) from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise OptionError("CUDA was asked for but no CUDA device is available", option("device"))
    if dev.type not in ("cpu", "cuda"):
        raise OptionError(f"unsupported device '{device}' (use auto, cpu or cuda)", option("device"))
    return dev


def resolve_dtype(dtype: str | torch.dtype | None) -> torch.dtype:
    if dtype is None:
        return torch.float32
    if isinstance(dtype, torch.dtype):
        if dtype not in DTYPES.values():
            raise OptionError(f"unsupported dtype {dtype} (use fp32, fp16 or bf16)", option("dtype"))
        return dtype
    try:
        return ALIASES[str(dtype).lower()]
    except KeyError:
        raise OptionError(f"unknown dtype '{dtype}' (use fp32, fp16 or bf16)", option("dtype")) from None


def load_model(
    name_or_path: str | Path,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    revision: str | None = None,
    state: dict[str, Tensor] | None = None,
    quantize: str | None = None,
) -> VisionEncoderDecoder:
    """A published VisionEncoderDecoder checkpoint (folder or hub id) as a ved model in eval mode.

    `state`: the folder's HF-named tensors when the caller has already read them (they are not read again).
    `dtype="auto"`, `quantize="int8"`: the opt-in fast paths (fast.py).
    """
    dev = resolve_device(device)
    dt = auto_dtype(dev) if dtype == "auto" else resolve_dtype(dtype)
    warn_slow_bf16(dev, dt)
    check_quantize(quantize, dev, dt)
    folder = resolve_model(str(name_or_path), revision)
    config_file = str(Path(folder) / "config.json")
    cfg = model_config(read_json(config_file), config_file, bytes_each=max(dt.itemsize, 2))
    generation = GenerationConfig.from_folder(folder, cfg.decoder.vocab_size, cfg.decoder.max_length)
    with torch.device("meta"):
        model = VisionEncoderDecoder(cfg)
    state = state if state is not None else load_state_dict(folder)
    model.load_hf_state_dict(state, str(folder), dtype=dt)
    warn_non_finite(state, str(folder))
    model.generation_config = generation
    model = model.to(dev).eval()
    if quantize is not None:
        quantize_int8(model)
    return model


def warn_non_finite(state: dict[str, Tensor], where: str) -> None:
    """A warning (not an error: the user may want to inspect it) when weights hold NaN or inf values."""
    bad = non_finite(state)
    if bad:
        warnings.warn(VedWarning(f"{len(bad)} of {len(state)} weight tensors hold NaN or inf values (e.g. {bad[0]}): "
                                 "the model's results will be meaningless", where), stacklevel=2)  # fmt: skip
