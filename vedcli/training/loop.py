"""The training loop (`Trainer.run`): optimizer steps until the last one, logging, evaluating and saving RUN/last
when it is time to; Ctrl-C (or SIGTERM) stops after the current step and saves RUN/last first.

What one optimizer step does (`Trainer.step`): take `grad_accum` batches of `batch_size` examples in each process;
run the model on each with teacher forcing (decoder inputs are the labels shifted right behind the start token,
padding -100 read as the pad token, exactly the reference's `forward(pixel_values, labels)`); sum the cross-entropy
over every target token of the step, in all processes, and divide by their number, so the loss and the gradient are
those of one big batch however it is split over accumulation and processes (with batches grouped by length, by the
number an update holds on average: setup.py `_per_update`); clip the gradient norm; AdamW update at
the scheduled learning rate (optim.py). With `ctc_weight` > 0 an auxiliary CTC loss on the encoder's output, from a
head that only the training state holds, is added to the loss (ctc.py).
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..terminal import is_terminal
from .ctc import ctc_loss
from .ctc import targets as ctc_targets
from .data import IGNORE_INDEX
from .evaluate import Evaluation
from .log import Reporter
from .loss import token_loss
from .optim import lr_factor
from .state import Best


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


class Trainer(Evaluation):
    """One training run: set up from the options (setup.py), then `run`, evaluating and saving as it goes
    (evaluate.py)."""

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
        # batches grouped by length: divided by what an update holds on average (setup.py, `_per_update`)
        divisors = self.per_update or (tokens, ctc_ids)
        # DistributedDataParallel averages gradients over processes: scale by their number to get the sum
        scale = group.world / max(divisors[0], 1)
        ctc_scale = o.ctc_weight * group.world / max(divisors[1], 1)
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
        if self.ema is not None:
            self.ema.update()
        mean = float(group.sum(step_loss)) / max(tokens, 1)
        ctc = (float(group.sum(step_ctc)) / max(ctc_ids, 1), ctc_ids) if with_ctc else None
        return mean, tokens, images, grad_norm, lr, ctc


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
