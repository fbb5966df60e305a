"""The opt-in fast paths, applied when a model is loaded: the compute type `auto` picks, and int8 linear layers.

The exact path (fp32, ids identical to the reference) stays the default; these trade a little agreement for speed:

- `auto`: bf16 on a CPU that computes it in hardware (AVX512-BF16 or AMX), bf16 on CUDA where supported, else fp16;
  fp32 elsewhere (on an AVX2-only CPU a bf16 matmul is emulated and tens of times slower than fp32);
- `quantize="int8"`: torch's dynamic int8 quantization of every Linear layer (int8 weights, activations quantized
  per call), which runs on AVX2 and AVX-512 (VNNI where present).

torch.compile is not offered: on the encoder (where it can fuse the most) it gained 8 % and took 14 minutes to compile
on a busy 2-core machine; the decoding step, whose cache grows every step, recompiles.
"""

from __future__ import annotations

import warnings
from functools import cache

import torch
from torch import nn

from ..errors import OptionError, VedWarning, option

QUANTIZE = ("int8",)  # what `quantize` takes
_warned_bf16 = False  # the slow-bf16 warning is given once per process


@cache
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags as Linux lists them (/proc/cpuinfo); empty where they cannot be read."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def cpu_computes_bf16() -> bool:
    """Whether this CPU has bf16 arithmetic in hardware (AVX512-BF16 or AMX): only there is bf16 faster than fp32."""
    return bool({"avx512_bf16", "amx_bf16"} & cpu_flags())


def auto_dtype(device: torch.device) -> torch.dtype:
    """The fastest compute type that `device` runs natively: what `dtype="auto"` means."""
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if cpu_computes_bf16() else torch.float32


def warn_slow_bf16(device: torch.device, dtype: torch.dtype) -> None:
    """Once per process: bf16 asked for on a CPU that only emulates it."""
    global _warned_bf16
    if device.type != "cpu" or dtype != torch.bfloat16 or cpu_computes_bf16() or _warned_bf16:
        return
    _warned_bf16 = True
    message = ("this CPU has no bf16 arithmetic (no AVX512-BF16 or AMX): bf16 is emulated and much slower than fp32; "
               "auto picks the fastest type")  # fmt: skip
    warnings.warn(VedWarning(message, option("dtype")), stacklevel=3)


def check_quantize(quantize: str | None, device: torch.device, dtype: torch.dtype) -> None:
    """Refuse, before any weights are read, a quantization this device or type cannot run."""
    if quantize is None:
        return
    if quantize not in QUANTIZE:
        raise OptionError(f"unknown quantization '{quantize}' (use {', '.join(QUANTIZE)})", option("quantize"))
    if device.type != "cpu":
        raise OptionError("int8 quantization runs on the CPU only", option("quantize"))
    if dtype != torch.float32:
        raise OptionError("int8 quantization starts from fp32 weights: leave the compute type at fp32",
                          option("quantize"))  # fmt: skip


def quantize_int8(model: nn.Module) -> nn.Module:
    """Every nn.Linear of `model` replaced, in place, by torch's dynamically quantized int8 Linear."""
    from torch.ao.quantization import quantize_dynamic

    with warnings.catch_warnings():  # torch announces the move of its quantization API to torchao
        for category in (DeprecationWarning, FutureWarning, UserWarning):
            warnings.simplefilter("ignore", category)
        return quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8, inplace=True)
