"""The speed work, checked without timing anything: the benchmark's table, done rows dropped from decoding, the beam
cache reordered without copies back, and the opt-in fast paths (--dtype auto, the slow-bf16 warning, --quantize int8).
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from support.checkpoints import natural_eos, reference
from vedcli.checkpoints import fast
from vedcli.checkpoints.load import load_model
from vedcli.cli import main
from vedcli.layers import KVCache

ROOT = Path(__file__).resolve().parents[1]
PIXELS = torch.randn(5, 3, 32, 32, generator=torch.Generator().manual_seed(1))


def _bench():
    """benchmarks/bench.py, loaded from its file."""
    spec = importlib.util.spec_from_file_location("ved_bench", ROOT / "benchmarks" / "bench.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["ved_bench"] = module  # its dataclass looks itself up there
    spec.loader.exec_module(module)
    return module


def _cells(row: str) -> list[str]:
    return [cell.strip() for cell in row.strip().strip("|").split("|")]


def test_bench_quick_prints_the_table_and_merges_runs(tmp_path, capsys):
    bench = _bench()
    record = tmp_path / "runs.jsonl"
    bench.main(["--quick", "--no-onnx", "--no-rss", "--cache", str(tmp_path / "cache"), "--json", str(record)])
    table = capsys.readouterr().out
    assert "matmul peak measured: fp32" in table and "machine:" in table
    rows = [_cells(line) for line in table.splitlines() if line.startswith("| `tiny")]
    assert [cells[:2] for cells in rows] == [["`tiny-gpt2`", "1"], ["`tiny-trocr`", "4"]]
    for cells in rows:
        assert cells[-1] == "yes"  # ids identical to the reference's
        assert cells[6] == "not run"  # ONNX Runtime left out
        assert float(cells[8]) > 0  # counted GFLOP per image
        assert float(cells[10]) > 0 and cells[11].endswith(" %")  # floor: encoder FLOPs + decoding's bytes
        assert cells[12] == cells[13] == "—"  # no peak RSS measured
    records = [json.loads(line) for line in record.read_text().splitlines()]
    assert [r.get("workload") for r in records] == [None, "tiny-gpt2:1", "tiny-trocr:4"]
    bench.main(["--table", str(record), str(record)])  # two runs' figures, one table
    assert capsys.readouterr().out.count("| `tiny-trocr` | 4 |") == 2


def test_gpu_bench_quick_runs_its_three_columns(tmp_path, capsys):
    """benchmarks/gpu_bench.py on tiny shapes (the CPU here: its static-cache column is ved's usual path)."""
    spec = importlib.util.spec_from_file_location("ved_gpu_bench", ROOT / "benchmarks" / "gpu_bench.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(["--quick", "--cache", str(tmp_path), "--json", str(tmp_path / "gpu.jsonl")])
    rows = [_cells(line) for line in capsys.readouterr().out.splitlines() if line.startswith("| tiny")]
    assert [cells[:3] for cells in rows] == [["tiny-gpt2:1", "fp32", "2"], ["tiny-trocr:4", "fp32", "2"]]
    for cells in rows:
        assert all(float(cell) > 0 for cell in cells[3:6])
        assert cells[8] == "100.0 %, 100.0 %" and cells[9] == "yes"  # fp32 on the CPU: the reference's tokens
    assert len((tmp_path / "gpu.jsonl").read_text().splitlines()) == 2


@pytest.mark.slow
def test_bench_measures_peak_rss_in_fresh_processes(tmp_path, capsys):
    _bench().main(["--quick", "--no-onnx", "--workloads", "tiny-trocr:1", "--cache", str(tmp_path)])
    cells = [_cells(line) for line in capsys.readouterr().out.splitlines() if line.startswith("| `tiny")][0]
    assert float(cells[12]) > 50 and float(cells[13]) > 50  # MiB: torch alone takes more


# --- decoding: rows that are done leave the work ---------------------------------------------------------------------


class RowCounter:
    """A model whose decoding steps are recorded: how many rows each step computes."""

    def __init__(self, model):
        self.model, self.rows = model, []

    def __getattr__(self, name):
        return getattr(self.model, name)

    def decode_step(self, tokens, cache):
        self.rows.append(tokens.shape[0])
        return self.model.decode_step(tokens, cache)


@pytest.fixture(scope="module")
def stopping(tiny, tmp_path_factory):
    folder = tmp_path_factory.mktemp("speed-eos") / "ckpt"
    shutil.copytree(tiny("vit", "trocr"), folder)
    natural_eos(folder, PIXELS)
    return reference(folder), load_model(folder)


@pytest.mark.parametrize("options", [dict(), dict(num_return_sequences=2, do_sample=True, top_k=3, seed=2)])
def test_done_rows_are_dropped_and_ids_stay_the_reference(stopping, options):
    from vedcli.generation.decoding import DecodingOptions, generate

    ref, ours = stopping
    counted = RowCounter(ours)
    resolved = DecodingOptions.from_kwargs(max_new_tokens=12, **options).resolve(ours.generation_config)
    with torch.inference_mode():
        out = generate(counted, PIXELS, resolved, ours.generation_config).sequences
    group = resolved.rows_per_image
    assert counted.rows[0] == 5 * group and counted.rows[-1] < counted.rows[0], counted.rows
    assert all(rows % group == 0 for rows in counted.rows)  # whole images leave, never some of an image's rows
    if not options:  # greedy: the same ids as the reference, which computes every row to the end
        assert torch.equal(out, ref.generate(PIXELS, max_new_tokens=12))
    eos = ours.generation_config.eos_token_ids[0]
    for row in out.tolist():  # after eos, only pad
        if eos in row[1:]:
            after = row[row.index(eos, 1) + 1 :]
            assert set(after) <= {ours.generation_config.pad_token_id}


def test_beam_cache_reorder_gathers_once_and_skips_an_unchanged_order():
    torch.manual_seed(0)
    cache = KVCache(layers=2, rows=4, heads=2, head_dim=3, max_len=6, dtype=torch.float32, device="cpu")
    expected_k = torch.zeros_like(cache.k)
    for step, order in enumerate([[1, 1, 0, 3], [0, 1, 2, 3], [3, 2, 2, 0]]):
        for layer in range(2):
            k, v = torch.randn(4, 2, 1, 3), torch.randn(4, 2, 1, 3)
            cache.update(layer, k, v)
            expected_k[layer, :, :, step : step + 1] = k
        cache.advance(1)
        before = cache.k
        index = torch.tensor(order)
        cache.reorder(index)
        expected_k[:, :, :, : step + 1] = expected_k[:, index, :, : step + 1]
        assert torch.equal(cache.k[:, :, :, : step + 1], expected_k[:, :, :, : step + 1])
        assert (cache.k is before) == (order == [0, 1, 2, 3])  # an unchanged order moves nothing


# --- the opt-in fast paths -------------------------------------------------------------------------------------------


@pytest.fixture
def cpu(monkeypatch):
    """cpu(flags...): make this machine look like a CPU with these feature flags."""

    def pretend(*flags: str) -> None:
        monkeypatch.setattr(fast, "cpu_flags", lambda: frozenset(flags))
        monkeypatch.setattr(fast, "_warned_bf16", False)

    return pretend


def test_dtype_auto_is_bf16_only_where_the_cpu_computes_it(tiny, cpu):
    folder = tiny("vit", "gpt2")
    cpu("avx2", "fma")
    assert load_model(folder, dtype="auto").dtype == torch.float32
    cpu("avx2", "avx512f", "avx512_bf16")
    assert load_model(folder, dtype="auto").dtype == torch.bfloat16
    cpu("avx2", "amx_bf16", "amx_tile")
    assert load_model(folder, dtype="auto").dtype == torch.bfloat16


def _image(folder: Path) -> Path:
    path = folder / "a.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(path)
    return path


def test_bf16_on_a_cpu_without_it_warns_once_naming_the_flag(tiny, cpu, tmp_path, capsys):
    folder, image = tiny("vit", "gpt2"), _image(tmp_path)
    cpu("avx2", "fma")
    assert main(["caption", str(image), "--model", str(folder), "--dtype", "bf16", "--max-new-tokens", "3"]) == 0
    assert main(["caption", str(image), "--model", str(folder), "--dtype", "bf16", "--max-new-tokens", "3"]) == 0
    err = capsys.readouterr().err
    assert err.count("Warning: this CPU has no bf16 arithmetic") == 1, err
    assert "(--dtype)" in err
    cpu("avx512_bf16")
    assert main(["caption", str(image), "--model", str(folder), "--dtype", "bf16", "--max-new-tokens", "3"]) == 0
    assert "Warning" not in capsys.readouterr().err


def test_quantize_int8_replaces_every_linear_and_still_reads(tiny, tmp_path, capsys):
    folder, image = tiny("vit", "trocr"), _image(tmp_path)
    model = load_model(folder, quantize="int8")
    linears = [m for m in model.modules() if type(m) is torch.nn.Linear]
    assert not linears
    out = model.generate(PIXELS, max_new_tokens=4)
    assert out.shape[0] == 5
    assert main(["ocr", str(image), "--model", str(folder), "--layout", "line", "--quantize", "int8",
                 "--max-new-tokens", "3", "--format", "jsonl"]) == 0  # fmt: skip
    assert json.loads(capsys.readouterr().out)["file"] == str(image)


def test_quantize_int8_refuses_a_half_type_naming_the_flag(tiny, tmp_path, capsys):
    image = _image(tmp_path)
    code = main(["caption", str(image), "--model", str(tiny("vit", "gpt2")), "--quantize", "int8", "--dtype", "fp16"])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("Error: int8 quantization starts from fp32 weights") and err.endswith("(--quantize)"), err
