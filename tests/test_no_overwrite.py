"""Nothing of the user's is deleted or overwritten: `--force` replaces only what ved wrote (or an empty folder), an
output is never one of the inputs, and what ved writes is readable as the umask says.

Every test puts real files where a careless command would destroy them (a photo, a folder with data and notes, a
folder ved did not write), runs the command through `vedcli.cli.main`, and checks that they survive byte for byte.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vedcli.checkpoints.safety import MARKER
from vedcli.cli import main

TEXTS = ["a dog in the park", "the cat on a table", "people walk on the beach"]


def ved(capsys, *args) -> tuple[int, str]:
    """Run `ved ARGS`; returns the exit code and stderr."""
    capsys.readouterr()
    code = main([str(a) for a in args])
    return code, capsys.readouterr().err


def snapshot(path: Path) -> dict[str, bytes | None]:
    """Every file and folder under `path` (or the file itself) with its bytes, to compare before and after."""
    if path.is_file():
        return {path.name: path.read_bytes()}
    return {str(p.relative_to(path)): p.read_bytes() if p.is_file() else None for p in sorted(path.rglob("*"))}


def photo(path: Path, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (32, 40, 3), dtype=np.uint8)).save(path)
    return path


def data_folder(folder: Path, count: int = 2) -> Path:
    """Training data as a user keeps it: images, metadata.jsonl, and notes of their own."""
    rows = []
    for i in range(count):
        photo(folder / f"{i}.png", seed=i)
        rows.append(json.dumps({"file_name": f"{i}.png", "text": TEXTS[i]}))
    (folder / "metadata.jsonl").write_text("\n".join(rows) + "\n")
    (folder / "notes.txt").write_text("where these came from\n")
    return folder


def user_folder(folder: Path) -> Path:
    """A non-empty folder ved did not write."""
    folder.mkdir(parents=True)
    (folder / "notes.txt").write_text("my notes\n")
    photo(folder / "holiday.png")
    return folder


def train_args(model: Path, data: Path, run: Path) -> list:
    return [
        "train",
        "--model",
        model,
        "--data",
        data,
        "--output",
        run,
        "--max-steps",
        1,
        "--batch-size",
        2,
        "--log-every",
        1,
    ]


def compose_args(out: Path) -> list:
    shrink = [
        "--encoder-config",
        "hidden_size=16",
        "--encoder-config",
        "num_hidden_layers=1",
        "--encoder-config",
        "num_attention_heads=2",
        "--encoder-config",
        "intermediate_size=16",
        "--encoder-config",
        "image_size=32",
        "--encoder-config",
        "patch_size=16",
        "--decoder-config",
        "n_embd=16",
        "--decoder-config",
        "n_layer=1",
        "--decoder-config",
        "n_head=2",
        "--decoder-config",
        "n_positions=32",
    ]
    return ["compose", "vit", "gpt2", "-o", out, *shrink]


def no_leftovers(folder: Path) -> None:
    """No temporary or replaced folder of ved's is left beside or inside `folder`."""
    for place in (folder.parent, folder):
        assert not [p.name for p in place.iterdir() if p.name.endswith(".partial") or ".old-" in p.name]


# --- what --force refuses, per command ----------------------------------------------------------------------------


FOREIGN = {
    "photo": lambda tmp: photo(tmp / "photo.png"),
    "user-folder": lambda tmp: user_folder(tmp / "mine"),
    "data-folder": lambda tmp: data_folder(tmp / "lines"),
    "hf-checkpoint": None,  # a model folder transformers wrote: the user's, not ved's
}


def _foreign(kind: str, tmp: Path, tiny) -> Path:
    if kind == "hf-checkpoint":
        import shutil

        return Path(shutil.copytree(tiny("vit", "gpt2"), tmp / "their-model"))
    return FOREIGN[kind](tmp)


