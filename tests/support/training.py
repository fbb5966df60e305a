"""Shared helpers of the training tests: tiny image-text data, running `ved train` quietly, reading a run."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import torch
import transformers as T
from PIL import Image
from safetensors.torch import load_file
from typer.testing import CliRunner

from vedcli.cli import app
from vedcli.training.state import TrainingState
from vedcli.training.trainer import TrainOptions, train

ROOT = Path(__file__).resolve().parents[2]  # the repository: torchrun starts `python -m vedcli` from there


def torchrun_train(args: list[str], timeout: float) -> subprocess.CompletedProcess:
    """`ved train ARGS` under torchrun as two CPU processes (gloo), one thread each; output captured."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    cmd += ["-m", "vedcli", "train", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


TEXTS = ["a dog in the park", "the cat on a table", "people walk on the beach", "a plate of food", "two dogs play"]


COLOURS = [(220, 30, 30), (30, 200, 40), (30, 40, 220), (230, 220, 30), (200, 40, 200)]


NO_DROPOUT = {"resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0}


def write_data(folder: Path, count: int = 4) -> Path:
    """`count` coloured squares (each with a white corner, so they differ in shape too) and metadata.jsonl."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(count):
        image = Image.new("RGB", (40, 36), COLOURS[i])
        image.paste((255, 255, 255), (0, 0, 8 + 6 * i, 8))
        image.save(folder / f"{i}.png")
        lines.append(json.dumps({"file_name": f"{i}.png", "text": TEXTS[i]}))
    (folder / "metadata.jsonl").write_text("\n".join(lines) + "\n")
    return folder


def invoke(*args):
    return CliRunner().invoke(app, ["train", *[str(a) for a in args]])


def events(run: Path, kind: str) -> list[dict]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [row for row in rows if row["event"] == kind]


def run_quietly(options: TrainOptions, **kwargs):
    return train(options, err=io.StringIO(), progress_bar=False, **kwargs)


def reference_labels(folder: Path, texts: list[str], eos: int) -> torch.Tensor:
    """The reference recipe's labels: tokenizer(text).input_ids (+ eos where the tokenizer adds none), -100 padded."""
    tok = T.AutoTokenizer.from_pretrained(folder)
    rows = []
    for text in texts:
        ids = tok(text).input_ids
        rows.append(ids if ids[-1] == eos else ids + [eos])
    width = max(map(len, rows))
    return torch.tensor([row + [-100] * (width - len(row)) for row in rows])


def train_options(model, data, run, **extra) -> TrainOptions:
    # 5 examples in batches of 2, two batches an update: epochs end mid-update and on a short batch; dropout is on
    return TrainOptions(
        model=str(model),
        data=str(data),
        output=str(run),
        batch_size=2,
        grad_accum=2,
        lr=1e-3,
        warmup_steps=2,
        weight_decay=0.1,
        log_every=1,
        seed=7,
        **extra,
    )


def same_weights(a: Path, b: Path) -> None:
    wa, wb = load_file(a / "last" / "model.safetensors"), load_file(b / "last" / "model.safetensors")
    assert wa.keys() == wb.keys()
    assert all(torch.equal(wa[k], wb[k]) for k in wa), "weights differ"
    sa, sb = TrainingState.load(a / "last"), TrainingState.load(b / "last")
    assert sa.position == sb.position
    for (ka, va), (kb, vb) in zip(sa.optimizer["state"].items(), sb.optimizer["state"].items(), strict=True):
        assert ka == kb and all(torch.equal(va[n], vb[n]) for n in va)


# Two processes sum the same numbers in another order (per-process partial sums, then all-reduce), so results agree
# to float32 rounding of the values' own scale, not to a fixed number of decimals: how many units in the last place
# depends on the CPU's kernels (AVX-512 vs AVX2 sum in other blocks). 256 float32 ulps of the value's size is far
# below any real difference (a loss scaled by the process count, a missing example) and above what reduction order
# and Adam's amplification of near-zero gradients over four steps give on either kind of CPU.
ULPS = 256


def close(a: float, b: float) -> bool:
    """Whether `a` and `b` agree to ULPS float32 units in the last place of their size (at least 1)."""
    return abs(a - b) <= ULPS * torch.finfo(torch.float32).eps * max(abs(a), abs(b), 1.0)
