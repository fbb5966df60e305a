"""`ved train`: fine-tune a VisionEncoderDecoder checkpoint on (image, text) pairs.

    ved train --model M --data DIR --output RUN [--val-data DIR | --val-split 0.05] [--epochs 3] ...

`train` runs one: options.py (what it takes, checked once), setup.py (run folder, data, model, loaders, optimizer),
loop.py (the optimizer steps), evaluate.py (validation, RUN/best and RUN/last), with loss.py, optim.py, data.py,
ctc.py, state.py, log.py and distributed.py below them.

A run folder holds:
    RUN/train_args.json    the settings (what --resume reads back) and facts about the run
    RUN/metrics.jsonl      one JSON object per log or evaluation event (log.py)
    RUN/best/              the checkpoint with the best validation --metric (Hugging Face layout)
    RUN/last/              the latest checkpoint, plus training_state.pt for --resume (state.py)

Checkpoints appear atomically. `--resume` continues from RUN/last with the optimizer, the data order, the position
in it and every random state, so an interrupted run ends with the weights an uninterrupted one would have had (bit
for bit on CPU). Ctrl-C (or SIGTERM) stops after the current step and saves RUN/last first.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TextIO

from ..checkpoints.load import resolve_device
from .distributed import Distributed
from .loop import StopRequest, Trainer, TrainResult
from .loss import batch_loss, token_loss
from .options import ARGS_FILE, FIXED_ON_RESUME, METRICS, PRECISIONS, TrainOptions, resumed_options, validate
from .setup import ResumableSampler, target_limit

__all__ = [
    "ARGS_FILE",
    "FIXED_ON_RESUME",
    "METRICS",
    "PRECISIONS",
    "ResumableSampler",
    "StopRequest",
    "TrainOptions",
    "TrainResult",
    "Trainer",
    "batch_loss",
    "resumed_options",
    "target_limit",
    "token_loss",
    "train",
    "validate",
]


def train(
    options: TrainOptions,
    err: TextIO | None = None,
    on_step: Callable[[int], None] | None = None,
    progress_bar: bool | None = None,
) -> TrainResult:
    """Run training as `options` say (for --resume, build them with `resumed_options`); messages go to `err`.

    `on_step(step)` is called after every optimizer step. `progress_bar`: None shows one when `err` is a terminal.
    Raises OptionError, ModelError or InputError (bad rows) before anything is written."""
    err = err if err is not None else sys.stderr
    validate(options)
    group = Distributed.start(resolve_device(options.device))
    try:
        trainer = Trainer(options, group, err, progress_bar)
        return trainer.run(on_step)
    finally:
        group.stop()
