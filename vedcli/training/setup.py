"""Setting up a training run (`SetUp`), checking everything before anything is written: the run folder, the
examples, the model with its tokenizer and image processor, the data loaders (in a resumable order), the optimizer,
and with `ctc_weight` > 0 the auxiliary CTC head. `_start_run_folder` writes RUN/train_args.json when the run starts.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
from dataclasses import asdict
from itertools import islice
from pathlib import Path
from typing import TextIO

import torch
from torch.utils.data import DataLoader, DistributedSampler, Sampler, Subset

from ..checkpoints.files import load_state_dict
from ..checkpoints.hub import resolve_model
from ..checkpoints.load import load_model
from ..checkpoints.safety import check_not_inside, check_replaceable, marked_kind
from ..checkpoints.save import atomic_folder, reference_only_tensors, resolved_generation
from ..config import DecoderConfig
from ..errors import InputError, ModelError, OptionError, option
from ..generation.defaults import SpecialTokens
from ..processing.image import load_image_processor
from ..processing.tokenizer import load_tokenizer
from .ctc import STATE_KEY as CTC_STATE
from .ctc import WithCTC, new_head, special_ids
from .data import BadRow, Example, ImageTextDataset, collate, read_examples, split_examples
from .distributed import Distributed
from .ema import STATE_KEY as EMA_STATE
from .ema import WeightAverage
from .log import truncate_metrics
from .optim import make_optimizer
from .options import ARGS_FILE, PRECISIONS, TrainOptions
from .state import Best, TrainingState, restore_rng, seed_everything


def target_limit(cfg: DecoderConfig) -> int:
    """The longest target the decoder's position embeddings can take."""
    if cfg.positions == "padded":  # RoBERTa counts positions from pad_token_id + 1
        return cfg.max_positions - (cfg.pad_token_id or 0) - 1
    return cfg.max_positions


GROUP_SPAN = 50  # group_by_length: batches are cut from runs of this many batches' worth, each sorted by length


class ResumableSampler(Sampler[int]):
    """DistributedSampler's order (a fresh seeded shuffle each epoch, every process its share), from a given
    position on: `skip` indices of the epoch are left out, for a run resumed in the middle of one.

    With `lengths` (group_by_length), each run of GROUP_SPAN batches of that order is sorted by length and cut into
    batches, which are then shuffled (seeded): a batch holds targets of similar lengths and pads little, and steps
    in a row are not ordered by length (sorted runs, longest first, tripled the reader's training loss in 250 steps).
    The order stays a function of the seed and the epoch, so resuming works the same."""

    def __init__(self, inner: DistributedSampler, lengths: list[int] | None = None, batch_size: int = 1):
        self.inner = inner
        self.lengths = lengths
        self.span = GROUP_SPAN * batch_size
        self.skip = 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        self.inner.set_epoch(epoch)
        self.skip = skip

    def __iter__(self):
        order = list(self.inner)
        if self.lengths is not None:
            order = [i for start in range(0, len(order), self.span) for i in self._grouped(order, start)]
        return islice(order, self.skip, None)

    def _grouped(self, order: list[int], start: int) -> list[int]:
        """The span of `order` from `start`: sorted by length, cut into batches, the batches in a seeded order."""
        span = sorted(order[start : start + self.span], key=lambda i: -self.lengths[i])
        size = self.span // GROUP_SPAN
        batches = [span[b : b + size] for b in range(0, len(span), size)]
        seed = (self.inner.seed * 1_000_003 + self.inner.epoch) * 1_000_003 + start
        shuffled = torch.randperm(len(batches), generator=torch.Generator().manual_seed(seed)).tolist()
        return [i for b in shuffled for i in batches[b]]

    def __len__(self) -> int:
        return max(0, len(self.inner) - self.skip)


def _ignore_interrupts(worker_id: int) -> None:
    """Data loading processes leave Ctrl-C to the trainer, which finishes its step and saves before stopping."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class SetUp:
    """A training run set up from the options (checking everything before writing anything); the loop (loop.py)
    and evaluation and checkpoints (evaluate.py) build on it."""

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
        lengths = [len(ids) for ids in self.train_set.labels] if o.group_by_length else None
        self.sampler = ResumableSampler(inner, lengths, o.batch_size)
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
        self.per_update = self._per_update() if o.group_by_length else None
        self.ema = WeightAverage(self.model, o.ema_decay) if o.ema_decay > 0 else None
        if self.ema is not None and o.resume and EMA_STATE in self.state.heads:  # else it starts from these weights
            self.ema.load_state_dict(self.state.heads[EMA_STATE])

    def _per_update(self) -> tuple[float, float]:
        """Target tokens and CTC text ids an update holds on average over the training set (all processes).

        With batches grouped by length, the loss of an update is divided by these instead of its own counts: a batch
        of short lines then weighs what its tokens weigh, as it would inside shuffled batches. Divided by its own
        counts, each update of short lines would weigh as much as one of long lines, which changes what is learnt."""
        o, labels = self.o, self.train_set.labels
        examples = o.batch_size * o.grad_accum * self.group.world
        tokens = sum(len(ids) for ids in labels) / max(len(labels), 1)
        ctc = 0.0
        if o.ctc_weight > 0:
            special = set(self.ctc_special.tolist())
            ctc = sum(sum(1 for i in ids if i not in special) for ids in labels) / max(len(labels), 1)
        return tokens * examples, ctc * examples

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
