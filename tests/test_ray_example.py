"""examples/ray_batch.py, run for real on a local Ray (skipped where ray is not installed: it is no dependency of ved):
its jsonl is what `ved caption --format jsonl` writes for the same images, bad one included."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from support.captioning import ROOT, images
from vedcli.cli import main

ray = pytest.importorskip("ray")


@pytest.mark.slow
def test_the_ray_example_writes_what_ved_writes(tiny, tmp_path, capsys):
    model = tiny("vit", "gpt2")
    folder = images(tmp_path / "in", 10)
    (folder / "0004b.png").write_text("broken")
    expected = tmp_path / "ved.jsonl"
    args = ["caption", str(folder), "--model", str(model), "--batch-size", "1", "--max-new-tokens", "4", "-o"]
    assert main([*args, str(expected)]) == 1
    out = tmp_path / "ray.jsonl"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "RAY_ENABLE_UV_RUN_RUNTIME_ENV": "0"}
    cmd = [sys.executable, "examples/ray_batch.py", str(folder), str(out), "--model", str(model), "--workers", "2"]
    cmd += ["--batch-size", "1", "--max-new-tokens", "4"]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    got = [json.loads(line) for line in out.read_text().splitlines()]
    want = [json.loads(line) for line in expected.read_text().splitlines()]
    assert [row["file"] for row in got] == [row["file"] for row in want]
    assert [(row.get("text"), "error" in row) for row in got] == [(row.get("text"), "error" in row) for row in want]
    assert [row.get("score") for row in got] == pytest.approx([row.get("score") for row in want], abs=1e-5)
