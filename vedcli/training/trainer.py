"""`ved train`: fine-tune a VisionEncoderDecoder checkpoint on (image, text) pairs.

    ved train --model M --data DIR --output RUN [--val-data DIR | --val-split 0.05] [--epochs 3] ...

What one optimizer step does (`Trainer.step`): take `grad_accum` batches of `batch_size` examples in each process;
run the model on each with teacher forcing (decoder inputs are the labels shifted right behind the start token,
padding -100 read as the pad token, exactly the reference's `forward(pixel_values, labels)`); sum the cross-entropy
over every target token of the step, in all processes, and divide by their number, so the loss and the gradient are
those of one big batch however it is split over accumulation and processes; clip the gradient norm; AdamW update at
the scheduled learning rate (optim.py). With `ctc_weight` > 0 an auxiliary CTC loss on the encoder's output, from a
head that only the training state holds, is added to the loss (ctc.py).

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

import contextlib
import json
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from itertools import islice
from pathlib import Path
from typing import Any, TextIO

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import DataLoader, DistributedSampler, Sampler, Subset

from ..checkpoints.dtypes import DTYPES
from ..checkpoints.files import load_state_dict, read_json
from ..checkpoints.hub import resolve_model
from ..checkpoints.load import load_model, resolve_device
from ..checkpoints.safety import check_not_inside, check_replaceable, marked_kind
from ..checkpoints.save import atomic_folder, reference_only_tensors, resolved_generation, save_pretrained
from ..config import DecoderConfig
from ..errors import InputError, ModelError, OptionError, option
from ..generation.defaults import SpecialTokens
from ..model import VisionEncoderDecoder
from ..processing.image import load_image_processor
from ..processing.tokenizer import load_tokenizer
from ..terminal import is_terminal
from .ctc import STATE_KEY as CTC_STATE
from .ctc import WithCTC, ctc_loss, new_head, special_ids
from .ctc import targets as ctc_targets
from .data import IGNORE_INDEX, BadRow, Example, ImageTextDataset, collate, read_examples, split_examples
from .distributed import Distributed
from .log import Reporter, truncate_metrics
from .metrics import bleu, cer, wer
from .optim import SCHEDULES, lr_factor, make_optimizer
from .state import Best, TrainingState, capture_rng, restore_rng, seed_everything

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


@dataclass
class TrainResult:
    run: Path
    step: int  # optimizer updates done
    total_steps: int
    interrupted: bool  # stopped by Ctrl-C / SIGTERM (RUN/last holds the state)
    best: Best = field(default_factory=Best)
    last_eval: dict[str, Any] | None = None
    train_examples: int = 0
    skipped: int = 0  # bad rows left out (--skip-bad)
    rank: int = 0  # the process that returns this (0: the one that wrote the files)


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


def target_limit(cfg: DecoderConfig) -> int:
    """The longest target the decoder's position embeddings can take."""
    if cfg.positions == "padded":  # RoBERTa counts positions from pad_token_id + 1
        return cfg.max_positions - (cfg.pad_token_id or 0) - 1
    return cfg.max_positions


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


class ResumableSampler(Sampler[int]):
    """DistributedSampler's order (a fresh seeded shuffle each epoch, every process its share), from a given
    position on: `skip` indices of the epoch are left out, for a run resumed in the middle of one."""

    def __init__(self, inner: DistributedSampler):
        self.inner = inner
        self.skip = 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        self.inner.set_epoch(epoch)
        self.skip = skip

    def __iter__(self):
        return islice(iter(self.inner), self.skip, None)

    def __len__(self) -> int:
        return max(0, len(self.inner) - self.skip)


def _ignore_interrupts(worker_id: int) -> None:
    """Data loading processes leave Ctrl-C to the trainer, which finishes its step and saves before stopping."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class StopRequest:
    """Ctrl-C (SIGINT) and SIGTERM ask training to stop after the current step; a second Ctrl-C stops at once."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