@pytest.mark.parametrize("kind", list(FOREIGN))
@pytest.mark.parametrize("command", ["train", "compose", "convert"])
def test_force_never_replaces_what_ved_did_not_write(capsys, tmp_path, tiny, command, kind):
    target = _foreign(kind, tmp_path, tiny)
    before = snapshot(target)
    data = data_folder(tmp_path / "data")
    args = {
        "train": train_args(tiny("vit", "gpt2"), data, target),
        "compose": compose_args(target),
        "convert": ["convert", tiny("vit", "gpt2"), "-o", target],
    }[command]
    for force in ([], ["--force"]):
        code, err = ved(capsys, *args, *force)
        assert code == 2, err
        assert err.startswith("Error: ") and err.count("\n") == 1, err
        assert "which ved did not write" in err or "is a file, not a folder ved wrote" in err, err
        assert "ved will not replace it" in err and f"({target})" in err, err
        assert "--force" not in err, err  # never recommended for what it would not replace
        assert snapshot(target) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["data", target.name])  # nothing written beside


def test_refusal_names_what_ved_did_not_write(capsys, tmp_path):
    target = user_folder(tmp_path / "mine")
    code, err = ved(capsys, *compose_args(target), "--force")
    assert (
        err == f"Error: already exists and holds holiday.png, notes.txt, which ved did not write; ved will not "
        f"replace it ({target})\n"
    )
    target = photo(tmp_path / "photo.png")
    code, err = ved(capsys, *compose_args(target), "--force")
    assert err == f"Error: already exists and is a file, not a folder ved wrote; ved will not replace it ({target})\n"


def test_a_ved_folder_with_the_users_files_added_is_refused(capsys, tmp_path, tiny):
    out = tmp_path / "out"
    assert ved(capsys, "convert", tiny("vit", "gpt2"), "-o", out)[0] == 0
    (out / "README.md").write_text("my model card\n")
    before = snapshot(out)
    code, err = ved(capsys, "convert", tiny("vit", "gpt2"), "-o", out, "--force")
    assert code == 2 and "holds README.md, which ved did not write; ved will not replace it" in err, err
    assert snapshot(out) == before


def test_a_link_to_a_ved_folder_is_refused(capsys, tmp_path, tiny):
    out = tmp_path / "out"
    assert ved(capsys, "convert", tiny("vit", "gpt2"), "-o", out)[0] == 0
    link = tmp_path / "link"
    link.symlink_to(out)
    before = snapshot(out)
    code, err = ved(capsys, "convert", tiny("vit", "gpt2"), "-o", link, "--force")
    assert code == 2 and "is a symbolic link, not a folder ved wrote" in err, err
    assert link.is_symlink() and snapshot(out) == before


# --- what --force replaces ----------------------------------------------------------------------------------------


def test_force_replaces_a_folder_ved_wrote(capsys, tmp_path, tiny):
    out = tmp_path / "out"
    assert ved(capsys, *compose_args(out))[0] == 0
    assert json.loads((out / MARKER).read_text())["kind"] == "model"
    code, err = ved(capsys, *compose_args(out))
    assert (code, err) == (2, f"Error: already exists; --force replaces it ({out})\n")
    assert ved(capsys, "convert", tiny("vit", "gpt2"), "-o", out, "--force")[0] == 0  # a compose output, replaced
    assert (out / "model.safetensors").is_file() and (out / MARKER).is_file()
    no_leftovers(out)


def test_an_empty_folder_is_used_without_force(capsys, tmp_path, tiny):
    out = tmp_path / "empty"
    out.mkdir()
    assert ved(capsys, "convert", tiny("vit", "gpt2"), "-o", out)[0] == 0
    assert (out / "model.safetensors").is_file()
    run = tmp_path / "run"
    run.mkdir()
    assert ved(capsys, *train_args(tiny("vit", "gpt2"), data_folder(tmp_path / "data"), run))[0] == 0
    assert (run / "last" / "model.safetensors").is_file()


