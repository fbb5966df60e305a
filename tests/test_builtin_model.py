"""The built-in model: `printed` resolves to a folder shipped in the package, everywhere a model name is accepted,
with no network call; a missing or damaged one is one clear error line.

The real weights are not in the repository's tests: `vedcli.checkpoints.builtin.ROOT` is pointed at a tiny fp16 stand-in
written by transformers (tests/checkpoints.py), so these tests check the mechanism, not the reader.
"""

from __future__ import annotations

import fnmatch
import json
import shutil
import socket
import subprocess
import sys
import zipfile
from pathlib import Path

import huggingface_hub
import numpy as np
import pytest
import tomllib
from PIL import Image
from typer.testing import CliRunner

from support.checkpoints import write_checkpoint
from vedcli.checkpoints import builtin, hub
from vedcli.cli import OCR_MODEL, app
from vedcli.commands.convert import convert

ROOT = Path(__file__).resolve().parents[1]


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def stand_in(tmp_path_factory) -> Path:
    """A models/ folder holding `printed`: a tiny ViT + TrOCR checkpoint stored in fp16, as the real one is."""
    source = write_checkpoint(tmp_path_factory.mktemp("source"), "vit", "trocr", eos_boost=4.0)
    root = tmp_path_factory.mktemp("models")
    convert(str(source), root / "printed", dtype="fp16")
    return root


class NetworkUsed(AssertionError):
    pass


@pytest.fixture(autouse=True)
def no_network(stand_in, monkeypatch):
    """The stand-in is the built-in model; HF_HUB_OFFLINE is unset and any hub call or socket connection fails."""
    monkeypatch.setattr(builtin, "ROOT", stand_in)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    hub_calls: list[str] = []

    def refuse(*args, **kwargs):
        raise NetworkUsed(f"network used: {args} {kwargs}")

    def from_hub(repo_id, *args):
        hub_calls.append(repo_id)
        raise hub.ModelError("the hub is out of reach in this test", where=repo_id)

    for name in ("snapshot_download", "hf_hub_download", "model_info"):
        monkeypatch.setattr(huggingface_hub, name, refuse)
    monkeypatch.setattr(hub, "snapshot_download", refuse)
    monkeypatch.setattr(hub, "HfApi", refuse)
    monkeypatch.setattr(hub, "_from_hub", from_hub)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    return hub_calls


@pytest.fixture
def line(tmp_path) -> Path:
    path = tmp_path / "line.png"
    Image.fromarray(np.random.default_rng(3).integers(0, 256, (20, 90, 3), dtype=np.uint8)).save(path)
    return path


# --- the name, everywhere ------------------------------------------------------------------------------------------


def test_ocr_reads_with_the_builtin_model_by_default(stand_in, line, no_network) -> None:
    assert OCR_MODEL == "printed"
    default = invoke("ocr", line, "--format", "jsonl")
    assert (default.exit_code, default.stderr) == (0, "")
    named = invoke("ocr", line, "--model", "printed", "--format", "jsonl")
    folder = invoke("ocr", line, "--model", stand_in / "printed", "--format", "jsonl")
    assert default.stdout == named.stdout == folder.stdout
    assert json.loads(default.stdout)["text"] != ""  # the tiny random model says something
    assert no_network == []


def test_hub_ids_still_go_to_the_hub(line, no_network) -> None:
    result = invoke("ocr", line, "--model", "microsoft/trocr-base-printed")
    assert result.exit_code == 2
    assert result.stderr == "Error: the hub is out of reach in this test (microsoft/trocr-base-printed)\n"
    assert no_network == ["microsoft/trocr-base-printed"]


def test_info_names_the_builtin_folder(stand_in) -> None:
    result = invoke("info", "printed", "--format", "json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["model"]["source"] == "printed"
    assert Path(report["model"]["folder"]) == stand_in / "printed"


def test_convert_the_builtin_model(tmp_path) -> None:
    result = invoke("convert", "printed", "-o", tmp_path / "copy", "--dtype", "fp32")
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "copy" / "model.safetensors").is_file()


def test_compose_with_either_half_of_the_builtin_model(tiny, tmp_path) -> None:
    other = tiny("deit", "gpt2")
    first = invoke("compose", "printed", other, "-o", tmp_path / "a")
    assert first.exit_code == 0, first.stderr
    assert first.stdout.startswith(f"wrote {tmp_path / 'a'}: printed (vit, pretrained) + {other} (gpt2, pretrained)")
    second = invoke("compose", other, "printed", "-o", tmp_path / "b")
    assert second.exit_code == 0, second.stderr
    assert "printed (trocr, pretrained)" in second.stdout
    assert json.loads((tmp_path / "b" / "config.json").read_text())["decoder"]["model_type"] == "trocr"


def test_train_from_the_builtin_model(tmp_path) -> None:
    data = tmp_path / "lines"
    data.mkdir()
    rows = []
    for i, text in enumerate(["the cat", "a dog"]):
        Image.new("RGB", (60, 16), (255, 255 - 90 * i, 255)).save(data / f"{i}.png")
        rows.append(json.dumps({"file_name": f"{i}.png", "text": text}))
    (data / "metadata.jsonl").write_text("\n".join(rows) + "\n")
    result = invoke("train", "--model", "printed", "--data", data, "--output", tmp_path / "run", "--max-steps", 1)
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "run" / "last" / "model.safetensors").is_file()


