"""Evaluating and saving during a run (`Evaluation`): validation loss and the CER, WER and BLEU of greedy
predictions, with a few samples; RUN/best when the metric improves, RUN/last with everything a resumed run needs.
Checkpoints appear atomically (a folder renamed into place)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import torch

from ..checkpoints.save import atomic_folder, save_pretrained
from .ctc import STATE_KEY as CTC_STATE
from .data import IGNORE_INDEX
from .ema import STATE_KEY as EMA_STATE
from .loss import token_loss
from .metrics import bleu, cer, wer
from .setup import SetUp
from .state import capture_rng


class Evaluation(SetUp):
    """A run that can evaluate itself and save its checkpoints."""

    def evaluate(self) -> dict[str, Any]:
        """Validation loss, CER, WER and BLEU of greedy predictions, and a few samples; updates RUN/best. With a
        weight average (--ema-decay) all of it is done with the averaged weights."""
        with self.ema.swapped_in() if self.ema is not None else contextlib.nullcontext():
            return self._evaluate()

    @torch.no_grad()
    def _evaluate(self) -> dict[str, Any]:
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
        if self.ema is not None:
            record["weights"] = "average"
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
            if self.ema is not None:
                self.state.heads[EMA_STATE] = self.ema.state_dict()
            with atomic_folder(self.run_dir / "last", force=True) as tmp:
                self._write_model(tmp)
                self.state.save(tmp)
        self.group.barrier()