def test_train_force_replaces_its_own_run_whole(capsys, tmp_path, tiny):
    data = data_folder(tmp_path / "data")
    run = tmp_path / "run"
    args = train_args(tiny("vit", "gpt2"), data, run)
    assert ved(capsys, *args)[0] == 0
    assert json.loads((run / MARKER).read_text())["kind"] == "run"
    code, err = ved(capsys, *args)
    assert code == 2
    assert err == f"Error: run folder already exists: --resume continues it, --force starts it over ({run})\n"
    old_args = (run / "train_args.json").read_text()
    (run / "metrics.jsonl").write_text('{"event": "old"}\n')
    before = snapshot(run)
    bad = data_folder(tmp_path / "bad")
    (bad / "metadata.jsonl").write_text('{"file_name": "missing.png", "text": "x"}\n')
    code, err = ved(capsys, *train_args(tiny("vit", "gpt2"), bad, run), "--force")  # fails at set-up
    assert code != 0 and snapshot(run) == before  # the old run is untouched
    assert ved(capsys, *args, "--force", "--seed", 7)[0] == 0
    assert "old" not in (run / "metrics.jsonl").read_text()
    assert (run / "train_args.json").read_text() != old_args and (run / "last").is_dir()
    no_leftovers(run)
    # a run the user has put something of theirs into is no longer only ved's
    (run / "last" / "notes.txt").write_text("keep me\n")
    before = snapshot(run)
    code, err = ved(capsys, *args, "--force")
    assert code == 2 and "holds last/notes.txt, which ved did not write" in err, err
    assert snapshot(run) == before


# --- outputs that hold the inputs ---------------------------------------------------------------------------------


def test_run_folder_that_is_or_holds_the_data_is_refused(capsys, tmp_path, tiny):
    data = data_folder(tmp_path / "lines")
    before = snapshot(data)
    for force in ([], ["--force"]):
        code, err = ved(capsys, *train_args(tiny("vit", "gpt2"), data, data), *force)
        assert (code, err) == (2, f"Error: the output is the training data; ved never writes over it ({data})\n")
        assert snapshot(data) == before
    # a ved run folder into which the user put the data
    run = tmp_path / "run"
    assert ved(capsys, *train_args(tiny("vit", "gpt2"), data, run))[0] == 0
    inner = data_folder(run / "data")
    before = snapshot(run)
    code, err = ved(capsys, *train_args(tiny("vit", "gpt2"), inner, run), "--force")
    assert (code, err) == (
        2,
        f"Error: the output holds the training data ({inner}); ved never writes over it ({run})\n",
    )
    assert snapshot(run) == before
    code, err = ved(capsys, *train_args(tiny("vit", "gpt2"), data, run), "--val-data", inner, "--force")
    assert code == 2 and "holds the validation data" in err
    assert snapshot(run) == before


def test_run_folder_holding_the_model_to_fine_tune_is_refused(capsys, tmp_path, tiny):
    data = data_folder(tmp_path / "data")
    run = tmp_path / "run"
    assert ved(capsys, *train_args(tiny("vit", "gpt2"), data, run))[0] == 0
    before = snapshot(run)
    code, err = ved(capsys, *train_args(run / "last", data, run), "--force")
    assert (code, err) == (
        2,
        f"Error: the output holds the model to fine-tune ({run / 'last'}); ved never writes over it ({run})\n",
    )
    assert snapshot(run) == before


def test_convert_and_compose_never_write_over_their_source(capsys, tmp_path, tiny):
    run = tmp_path / "run"
    assert ved(capsys, *train_args(tiny("vit", "gpt2"), data_folder(tmp_path / "data"), run))[0] == 0
    before = snapshot(run)
    code, err = ved(capsys, "convert", run / "last", "-o", run / "last", "--force")
    assert (code, err) == (2, f"Error: the output is the source model; ved never writes over it ({run / 'last'})\n")
    code, err = ved(capsys, "convert", run / "last", "-o", run, "--force")
    assert code == 2 and f"the output holds the source model ({run / 'last'})" in err, err
    link = tmp_path / "link"
    link.symlink_to(run)
    code, err = ved(capsys, "convert", link / "last", "-o", run, "--force")
    assert code == 2 and "the output holds the source model" in err, err
    code, err = ved(capsys, *compose_args(run), "--tokenizer", run / "last", "--force")
    assert code == 2 and f"the output holds the tokenizer source ({run / 'last'})" in err, err
    assert snapshot(run) == before