def test_library_api_takes_the_name(stand_in) -> None:
    import vedcli

    assert vedcli.load_model("printed").config.decoder.family == "trocr"


# --- names and folders -----------------------------------------------------------------------------------------------


def test_builtin_name_wins_over_a_folder_of_that_name(stand_in, tiny, tmp_path, monkeypatch) -> None:
    shutil.copytree(tiny("vit", "gpt2"), tmp_path / "printed")
    monkeypatch.chdir(tmp_path)
    name = json.loads(invoke("info", "printed", "--format", "json").stdout)
    assert Path(name["model"]["folder"]) == stand_in / "printed"
    for path in ("./printed", "printed/", str(tmp_path / "printed")):
        local = invoke("info", path, "--format", "json")
        assert local.exit_code == 0, local.stderr
        assert json.loads(local.stdout)["decoder"]["type"] == "gpt2"


def test_revision_does_not_apply_to_a_builtin_model(line) -> None:
    result = invoke("ocr", line, "--revision", "main")
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == (
        "Error: --revision only applies to hub models, not to the built-in model 'printed' (--revision)\n"
    )
    compose = invoke("compose", "printed", "gpt2", "-o", "unused", "--revision-encoder", "v1")
    assert compose.exit_code == 2
    assert compose.stderr.startswith("Error: --revision-encoder only applies to hub models")


# --- a broken install ------------------------------------------------------------------------------------------------


def test_missing_builtin_model_says_how_to_choose_another(line, tmp_path, monkeypatch, no_network) -> None:
    monkeypatch.setattr(builtin, "ROOT", tmp_path / "models")
    result = invoke("ocr", line)
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == (
        "Error: the built-in model 'printed' is not installed in this copy of ved: reinstall ved, or name another "
        "model, e.g. --model microsoft/trocr-base-printed or --model path/to/folder "
        f"({tmp_path / 'models' / 'printed'})\n"
    )
    assert no_network == []


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-100])


DAMAGE = {
    "no weights": ("model.safetensors", lambda p: p.unlink(), "model.safetensors is missing"),
    "truncated weights": ("model.safetensors", _truncate, "model.safetensors is "),
    "weights not safetensors": ("model.safetensors", lambda p: p.write_bytes(b"\x00" * 64), "not a safetensors file"),
    "bad config": ("config.json", lambda p: p.write_text("{not json"), "config.json: invalid JSON"),
    "no processor": ("preprocessor_config.json", lambda p: p.unlink(), "preprocessor_config.json is missing"),
    "generation not an object": (
        "generation_config.json",
        lambda p: p.write_text("[]"),
        "generation_config.json: expected a JSON object",
    ),
    "no tokenizer": (None, None, "no tokenizer file"),
}


@pytest.mark.parametrize("damage", DAMAGE)
def test_damaged_builtin_model_is_one_line_naming_the_file(damage, stand_in, line, tmp_path, monkeypatch) -> None:
    shutil.copytree(stand_in / "printed", tmp_path / "printed")
    file, spoil, words = DAMAGE[damage]
    if file is None:
        for name in builtin.TOKENIZER_FILES:
            (tmp_path / "printed" / name).unlink(missing_ok=True)
    else:
        spoil(tmp_path / "printed" / file)
    monkeypatch.setattr(builtin, "ROOT", tmp_path)
    for args in (("ocr", line), ("info", "printed")):
        result = invoke(*args)
        assert (result.exit_code, result.stdout) == (2, "")
        assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.output
        assert result.stderr.startswith("Error: the built-in model 'printed' is damaged: ")
        assert words in result.stderr and "reinstall ved" in result.stderr
        where = str(tmp_path / "printed" / file) if file else str(tmp_path / "printed")
        assert result.stderr.endswith(f" ({where})\n")


# --- packaging -------------------------------------------------------------------------------------------------------


def test_pyproject_ships_every_file_of_a_builtin_model(stand_in) -> None:
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["vedcli"]
    files = {p.name for p in (stand_in / "printed").iterdir() if not p.name.startswith(".")}  # .ved: a marker
    assert set(builtin.REQUIRED_FILES) <= files
    for name in files | set(builtin.TOKENIZER_FILES) | {"merges.txt", "README.md"}:
        assert any(fnmatch.fnmatch(f"models/printed/{name}", pattern) for pattern in patterns), name
    assert not any(fnmatch.fnmatch("models/printed/training_state.pt", pattern) for pattern in patterns)


@pytest.mark.slow
def test_wheel_holds_the_shipped_model(tmp_path) -> None:
    """Build the wheel (no network: the installed setuptools) and find the shipped folder's files in it."""
    shipped = ROOT / "vedcli" / "models" / "printed"
    if not shipped.is_dir():
        pytest.skip("no built-in model in this checkout yet")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(ROOT),
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
        ],
        check=True,
    )
    (wheel,) = tmp_path.glob("vedcli-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for path in shipped.iterdir():
        if path.name.startswith("."):  # markers such as .ved are not part of the model
            continue
        assert f"vedcli/models/printed/{path.name}" in names
