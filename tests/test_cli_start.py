"""Starting fast and stopping cleanly: what ved does before torch is imported, what model construction imports, Ctrl-C
at any moment, a closed pipe, and the small command-line conveniences (format from the output's extension, options
checked before the model loads, a status line while it loads, -h, plain help).

Timings are measured by hand (README); these tests check what makes them fast: which modules are imported when.
"""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from support.captioning import images, start_caption
from vedcli.cli import app, main
from vedcli.commands import caption as runner_module
from vedcli.generation import pipeline as pipeline_module

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = ["caption", "ocr", "convert", "compose", "train", "info"]


def python(code: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    """Run `code` in a fresh interpreter (HF_HOME in tmp_path, offline); its last line prints what it checks."""
    environment = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1", **env}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=environment,
    )


# --- what runs before torch ---------------------------------------------------------------------------------------


def test_help_of_every_command_starts_without_torch(tmp_path):
    done = python(
        f"""
        import sys
        from vedcli.cli import main
        codes = [main([name, "--help"]) for name in {COMMANDS!r}] + [main(["-h"])]
        print(codes, "torch" in sys.modules)
    """,
        tmp_path,
    )
    assert done.stdout.splitlines()[-1] == f"{[0] * (len(COMMANDS) + 1)} False", done.stderr


def test_a_missing_model_is_reported_before_torch_is_imported(tmp_path):
    image = images(tmp_path / "in", 1) / "0000.png"
    done = python(
        f"""
        import sys
        from vedcli.cli import main
        code = main(["caption", {str(image)!r}, "--model", "someone/absent-model"])
        print(code, "torch" in sys.modules)
    """,
        tmp_path,
    )
    assert done.stdout.splitlines()[-1] == "2 False", done.stderr
    assert done.stderr == (
        "Error: model is not in the local cache and offline mode is on (HF_HUB_OFFLINE) (someone/absent-model)\n"
    )


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--beams", "0"], "Error: --beams must be >= 1, not 0 (--beams)"),
        (["--sample", "--top-p", "2"], "Error: --top-p must be between 0 and 1 (--top-p)"),
        (
            ["--max-new-tokens", "3", "--min-new-tokens", "5"],
            "Error: --min-new-tokens is more than --max-new-tokens (--min-new-tokens)",
        ),
    ],
)
def test_bad_options_are_refused_before_the_model_is_read(flags, message, tiny, tmp_path):
    """A checkpoint whose weights are gone: reading it would be an error about the model, not about the flag."""
    folder = tmp_path / "model"
    folder.mkdir()
    for path in tiny("vit", "gpt2").iterdir():
        if not path.name.endswith(".safetensors"):
            (folder / path.name).write_bytes(path.read_bytes())
    image = images(tmp_path / "in", 1) / "0000.png"
    done = python(
        f"""
        import sys
        from vedcli.cli import main
        code = main(["caption", {str(image)!r}, "--model", {str(folder)!r}, *{flags!r}])
        print(code, "torch" in sys.modules)
    """,
        tmp_path,
    )
    assert done.stdout.splitlines()[-1] == "2 False", done.stderr
    assert done.stderr == message + "\n"


@pytest.mark.parametrize("decoder", ["gpt2", "bert"])
def test_building_a_model_does_not_import_the_compiler(decoder, tiny, tmp_path):
    """nn.Embedding's random init on the meta device imports torch._dynamo (seconds); loading needs no init."""
    done = python(
        f"""
        import sys
        from vedcli.checkpoints.load import load_model
        load_model({str(tiny("vit", decoder))!r})
        print(sorted(name for name in ("torch._dynamo", "torch._inductor") if name in sys.modules))
    """,
        tmp_path,
    )
    assert done.stdout.splitlines()[-1] == "[]", done.stderr


# --- Ctrl-C at any moment ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("delay", [0.2, 1.0, 2.0])
def test_ctrl_c_at_any_moment_exits_130_and_keeps_whole_lines(delay, tiny, tmp_path):
    """Ctrl-C while Python imports torch, while the model loads, or while images are captioned: "Interrupted.",
    exit code 130, never a traceback; the rows written so far are whole."""
    folder = images(tmp_path / "in", 300)
    out = tmp_path / "rows.jsonl"
    process = start_caption(folder, tiny("vit", "gpt2"), tmp_path, "-o", str(out), text=True)
    time.sleep(delay)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert stderr.splitlines()[-1:] == ["Interrupted."], stderr
    assert "Traceback" not in stderr and stdout == ""
    if out.exists():
        assert all(json.loads(line)["file"].startswith(str(folder)) for line in out.read_text().splitlines())


def test_a_closed_pipe_ends_the_run_quietly(tiny, tmp_path):
    """`ved caption ... | head -1`: exit code 141 (128 + SIGPIPE), nothing on stderr."""
    folder = images(tmp_path / "in", 200)
    process = start_caption(folder, tiny("vit", "gpt2"), tmp_path)
    first = process.stdout.readline()
    process.stdout.close()  # the reader goes away
    stderr = process.stderr.read()
    process.wait(timeout=60)
    assert first.startswith(str(folder).encode())
    assert (process.returncode, stderr) == (141, b"")