class Trainer:
    """One training run: set up from the options (checking everything before writing anything), then `run`."""

    def __init__(self, options: TrainOptions, group: Distributed, err: TextIO, progress_bar: bool | None):
        self.o = o = options
        self.group = group
        self.err = err
        self.device = group.device
        self.run_dir = Path(o.output)
        self.progress_bar = progress_bar
        self._check_run_folder()
        self.state = TrainingState.load(self.run_dir / "last") if o.resume else TrainingState()
        if o.resume and self.state.world_size != group.world:
            raise OptionError(
                f"the run was trained by {self.state.world_size} process(es), not {group.world}; "
                "resume it with as many",
                option("resume"),
            )
        self._load_data()
        self._load_model()
        self._build_datasets()
        self._build_optimizer()

    # --- set-up ---------------------------------------------------------------------------------------------

    def _check_run_folder(self) -> None:
        """A new run may take an empty folder, or with --force replace a run (or model) folder ved wrote that holds
        nothing else; never one that holds what the run reads (its data, the model to fine-tune) or anything of
        the user's. Resuming replaces nothing."""
        o, run = self.o, self.run_dir
        if o.resume:
            return
        check_not_inside(
            run,
            [("the training data", o.data), ("the validation data", o.val_data), ("the model to fine-tune", o.model)],
        )
        exists = (
            f"run folder already exists: {option('resume')} continues it, {option('force')} starts it over"
            if marked_kind(run) == "run"
            else f"already exists; {option('force')} replaces it"
        )
        check_replaceable(run, o.force, exists_message=exists)

    def _say(self, text: str) -> None:
        if self.group.main:
            print(text, file=self.err, flush=True)

    def _load_data(self) -> None:
        o = self.o
        train, bad = read_examples(o.data)
        val, val_bad = read_examples(o.val_data) if o.val_data else ([], [])
        problems = [(o.data, row) for row in bad] + [(o.val_data, row) for row in val_bad]
        if problems:
            self._report_bad(problems)
            if not o.skip_bad:
                raise InputError(
                    f"{len(problems)} bad row{'s' * (len(problems) > 1)} (listed above); fix them "
                    f"or pass {option('skip_bad')} to train on the rest",
                    o.data,
                )
            self._say(f"skipping {len(problems)} bad row{'s' * (len(problems) > 1)}")
        if not train:
            raise InputError("no usable examples to train on", o.data)
        if o.val_split is not None:
            train, val = split_examples(train, o.val_split, o.seed)
        self.train_examples: list[Example] = train
        self.val_examples: list[Example] = val
        self.skipped = len(problems)

    def _report_bad(self, problems: list[tuple[str, BadRow]]) -> None:
        for source, row in problems:
            self._say(f"{source}: line {row.line}: {row.file if row.file is not None else '-'}: {row.reason}")

    def _load_model(self) -> None:
        o = self.o
        source = str(self.run_dir / "last") if o.resume else o.model
        folder = resolve_model(source, None if o.resume else o.revision)
        weights = load_state_dict(folder)
        self.model = model = load_model(folder, device=self.device, dtype=torch.float32, state=weights)
        self.extra = reference_only_tensors(model, weights)  # tensors transformers expects and ved does not train
        del weights
        self.tokenizer = load_tokenizer(folder)
        self.processor = load_image_processor(folder, image_size=model.config.encoder.image_size)
        self.generation = resolved_generation(model.generation_config)
        cfg = model.config
        if cfg.decoder_start_token_id is None or cfg.pad_token_id is None:
            raise ModelError("config.json needs decoder_start_token_id and pad_token_id to train", str(folder))
        eos = SpecialTokens.from_config(self.generation).eos
        self.eos = eos[0] if eos else self.tokenizer.eos_token_id
        if o.freeze_encoder:
            model.encoder.requires_grad_(False)

    def _build_datasets(self) -> None:
        o, group = self.o, self.group
        limit = target_limit(self.model.config.decoder)
        self.max_length = min(o.max_target_length or limit, limit)

        def make(examples: list[Example]) -> ImageTextDataset:  # targets end with eos whatever the tokenizer adds
            return ImageTextDataset(
                examples, self.processor, self.tokenizer, self.eos, append_eos=True, max_target_length=self.max_length
            )

        self.train_set = make(self.train_examples)
        self.val_set = make(self.val_examples) if self.val_examples else None
        self.loader_generator = torch.Generator().manual_seed(o.seed)
        inner = DistributedSampler(
            self.train_set, num_replicas=group.world, rank=group.rank, shuffle=True, seed=o.seed, drop_last=False
        )
        self.sampler = ResumableSampler(inner)
        self.train_loader = self._loader(self.train_set, self.sampler, self.loader_generator)
        self.batches_per_epoch = math.ceil(len(inner) / o.batch_size)
        self.steps_per_epoch = math.ceil(self.batches_per_epoch / o.grad_accum)
        self.total_steps = o.max_steps or o.epochs * self.steps_per_epoch
        if self.val_set is not None:
            mine = Subset(self.val_set, range(group.rank, len(self.val_set), group.world))
            self.val_loader = self._loader(mine, None, torch.Generator().manual_seed(o.seed))
            self.references = [self.tokenizer.decode(ids).strip() for ids in self.val_set.labels]
            longest = max(len(ids) for ids in self.val_set.labels)
            self.max_new_tokens = max(1, min(longest + 5, limit))

    def _loader(self, dataset, sampler, generator: torch.Generator) -> DataLoader:
        workers = self.o.workers
        return DataLoader(
            dataset,
            batch_size=self.o.batch_size,
            sampler=sampler,
            shuffle=False,
            num_workers=workers,
            collate_fn=collate,
            generator=generator,  # a loader without one draws its worker seeds from the global generator
            persistent_workers=workers > 0,
            worker_init_fn=_ignore_interrupts if workers > 0 else None,
            pin_memory=self.device.type == "cuda",
        )

    def _build_optimizer(self) -> None:
        o, group = self.o, self.group
        self.amp_dtype = PRECISIONS[o.dtype]
        self.scaler = torch.amp.GradScaler("cuda") if o.dtype == "fp16" else None
        trained = self._ctc_head() if o.ctc_weight > 0 else self.model  # the model, or it and the CTC head
        self.optimizer = make_optimizer(trained, o.lr, o.weight_decay)
        self.trainable = [p for param_group in self.optimizer.param_groups for p in param_group["params"]]
        self.net = trained
        if group.enabled:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = DistributedDataParallel(trained, device_ids=ids)
        if o.resume:
            self.optimizer.load_state_dict(self.state.optimizer)
            if self.scaler is not None and self.state.scaler:
                self.scaler.load_state_dict(self.state.scaler)
            restore_rng(self.state.rng[group.rank], self.loader_generator)
        else:
            seed_everything(o.seed + group.rank)  # each process its own dropout masks
            self.state.world_size = group.world
        if self.state.best.metric != o.metric:  # a new run, or a resumed one judged by another metric from now on
            self.state.best = Best(metric=o.metric)

    def _ctc_head(self) -> WithCTC:
        """The auxiliary CTC head (new, or resumed from the training state) and the module that trains it along."""
        self.ctc_head = new_head(self.model, self.o.seed)
        self.ctc_special = torch.tensor(
            special_ids(
                self.tokenizer, self.model.config.decoder_start_token_id, self.model.config.pad_token_id, self.eos
            )
        )
        if self.o.resume:
            if CTC_STATE not in self.state.heads:
                raise ModelError("the training state holds no CTC head", str(self.run_dir / "last"))
            self.ctc_head.load_state_dict(self.state.heads[CTC_STATE])
        return WithCTC(self.model, self.ctc_head)

    def _autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    # --- the loop ---------------------------------------------------------------------------------------------

    def run(self, on_step: Callable[[int], None] | None = None) -> TrainResult:
        group, pos = self.group, self.state.position
        self._start_run_folder()
        show_bar = self.progress_bar if self.progress_bar is not None else is_terminal(self.err)
        self.reporter = Reporter(self.run_dir if group.main else None, self.err, self.total_steps, pos.step, show_bar)
        result = TrainResult(
            self.run_dir,
            pos.step,
            self.total_steps,
            False,
            self.state.best,
            train_examples=len(self.train_examples),
            skipped=self.skipped,
            rank=group.rank,
        )
        window = _Window()
        try:
            with StopRequest() as stop:
                self.model.train()
                while pos.step < self.total_steps and not result.interrupted:
                    for update in self._updates():
                        loss, tokens, images, grad_norm, lr, ctc = self.step(update)
                        epoch_done = self._advance(len(update))
                        window.add(loss, tokens, images, grad_norm, ctc)
                        if pos.step % self.o.log_every == 0 or pos.step == self.total_steps:
                            self.reporter.train(
                                {
                                    "step": pos.step,
                                    "total_steps": self.total_steps,
                                    "epoch": self._epoch(),
                                    "lr": lr,
                                    **window.flush(),
                                }
                            )
                        self.reporter.step_done(pos.step)
                        if on_step is not None:
                            on_step(pos.step)
                        if group.any(stop.requested):  # every process stops after the same step
                            self.reporter.say(f"stopping at step {pos.step}: saving {self.run_dir / 'last'}")
                            self.save_last()
                            result.interrupted = True
                            break
                        result.last_eval = self._evaluate_and_save(epoch_done) or result.last_eval
        finally:
            self.reporter.close()
        result.step = pos.step
        result.best = self.state.best
        return result

    def _updates(self):
        """The rest of the current epoch, one update at a time: lists of up to `grad_accum` batches."""
        pos = self.state.position
        self.sampler.set_epoch(pos.epoch, skip=pos.batches * self.o.batch_size)
        batches = iter(self.train_loader)
        while pos.step < self.total_steps:
            update = list(islice(batches, self.o.grad_accum))
            if not update:
                return
            yield update

    def _advance(self, batches: int) -> bool:
        """Count an update of `batches` batches; True when it finished the epoch."""
        pos = self.state.position
        pos.step += 1
        pos.batches += batches
        if pos.batches < self.batches_per_epoch:
            return False
        pos.epoch, pos.batches = pos.epoch + 1, 0
        return True

    def _evaluate_and_save(self, epoch_done: bool) -> dict[str, Any] | None:
        """Evaluate and save RUN/last when it is time to; returns the evaluation, if there was one."""
        o, step = self.o, self.state.position.step
        last = step == self.total_steps
        record = None
        if self.val_set is not None and (last or (epoch_done if o.eval_every is None else step % o.eval_every == 0)):
            record = self.evaluate()
        if record is not None or epoch_done or last or (o.save_every and step % o.save_every == 0):
            self.save_last()
        return record

    def _epoch(self) -> float:
        pos = self.state.position
        return round(pos.epoch + pos.batches / self.batches_per_epoch, 4)

    def _start_run_folder(self) -> None:
        """Write (or, resuming, update) train_args.json. A new run folder appears in one rename, marked as ved's,
        holding train_args.json; with --force it replaces the old one then (checked again: only a folder ved wrote)."""
        o, group = self.o, self.group
        if group.main:
            from .. import __version__

            facts = {
                "processes": group.world,
                "global_batch_size": o.batch_size * group.world * o.grad_accum,
                "train_examples": len(self.train_examples),
                "val_examples": len(self.val_examples),
                "skipped_rows": self.skipped,
                "steps_per_epoch": self.steps_per_epoch,
                "total_steps": self.total_steps,
                "max_target_length": self.max_length,
                "ved_version": __version__,
                "torch_version": torch.__version__,
            }
            options = asdict(o)
            for name in ("data", "val_data"):  # so that --resume works from any folder
                options[name] = os.path.abspath(options[name]) if options[name] is not None else None
            text = json.dumps({"options": options, "run": facts}, indent=2) + "\n"
            if o.resume:
                truncate_metrics(self.run_dir, self.state.position.step)
                (self.run_dir / ARGS_FILE).write_text(text, encoding="utf-8")
            else:
                with atomic_folder(self.run_dir, force=o.force, kind="run") as tmp:
                    (tmp / ARGS_FILE).write_text(text, encoding="utf-8")
        group.barrier()

    def step(self, batches: list[dict[str, Tensor]]) -> tuple[float, int, int, float | None, float, Any]:
        """One optimizer update from `batches` (this process's share of the step); returns the step's mean loss
        per target token, its target tokens and images (all processes), the gradient norm before clipping, the
        learning rate used, and with a CTC head its mean CTC loss per text id and the text ids (else None).

        With a CTC head the loss minimised is the token loss + ctc_weight x the CTC loss per text id."""
        o, group, model = self.o, self.group, self.model
        counts = [int((b["labels"] != IGNORE_INDEX).sum()) for b in batches]
        with_ctc = o.ctc_weight > 0
        ctc_ids = sum(int(ctc_targets(b["labels"], self.ctc_special)[1].sum()) for b in batches) if with_ctc else 0
        totals = group.sum(
            torch.tensor([sum(counts), sum(len(b["labels"]) for b in batches), ctc_ids], dtype=torch.float64)
        )
        tokens, images, ctc_ids = int(totals[0]), int(totals[1]), int(totals[2])
        # DistributedDataParallel averages gradients over processes: scale by their number to get the sum
        scale = group.world / max(tokens, 1)
        ctc_scale = o.ctc_weight * group.world / max(ctc_ids, 1)
        step_loss = torch.zeros((), dtype=torch.float64, device=self.device)
        step_ctc = torch.zeros((), dtype=torch.float64, device=self.device)
        for i, batch in enumerate(batches):
            sync = i == len(batches) - 1 or not group.enabled
            with contextlib.nullcontext() if sync else self.net.no_sync():
                pixels = batch["pixel_values"].to(self.device, non_blocking=True)
                labels = batch["labels"].to(self.device, non_blocking=True)
                with self._autocast():
                    out = self.net(pixel_values=pixels, decoder_input_ids=model.shift_right(labels))
                loss = token_loss(out.logits, labels, o.label_smoothing)
                scaled = loss * scale
                if with_ctc:
                    ctc = ctc_loss(out.ctc_logits, labels, self.ctc_special, self.ctc_head.blank)
                    scaled = scaled + ctc * ctc_scale
                    step_ctc += ctc.detach().double()
                (self.scaler.scale(scaled) if self.scaler is not None else scaled).backward()
            step_loss += loss.detach().double()
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        grad_norm = None
        if o.clip_norm > 0:
            grad_norm = float(torch.nn.utils.clip_grad_norm_(self.trainable, o.clip_norm))
        lr = o.lr * lr_factor(self.state.position.step, o.warmup_steps, self.total_steps, o.schedule)
        for param_group in self.optimizer.param_groups:
            param_group["lr"] = lr
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        mean = float(group.sum(step_loss)) / max(tokens, 1)
        ctc = (float(group.sum(step_ctc)) / max(ctc_ids, 1), ctc_ids) if with_ctc else None
        return mean, tokens, images, grad_norm, lr, ctc

    # --- evaluation and checkpoints ---------------------------------------------------------------------------

    @torch.no_grad()
    def evaluate(self) -> dict[str, Any]:
        """Validation loss, CER, WER and BLEU of greedy predictions, and a few samples; updates RUN/best."""
        group, model, pos = self.group, self.model, self.state.position
        devices = [self.device] if self.device.type == "cuda" else []
        loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        tokens = torch.zeros((), dtype=torch.float64, device=self.device)
        predicted: list[tuple[int, str]] = []
        with torch.random.fork_rng(devices=devices):  # evaluating leaves the training's random streams alone
            model.eval()
            try:
                for batch in self.val_loader:
                    pixels = batch["pixel_values"].to(self.device)
                    labels = batch["labels"].to(self.device)
                    with self._autocast():
                        logits = model(pixel_values=pixels, decoder_input_ids=model.shift_right(labels)).logits
                        sequences = model.generate(
                            pixels, max_new_tokens=self.max_new_tokens, num_beams=1, do_sample=False
                        )
                    loss_sum += token_loss(logits, labels).double()
                    tokens += (labels != IGNORE_INDEX).sum()
                    texts = self.tokenizer.batch_decode(sequences)
                    predicted += [(int(i), text.strip()) for i, text in zip(batch["index"], texts, strict=True)]
            finally:
                model.train()
        loss = float(group.sum(loss_sum)) / max(float(group.sum(tokens)), 1.0)
        predictions = dict(p for part in group.gather(predicted) for p in part)
        order = sorted(predictions)
        preds = [predictions[i] for i in order]
        refs = [self.references[i] for i in order]
        record = {
            "step": pos.step,
            "epoch": self._epoch(),
            "val_loss": loss,
            "cer": cer(preds, refs),
            "wer": wer(preds, refs),
            "bleu": bleu(preds, refs),
        }
        value = record["val_loss" if self.o.metric == "loss" else self.o.metric]
        record["best"] = self.state.best.improved_by(value)
        record["samples"] = [
            {"file": str(self.val_examples[i].image), "reference": refs[i], "prediction": preds[i]}
            for i in range(min(self.o.samples, len(preds)))
        ]
        if record["best"]:
            self.state.best.value, self.state.best.step = value, pos.step
            self.save_best()
        self.reporter.eval(record)
        return record

    def _write_model(self, folder: Path) -> None:
        save_pretrained(
            self.model,
            folder,
            tokenizer=self.tokenizer,
            processor=self.processor,
            generation=self.generation,
            extra=self.extra,
            dtype=torch.float32,
        )

    def save_best(self) -> None:
        if self.group.main:
            with atomic_folder(self.run_dir / "best", force=True) as tmp:
                self._write_model(tmp)
        self.group.barrier()

    def save_last(self) -> None:
        """RUN/last: the weights and everything --resume needs, atomically."""
        rng = self.group.gather(capture_rng(self.loader_generator))
        if self.group.main:
            self.state.optimizer = self.optimizer.state_dict()
            self.state.scaler = self.scaler.state_dict() if self.scaler is not None else None
            self.state.rng = rng
            self.state.heads = {CTC_STATE: self.ctc_head.state_dict()} if self.o.ctc_weight > 0 else {}
            with atomic_folder(self.run_dir / "last", force=True) as tmp:
                self._write_model(tmp)
                self.state.save(tmp)
        self.group.barrier()


class _Window:
    """Training figures accumulated between two log events."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.loss = 0.0
        self.tokens = self.images = 0
        self.grad_norm: float | None = None
        self.ctc: tuple[float, int] | None = None  # CTC loss summed, text ids

    def add(
        self, loss: float, tokens: int, images: int, grad_norm: float | None, ctc: tuple[float, int] | None = None
    ) -> None:
        self.loss += loss * tokens
        self.tokens += tokens
        self.images += images
        self.grad_norm = grad_norm
        if ctc is not None:
            total, ids = self.ctc or (0.0, 0)
            self.ctc = (total + ctc[0] * ctc[1], ids + ctc[1])

    def flush(self) -> dict[str, Any]:
        now = time.perf_counter()
        out = {
            "loss": self.loss / max(self.tokens, 1),
            "images_per_s": self.images / max(now - self.start, 1e-9),
            "grad_norm": self.grad_norm,
        }
        if self.ctc is not None:
            out["ctc_loss"] = self.ctc[0] / max(self.ctc[1], 1)
        self.__init__()
        return out
