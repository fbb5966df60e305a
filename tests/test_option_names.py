"""Options and flags: the library names an option (`top_p`), the CLI shows it as its flag (`--top-p`), from one
table in vedcli/cli.py. No module of the library spells a flag."""

from __future__ import annotations

import ast
import dataclasses
import re
from pathlib import Path

import pytest
import typer

from vedcli.cli import FLAGS, app, flag_of, main
from vedcli.errors import OptionError, options_named
from vedcli.generation.defaults import GenerationConfig
from vedcli.generation.options import DecodingOptions
from vedcli.training.trainer import TrainOptions, validate

PACKAGE = Path(__file__).resolve().parent.parent / "vedcli"
CLI_MODULES = {PACKAGE / "cli.py"}  # where flags are spelled: the table, the typer options and their help
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9_-]*")
NOT_VEDS = {"--nproc_per_node"}  # torchrun's
NO_FLAG_SETS_IT = {"generation_config.json early_stopping", "generation_config.json bad_words_ids"}  # a checkpoint's


def _docstrings(tree: ast.AST) -> set[int]:
    """The ids of the module, class and function docstring nodes of `tree`."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def _library_files() -> list[Path]:
    return [path for path in sorted(PACKAGE.rglob("*.py")) if path not in CLI_MODULES]


def test_the_library_spells_no_flag():
    """Strings in code (docstrings and comments aside, which may describe the command) name options, not flags."""
    found = []
    for path in _library_files():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docs = _docstrings(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
                found += [f"{path.relative_to(PACKAGE)}:{node.lineno}: {m}" for m in FLAG.findall(node.value)]
    assert found == []


def test_the_check_sees_a_flag(tmp_path):
    """The scan above finds a flag in a message (this check can fail), not in a docstring."""
    tree = ast.parse('"""Use --top-p."""\ndef f():\n    raise OptionError("--top-p needs --sample", "--top-p")\n')
    docs = _docstrings(tree)
    strings = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and id(n) not in docs]
    assert [FLAG.findall(s) for s in strings] == [["--top-p", "--sample"], ["--top-p"]]


def test_every_option_the_library_names_has_a_flag():
    named = set()
    for path in _library_files():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "option" and node.args:
                if isinstance(node.args[0], ast.Constant):
                    named.add(node.args[0].value)
    assert len(named) > 30
    assert named - set(FLAGS) == set()
    assert {"batch_size", "resume", "do_sample"} <= named


def test_every_flag_of_the_table_is_a_flag_of_ved():
    group = typer.main.get_command(app)
    flags = {opt for command in group.commands.values() for param in command.params for opt in param.opts}
    flags |= {opt for param in group.commands["caption"].params for opt in param.secondary_opts}  # --no-sample
    assert set(FLAGS.values()) - NOT_VEDS - NO_FLAG_SETS_IT <= flags
    assert {f.name for f in dataclasses.fields(TrainOptions)} <= set(FLAGS)


def test_a_generation_error_names_the_field_and_the_cli_prints_the_flag(tmp_path, capsys):
    with pytest.raises(OptionError) as err:
        DecodingOptions(do_sample=True, top_p=2.0).check()
    assert err.value.option == "top_p"
    assert str(err.value) == "top_p must be between 0 and 1 (top_p)"
    with pytest.raises(OptionError) as err:
        DecodingOptions(num_beams=2, num_return_sequences=3).resolve(GenerationConfig(decoder_start_token_id=0))
    assert str(err.value) == "num_return_sequences 3 is more than num_beams 2 (num_return_sequences)"
    with options_named(flag_of):
        assert str(err.value) == "--num-return-sequences 3 is more than --beams 2 (--num-return-sequences)"
    assert str(err.value).startswith("num_return_sequences")  # the naming ends with the block

    image = tmp_path / "a.png"
    image.write_bytes(b"")
    assert main(["caption", str(image), "--sample", "--top-p", "2"]) == 2
    assert capsys.readouterr().err == "Error: --top-p must be between 0 and 1 (--top-p)\n"


def test_a_training_error_names_the_fields_and_the_cli_prints_the_flags(tmp_path, capsys):
    with pytest.raises(OptionError) as err:
        validate(TrainOptions(model="m", data="d", val_data="d", val_split=0.1))
    assert (err.value.message, err.value.option) == ("give val_data or val_split, not both", "val_split")
    args = ["train", "--model", "m", "--data", "d", "--val-data", "d", "--val-split", "0.1", "-o", str(tmp_path / "r")]
    assert main(args) == 2
    assert capsys.readouterr().err == "Error: give --val-data or --val-split, not both (--val-split)\n"


def test_a_path_is_never_read_as_an_option(tmp_path, capsys):
    """`where` is a file here, named like an option: the CLI leaves it as it is."""
    (tmp_path / "output").mkdir()
    (tmp_path / "output" / "keep.txt").write_text("mine")
    source = tmp_path / "src"
    source.mkdir()
    assert main(["convert", str(source), "-o", str(tmp_path / "output")]) == 2
    err = capsys.readouterr().err
    assert err.endswith(f"({tmp_path / 'output'})\n") and "--" not in err.replace(str(tmp_path), "")
