"""What `ved train` shows and records: a progress bar (on a terminal), log lines, and RUN/metrics.jsonl.

metrics.jsonl gets one JSON object per event, appended as it happens:

    {"event": "train", "step": 20, "epoch": 1.25, "loss": 1.93, "lr": 4.1e-05, "images_per_s": 57.2, "grad_norm": 3.1}
    {"event": "eval", "step": 20, "epoch": 1.25, "val_loss": 1.71, "cer": 0.12, "wer": 0.31, "bleu": 42.5,
     "best": true, "samples": [{"file": "...", "reference": "...", "prediction": "..."}]}

`loss` is the mean training loss per target token over the steps since the previous "train" event (label smoothing
included when asked for); with a CTC head, `ctc_loss` is its CTC loss per text token over the same steps (ctc.py;
`loss` leaves it out); `val_loss` is the plain cross-entropy per target token over the whole validation set.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TextIO

METRICS_FILE = "metrics.jsonl"


class Reporter:
    """Prints and records training events; a silent stand-in in processes other than the main one."""

    def __init__(self, run: Path | None, err: TextIO, total_steps: int, start_step: int, bar: bool):
        self.path = run / METRICS_FILE if run is not None else None
        self.err = err
        self.bar = _Bar(err, total_steps, start_step) if bar and run is not None else None

    def say(self, text: str) -> None:
        if self.path is None:
            return
        if self.bar is not None:
            self.bar.console.print(text, highlight=False, markup=False, soft_wrap=True)
        else:
            print(text, file=self.err, flush=True)

    def train(self, record: dict[str, Any]) -> None:
        if self.path is None:
            return
        self._append({"event": "train", **record})
        if self.bar is not None:
            self.bar.update(record)
        else:
            ctc = f"ctc {record['ctc_loss']:.4f}  " if "ctc_loss" in record else ""
            self.say(
                f"step {record['step']}/{record['total_steps']}  epoch {record['epoch']:.2f}  "
                f"loss {record['loss']:.4f}  {ctc}lr {record['lr']:.3g}  {record['images_per_s']:.1f} images/s"
            )

    def step_done(self, step: int) -> None:
        if self.bar is not None and self.path is not None:
            self.bar.advance_to(step)

    def eval(self, record: dict[str, Any]) -> None:
        if self.path is None:
            return
        self._append({"event": "eval", **record})
        best = " (best so far)" if record.get("best") else ""
        averaged = " (averaged weights)" if record.get("weights") == "average" else ""
        self.say(
            f"eval{averaged} at step {record['step']}: val loss {record['val_loss']:.4f}  cer {record['cer']:.4f}  "
            f"wer {record['wer']:.4f}  bleu {record['bleu']:.2f}{best}"
        )
        for sample in record.get("samples", []):
            self.say(f"  {Path(sample['file']).name}: {sample['prediction']!r}  (target {sample['reference']!r})")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()

    def _append(self, record: dict[str, Any]) -> None:
        record = {k: v for k, v in record.items() if k != "total_steps"}
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")


def truncate_metrics(run: Path, step: int) -> None:
    """Drop events recorded after `step` (a run that died after its last save logged steps it will redo)."""
    path = run / METRICS_FILE
    if not path.is_file():
        return
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            if json.loads(line).get("step", 0) <= step:
                kept.append(line)
        except json.JSONDecodeError:
            continue  # a line cut short when the process died
    path.write_text("".join(line + "\n" for line in kept), encoding="utf-8")


class _Bar:
    """A rich progress bar on stderr: steps, loss, learning rate, images/s, time left."""

    def __init__(self, err: TextIO, total: int, start: int):
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.console = Console(file=err)
        self.progress = Progress(
            TextColumn("training"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}  lr {task.fields[lr]}  {task.fields[speed]} images/s"),
            TimeRemainingColumn(),
            console=self.console,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self.task = self.progress.add_task("train", total=total, completed=start, loss="-", lr="-", speed="-")
        self.progress.start()

    def update(self, record: dict[str, Any]) -> None:
        self.progress.update(
            self.task,
            loss=f"{record['loss']:.4f}",
            lr=f"{record['lr']:.2e}",
            speed=f"{record['images_per_s']:.1f}",
        )

    def advance_to(self, step: int) -> None:
        self.progress.update(self.task, completed=step)

    def stop(self) -> None:
        self.progress.stop()