def _caption(capsys, tiny, *args) -> tuple[int, str]:
    return ved(capsys, "caption", "--model", tiny("vit", "gpt2"), "--max-new-tokens", 2, *args)


def test_caption_never_writes_over_an_input(capsys, tmp_path, tiny):
    a, b = photo(tmp_path / "a.png", 1), photo(tmp_path / "imgs" / "b.png", 2)
    before = {p: p.read_bytes() for p in (a, b)}
    link = tmp_path / "link.png"
    link.symlink_to(b)
    hard = tmp_path / "hard.png"
    os.link(a, hard)
    cases = [
        ([a, b, "-o", a], a),  # the same path
        ([tmp_path / "imgs", "-o", b], b),  # a file of a folder input
        ([a, "-o", tmp_path / "imgs" / ".." / "a.png"], a),  # another spelling of the path
        ([tmp_path / "imgs", "-o", link], b),  # a link to an input
        ([a, "-o", hard], a),  # a hard link to an input
    ]
    for args, _victim in cases:
        code, err = _caption(capsys, tiny, *args, "--format", "jsonl")
        assert code == 2, err
        assert err.startswith("Error: the output file is the input ") and err.endswith(
            "; ved never writes over an input (--output)\n"
        ), err
        assert {p: p.read_bytes() for p in (a, b)} == before
    code, err = _caption(capsys, tiny, a, b, "-o", tmp_path / "captions.jsonl", "--format", "jsonl")
    assert code == 0, err
    assert len((tmp_path / "captions.jsonl").read_text().splitlines()) == 2


def test_caption_input_from_stdin_is_protected(capsys, tmp_path, tiny, monkeypatch):
    import io

    a = photo(tmp_path / "a.png")
    before = a.read_bytes()
    monkeypatch.setattr("sys.stdin", io.StringIO(f"{a}\n"))
    code, err = _caption(capsys, tiny, "-", "-o", a)
    assert code == 2 and "the output file is the input" in err, err
    assert a.read_bytes() == before


# --- permissions --------------------------------------------------------------------------------------------------


@pytest.fixture(params=[0o022, 0o002])
def mask(request):
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def _modes(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): stat.S_IMODE(p.stat().st_mode) for p in [folder, *folder.rglob("*")]}


def _expected(folder: Path, mask: int) -> dict[str, int]:
    return {str(p.relative_to(folder)): (0o777 if p.is_dir() else 0o666) & ~mask for p in [folder, *folder.rglob("*")]}


def test_files_ved_writes_follow_the_umask(capsys, tmp_path, tiny, mask):
    out = tmp_path / "converted"
    assert ved(capsys, "convert", tiny("vit", "gpt2"), "-o", out, "--max-shard-size", "100KB")[0] == 0
    assert len(list(out.glob("model-*.safetensors"))) > 1
    assert _modes(out) == _expected(out, mask)
    composed = tmp_path / "composed"
    assert ved(capsys, *compose_args(composed))[0] == 0
    assert _modes(composed) == _expected(composed, mask)
    run = tmp_path / "run"
    args = [*train_args(tiny("vit", "gpt2"), data_folder(tmp_path / "data"), run), "--val-split", "0.5"]
    assert ved(capsys, *args)[0] == 0
    assert (run / "best" / "model.safetensors").is_file() and (run / "last" / "training_state.pt").is_file()
    assert _modes(run) == _expected(run, mask)