# --- the small conveniences (a recording fake pipeline: exact and instant) ---------------------------------------


class Fake:
    loads: list = []
    processor = None

    @classmethod
    def load(cls, model, revision=None, device="auto", dtype=None):
        cls.loads.append(model)
        return cls()

    def resolve(self, options):
        return SimpleNamespace(num_return_sequences=1)

    def run(self, images, options):
        return [[SimpleNamespace(text=f"{image.size[0]}x{image.size[1]}", score=-1.0, tokens=[])] for image in images]


@pytest.fixture
def fake(monkeypatch):
    Fake.loads = []
    monkeypatch.setattr(pipeline_module, "Pipeline", Fake)
    return Fake


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


@pytest.mark.parametrize(
    "name, format",
    [
        ("rows.jsonl", "jsonl"),
        ("rows.JSONL", "jsonl"),
        ("rows.csv", "csv"),
        ("rows.tsv", "tsv"),
        ("rows.txt", "text"),
        ("rows.out", "text"),
        ("rows", "text"),
    ],
)
def test_the_format_follows_the_output_files_extension(name, format, fake, tmp_path):
    folder = images(tmp_path / "in", 2)
    out = tmp_path / name
    result = invoke("caption", str(folder), "-o", str(out))
    assert (result.exit_code, result.stdout) == (0, ""), result.output
    lines = out.read_text().splitlines()
    files = [str(folder / "0000.png"), str(folder / "0001.png")]
    if format == "jsonl":
        assert [json.loads(line)["file"] for line in lines] == files
    elif format == "csv":
        assert list(csv.reader(lines))[0] == ["file", "text", "score", "error"]
    elif format == "tsv":
        assert lines[0] == "file\ttext\tscore\terror"
    else:
        assert lines == [f"{file}: 24x20" for file in files]


def test_an_explicit_format_wins_over_the_extension(fake, tmp_path):
    folder = images(tmp_path / "in", 1)
    out = tmp_path / "rows.jsonl"
    assert invoke("caption", str(folder), "-o", str(out), "--format", "csv").exit_code == 0
    assert out.read_text().splitlines()[0] == "file,text,score,error"
    assert invoke("caption", str(folder), "--format", "jsonl").stdout.startswith("{")  # stdout: as --format says


@pytest.mark.parametrize(
    "flags",
    [
        ["--beams", "0"],
        ["--top-p", "2", "--sample"],
        ["--temperature", "-1", "--sample"],
        ["--num-return-sequences", "0"],
        ["--max-pixels", "many"],
    ],
)
def test_options_fail_before_the_model_loads(flags, fake, tmp_path):
    result = invoke("caption", str(images(tmp_path / "in", 1)), *flags)
    assert result.exit_code == 2 and result.stderr.startswith("Error: --")
    assert fake.loads == []


def test_status_line_while_the_model_loads_only_on_a_terminal(fake, tmp_path):
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    settings = runner_module.RunSettings(inputs=[str(images(tmp_path / "in", 1))], model="some/model")
    terminal, piped = Terminal(), io.StringIO()
    runner_module.caption_inputs(settings, io.StringIO(), io.StringIO(), terminal)
    runner_module.caption_inputs(settings, io.StringIO(), io.StringIO(), piped)
    assert terminal.getvalue().startswith("loading some/model...\r\x1b[K")
    assert piped.getvalue() == ""


@pytest.mark.parametrize("command", [[], *([name] for name in COMMANDS)])
def test_dash_h_is_help_on_every_command(command, capsys):
    assert main([*command, "-h"]) == 0
    short = capsys.readouterr().out
    assert main([*command, "--help"]) == 0
    assert short == capsys.readouterr().out
    assert short.startswith(f"Usage: ved {command[0] + ' ' if command else ''}")


@pytest.mark.parametrize("command", COMMANDS)
def test_help_is_plain(command, capsys):
    """No typer type labels (<bool>, <str>, <int>, ...): click's INTEGER / TEXT or a named metavar instead."""
    assert main([command, "--help"]) == 0
    text = capsys.readouterr().out
    assert "<" not in text.replace("<TAB>", "") and "{" not in text.splitlines()[0]
    assert "-h, --help" in text


def test_top_k_and_seed_say_they_need_sample(capsys):
    main(["caption", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--top-k INTEGER Sample from the k likeliest tokens (needs --sample; 0: all)." in text
    assert "--seed INTEGER Random seed (needs --sample)." in text


def test_an_empty_folder_is_named(fake, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = invoke("caption", str(empty))
    assert (result.exit_code, result.stderr) == (2, f"Error: no inputs: the folder holds no image files ({empty})\n")


def test_main_gives_ctrl_c_back_to_its_caller(capsys):
    """main() called from Python (a test, a script) leaves Ctrl-C as it found it, whatever the command did."""
    before = signal.getsignal(signal.SIGINT)
    assert main(["caption", "--bogus"]) == 2
    assert main(["info", "-h"]) == 0
    assert signal.getsignal(signal.SIGINT) is before
