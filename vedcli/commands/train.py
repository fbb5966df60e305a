"""`ved train`: the options from the flags given (or, resuming, the run's saved settings), the run, its summary."""

from __future__ import annotations

from typing import Any, TextIO

from ..errors import option, spell
from ..training.trainer import TrainOptions, resumed_options
from ..training.trainer import train as run_training


def train(output: str, given: dict[str, Any], *, resume: bool, force: bool, stdout: TextIO, stderr: TextIO) -> bool:
    """Train into run folder `output` with the options `given` (by TrainOptions field name); print the outcome
    (process 0 only). False when the run was interrupted (RUN/last holds where it stopped)."""
    options = resumed_options(output, given) if resume else TrainOptions(output=output, force=force, **given)
    result = run_training(options)
    if result.rank != 0:
        return not result.interrupted
    run_dir = result.run
    if result.interrupted:
        again = f"ved train {option('output')} {run_dir} {option('resume')}"
        print(
            f"interrupted at step {result.step} of {result.total_steps}; {run_dir / 'last'} saved. "
            f"Continue with: {spell(again)}",
            file=stderr,
        )
        return False
    skipped = f" ({result.skipped} bad rows skipped)" if result.skipped else ""
    print(
        f"trained {result.step} of {result.total_steps} steps on {result.train_examples} examples{skipped}", file=stdout
    )
    best = result.best
    if best.value is not None:
        name = "val loss" if best.metric == "loss" else best.metric
        print(f"best: {run_dir / 'best'} (step {best.step}, {name} {best.value:.4g})", file=stdout)
    else:
        give = f"give {option('val_data')} or {option('val_split')}"
        print(spell(f"best: none (no validation data: {give})"), file=stdout)
    print(f"last: {run_dir / 'last'}", file=stdout)
    return True
