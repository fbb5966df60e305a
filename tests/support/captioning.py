"""Shared helpers of the caption / ocr tests that run ved as a process: image folders, the caption subprocess (for
Ctrl-C, closed pipes and kills), and the same command under torchrun."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]  # the repository: `python -m vedcli` starts from there


def images(folder: Path, count: int, start: int = 0) -> Path:
    """`count` small random PNGs, named 0000.png, 0001.png, ... (from `start`)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(start)
    for i in range(start, start + count):
        Image.fromarray(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(folder / f"{i:04d}.png")
    return folder


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1", **extra}


def start_caption(folder: Path, model: Path, tmp_path: Path, *extra: str, text: bool = False) -> subprocess.Popen:
    """`python -m vedcli caption FOLDER --model MODEL --batch-size 1 EXTRA...`, offline, its output piped."""
    cmd = [sys.executable, "-m", "vedcli", "caption", str(folder), "--model", str(model), "--batch-size", "1", *extra]
    env = _env(tmp_path)
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=text, env=env)


def torchrun_caption(
    folder: Path, model: Path, tmp_path: Path, *extra: str, processes: int = 2, timeout: float = 240
) -> subprocess.CompletedProcess:
    """The command of `start_caption` under torchrun as `processes` CPU processes (gloo), one thread each."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes)]
    cmd += ["-m", "vedcli", "caption", str(folder), "--model", str(model), "--batch-size", "1", *extra]
    env = _env(tmp_path, OMP_NUM_THREADS="1")
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def torchrun_nodes(
    folder: Path, model: Path, tmp_path: Path, *extra: str, nodes: int = 2, timeout: float = 240
) -> list[subprocess.CompletedProcess]:
    """The command of `start_caption` as `nodes` machines would run it: one torchrun launcher per "machine", each with
    one CPU process, meeting through a c10d rendezvous on this host (torchrun's multi-machine path: `--nnodes`,
    `--rdzv_backend c10d`, `--rdzv_endpoint`). The launchers' results, in start order."""
    with socket.socket() as probe:  # a free port for the rendezvous
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", str(nodes), "--nproc_per_node", "1",
           "--rdzv_backend", "c10d", "--rdzv_endpoint", f"127.0.0.1:{port}", "--rdzv_id", "ved-test"]  # fmt: skip
    cmd += ["-m", "vedcli", "caption", str(folder), "--model", str(model), "--batch-size", "1", *extra]
    env = _env(tmp_path, OMP_NUM_THREADS="1")
    launchers = [subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(nodes)]  # fmt: skip
    done = []
    for launcher in launchers:
        stdout, stderr = launcher.communicate(timeout=timeout)
        done.append(subprocess.CompletedProcess(cmd, launcher.returncode, stdout, stderr))
    return done
