"""What a training run takes: `TrainOptions` (the defaults are transformers' Trainer's where it has one), checked
once by `validate` (each error names the option); `resumed_options` reads a run's saved settings back to resume it.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch

from ..checkpoints.dtypes import DTYPES
from ..checkpoints.files import read_json
from ..checkpoints.load import resolve_device
from ..errors import OptionError, option
from .optim import SCHEDULES

ARGS_FILE = "train_args.json"
METRICS = ("loss", "cer", "wer", "bleu")
PRECISIONS = {name: None if dtype == torch.float32 else dtype for name, dtype in DTYPES.items()}  # autocast dtype
# Settings a resumed run must keep: changing them would make it a different run.
FIXED_ON_RESUME = (
    "model",
    "revision",
    "data",
    "val_data",
    "val_split",
    "batch_size",
    "grad_accum",
    "seed",
    "freeze_encoder",
    "max_target_length",
    "ctc_weight",
)


@dataclass
class TrainOptions:
    """Everything `ved train` takes; the defaults are transformers' Trainer's where it has one."""

    model: str | None = None  # hub id or folder: anything `ved caption --model` takes
    data: str | None = None  # folder with metadata.jsonl / metadata.csv, or a path<TAB>text list file
    output: str = "run"  # the run folder
    val_data: str | None = None  # validation examples, same layouts as `data`
    val_split: float | None = None  # or hold out this fraction of `data` (seeded)
    epochs: int = 3
    max_steps: int | None = None  # optimizer updates in all; overrides `epochs`
    batch_size: int = 8  # examples per batch in each process
    grad_accum: int = 1  # batches per optimizer update
    lr: float = 5e-5  # peak learning rate
    warmup_steps: int = 0
    schedule: str = "linear"  # linear | cosine | constant, after warm-up
    weight_decay: float = 0.0  # AdamW decoupled decay, matrices only
    clip_norm: float = 1.0  # gradient norm limit; 0: no clipping
    label_smoothing: float = 0.0
    ctc_weight: float = 0.0  # weight of an auxiliary CTC loss on the encoder's output (ctc.py); 0: none
    freeze_encoder: bool = False  # train the decoder (and the projection between them) only
    group_by_length: bool = False  # batches of targets of similar lengths (less padding), as transformers' Trainer
    ema_decay: float = 0.0  # evaluate and keep as RUN/best a moving average of the weights (e.g. 0.999); 0: none
    dtype: str = "fp32"  # fp32, or mixed precision: bf16 (CPU or CUDA), fp16 (CUDA, with loss scaling)
    device: str = "auto"
    seed: int = 42  # data order, dropout, validation split
    workers: int = 0  # data loading processes (per training process)
    eval_every: int | None = None  # steps between evaluations; None: at the end of each epoch
    save_every: int | None = None  # steps between RUN/last saves (also saved at every evaluation and epoch end)
    log_every: int = 10  # steps between "train" events
    metric: str = "loss"  # what "best" means: loss, cer, wer (lower is better) or bleu (higher)
    samples: int = 3  # validation predictions shown and recorded at each evaluation
    max_target_length: int | None = None  # target tokens kept (default: as many as the decoder has positions)
    skip_bad: bool = False  # train on the usable rows when some are bad (else stop and list them)
    resume: bool = False  # continue RUN/last
    force: bool = False  # replace an existing run folder
    revision: str | None = None  # hub revision of `model`


def resumed_options(output: str | Path, changes: dict[str, Any] | None = None) -> TrainOptions:
    """The settings RUN/train_args.json saved, with `changes` (flags given again) on top, for `--resume`.

    Settings that define the run (FIXED_ON_RESUME) cannot change; its length (--epochs, --max-steps), evaluation
    and saving cadence, workers, device and the like can."""
    run = Path(output)
    if not (run / "last").is_dir():
        raise OptionError(f"nothing to resume: {run / 'last'} does not exist", option("resume"))
    names = {f.name for f in fields(TrainOptions)}
    saved = read_json(run / ARGS_FILE).get("options", {})
    merged = {k: v for k, v in saved.items() if k in names}
    for name, value in (changes or {}).items():
        if name not in names:
            raise TypeError(f"unknown training option {name!r}")
        if name in ("resume", "output", "force"):
            continue
        if name in ("data", "val_data") and value is not None:
            value = os.path.abspath(value)
        if name in FIXED_ON_RESUME and value != merged.get(name):
            raise OptionError(f"a resumed run keeps its {option(name)} ({merged.get(name)!r})", option(name))
        merged[name] = value
    return TrainOptions(**{**merged, "resume": True, "output": str(output), "force": False})


def validate(o: TrainOptions) -> None:
    """Check every setting once, naming the option (a TrainOptions field)."""
    if not o.model:
        raise OptionError("which model to fine-tune? (hub id or folder)", option("model"))
    if not o.data:
        raise OptionError("which data to train on? (folder with metadata.jsonl / .csv, or a list file)", option("data"))
    if o.val_data and o.val_split is not None:
        raise OptionError(f"give {option('val_data')} or {option('val_split')}, not both", option("val_split"))
    positive = ("batch_size", "grad_accum", "epochs", "log_every", "max_steps", "eval_every", "save_every")
    for name in (*positive, "max_target_length"):
        value = getattr(o, name)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise OptionError(f"must be a positive whole number, got {value!r}", option(name))
    for name in ("warmup_steps", "workers", "samples"):
        value = getattr(o, name)
        if not isinstance(value, int) or value < 0:
            raise OptionError(f"must be 0 or more, got {value!r}", option(name))
    if not o.lr > 0:
        raise OptionError(f"must be above 0, got {o.lr}", option("lr"))
    if not o.weight_decay >= 0:
        raise OptionError(f"must be 0 or more, got {o.weight_decay}", option("weight_decay"))
    if not o.clip_norm >= 0:
        raise OptionError(f"must be 0 (no clipping) or more, got {o.clip_norm}", option("clip_norm"))
    if not 0 <= o.label_smoothing < 1:
        raise OptionError(f"must be in [0, 1), got {o.label_smoothing}", option("label_smoothing"))
    if not (isinstance(o.ctc_weight, (int, float)) and math.isfinite(o.ctc_weight) and o.ctc_weight >= 0):
        raise OptionError(f"must be 0 (no CTC loss) or more, got {o.ctc_weight}", option("ctc_weight"))
    if not (isinstance(o.ema_decay, (int, float)) and 0 <= o.ema_decay < 1):
        raise OptionError(f"must be 0 (no average) or in (0, 1), e.g. 0.999; got {o.ema_decay}", option("ema_decay"))
    if o.ctc_weight > 0 and o.freeze_encoder:
        raise OptionError(
            f"a CTC loss on the encoder has nothing to train with {option('freeze_encoder')}", option("ctc_weight")
        )
    if o.schedule not in SCHEDULES:
        raise OptionError(f"unknown schedule '{o.schedule}' (use {', '.join(SCHEDULES)})", option("schedule"))
    if o.metric not in METRICS:
        raise OptionError(f"unknown metric '{o.metric}' (use {', '.join(METRICS)})", option("metric"))
    if o.dtype not in PRECISIONS:
        raise OptionError(f"unknown dtype '{o.dtype}' (use {', '.join(PRECISIONS)})", option("dtype"))
    if o.dtype == "fp16" and resolve_device(o.device).type != "cuda":
        raise OptionError("fp16 training needs a CUDA device; use bf16 on the CPU", option("dtype"))
