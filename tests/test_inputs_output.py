"""inputs.expand_inputs and the output writers (read back with the json / csv modules)."""

from __future__ import annotations

import csv
import io
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from vedcli.commands.inputs import InputItem, expand_inputs, image_extensions, is_image_name
from vedcli.commands.output import escape_tsv, make_writer, open_output
from vedcli.errors import InputError, OptionError

# --- inputs -------------------------------------------------------------------------------------------------------


def _touch(root: Path, *names: str) -> None:
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"")


def _paths(items: list[InputItem]) -> list[str]:
    return [item.path for item in items]


def test_image_extensions_come_from_pil() -> None:
    from PIL import Image

    assert {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif"} <= image_extensions()
    assert ".txt" not in image_extensions() and ".json" not in image_extensions()
    assert all(Image.registered_extensions()[ext] in Image.OPEN for ext in image_extensions())
    assert is_image_name("A.PNG") and is_image_name("x/y.JpEg") and not is_image_name("notes.txt")


def test_folder_is_recursive_sorted_and_images_only(tmp_path: Path) -> None:
    _touch(
        tmp_path,
        "b.png",
        "a.JPG",
        "notes.txt",
        "sub/z.webp",
        "sub/deeper/c.gif",
        "sub/README",
        "a/0.bmp",
        ".hidden/h.png",
        "c.Tiff",
    )
    items = expand_inputs([str(tmp_path)], io.StringIO())
    expected = [".hidden/h.png", "a/0.bmp", "a.JPG", "b.png", "c.Tiff", "sub/deeper/c.gif", "sub/z.webp"]
    assert _paths(items) == [os.path.join(str(tmp_path), *name.split("/")) for name in expected]
    assert all(item.error is None for item in items)


def test_files_are_kept_as_given_in_argument_order(tmp_path: Path) -> None:
    _touch(tmp_path, "dir/1.png", "dir/2.png", "x.txt", "y.png")
    args = [str(tmp_path / "y.png"), str(tmp_path / "dir"), str(tmp_path / "x.txt"), "missing.png"]
    items = expand_inputs(args, io.StringIO())
    assert _paths(items) == [
        args[0],
        str(tmp_path / "dir" / "1.png"),
        str(tmp_path / "dir" / "2.png"),
        args[2],
        "missing.png",
    ]
    assert all(item.error is None for item in items)  # a missing or non-image file fails later, when read


def test_stdin_lists_paths_and_blank_lines_are_skipped(tmp_path: Path) -> None:
    _touch(tmp_path, "d/b.png", "d/a.png")
    stdin = io.StringIO(f"first.png\n\n   \n{tmp_path / 'd'}\r\nname with spaces.jpg\nlast.png")
    items = expand_inputs(["0.png", "-", "9.png", "-"], stdin)
    assert _paths(items) == [
        "0.png",
        "first.png",
        str(tmp_path / "d" / "a.png"),
        str(tmp_path / "d" / "b.png"),
        "name with spaces.jpg",
        "last.png",
        "9.png",
    ]


def test_empty_inputs(tmp_path: Path) -> None:
    assert expand_inputs([str(tmp_path)], io.StringIO()) == []
    assert expand_inputs(["-"], io.StringIO("\n\n")) == []


def test_unreadable_folder_becomes_an_error_item(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _touch(tmp_path, "a.png", "locked/secret.png", "z.png")
    locked = str(tmp_path / "locked")
    if os.geteuid() != 0:
        os.chmod(locked, 0)
    else:  # root reads every folder: make listing it fail the way the OS does
        real_scandir = os.scandir

        def scandir(path="."):
            if os.fspath(path) == locked:
                raise PermissionError(13, "Permission denied", locked)
            return real_scandir(path)

        monkeypatch.setattr(os, "scandir", scandir)
    try:
        items = expand_inputs([str(tmp_path)], io.StringIO())
    finally:
        os.chmod(locked, 0o755)
    assert _paths(items) == [str(tmp_path / "a.png"), locked, str(tmp_path / "z.png")]
    error = items[1].error
    assert isinstance(error, InputError)
    assert (error.message, error.where) == ("cannot read folder: permission denied", locked)
    assert items[0].error is None and items[2].error is None


# --- writers ------------------------------------------------------------------------------------------------------


@dataclass
class Hyp:
    text: str
    score: float


TRICKY = 'a, "quoted"\ttab\nnew line \\ back — ünï'
BAD = InputError("cannot identify image file", where="bad.png")


def _write(fmt: str, *, single: bool = False, ranked: bool = False) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    writer = make_writer(fmt, out, single_input=single, ranked=ranked, err=err)
    if ranked:
        writer.results("one.png", [Hyp("best", -0.5), Hyp(TRICKY, -1.25)])
    else:
        writer.results("one.png", [Hyp("a cat", -0.125)])
    writer.error("bad.png", BAD)
    writer.results("two, three.png", [Hyp(TRICKY, float("-inf"))] if not ranked else [Hyp("x", -1.0), Hyp("y", -2.0)])
    writer.flush()
    return out.getvalue(), err.getvalue()


def test_text_single_input_is_just_the_text() -> None:
    out, err = io.StringIO(), io.StringIO()
    make_writer("text", out, single_input=True, err=err).results("only.png", [Hyp("a dog on a bench", -1.0)])
    assert (out.getvalue(), err.getvalue()) == ("a dog on a bench\n", "")


def test_text_several_inputs_and_errors_on_stderr() -> None:
    out, err = _write("text")
    assert out == f"one.png: a cat\ntwo, three.png: {TRICKY}\n"
    assert err == "Error: cannot identify image file (bad.png)\n"


def test_text_several_results_per_image() -> None:
    out, _err = _write("text", ranked=True)
    assert out == f"one.png: best\none.png: {TRICKY}\ntwo, three.png: x\ntwo, three.png: y\n"


def test_jsonl() -> None:
    out, err = _write("jsonl")
    assert err == ""
    rows = [json.loads(line) for line in out.splitlines()]
    assert rows == [
        {"file": "one.png", "text": "a cat", "score": -0.125},
        {"file": "bad.png", "error": "cannot identify image file"},
        {"file": "two, three.png", "text": TRICKY, "score": None},
    ]
    assert "ünï" in out  # UTF-8, not \\u escapes


def test_jsonl_ranked() -> None:
    rows = [json.loads(line) for line in _write("jsonl", ranked=True)[0].splitlines()]
    assert [(row["file"], row.get("rank"), row.get("text")) for row in rows] == [
        ("one.png", 1, "best"),
        ("one.png", 2, TRICKY),
        ("bad.png", None, None),
        ("two, three.png", 1, "x"),
        ("two, three.png", 2, "y"),
    ]
    assert list(rows[0]) == ["file", "rank", "text", "score"]


def test_csv_reads_back() -> None:
    out, err = _write("csv")
    assert err == "" and out.startswith("file,text,score,error\n")
    rows = list(csv.reader(io.StringIO(out, newline="")))
    assert rows == [
        ["file", "text", "score", "error"],
        ["one.png", "a cat", "-0.125", ""],
        ["bad.png", "", "", "cannot identify image file"],
        ["two, three.png", TRICKY, "-inf", ""],
    ]


def test_csv_ranked() -> None:
    rows = list(csv.reader(io.StringIO(_write("csv", ranked=True)[0], newline="")))
    assert rows[0] == ["file", "rank", "text", "score", "error"]
    assert [row[:3] for row in rows[1:]] == [
        ["one.png", "1", "best"],
        ["one.png", "2", TRICKY],
        ["bad.png", "", ""],
        ["two, three.png", "1", "x"],
        ["two, three.png", "2", "y"],
    ]


def _unescape_tsv(field: str) -> str:
    return re.sub(r"\\(.)", lambda m: {"t": "\t", "n": "\n", "r": "\r", "\\": "\\"}[m.group(1)], field)


def test_tsv_escapes_tabs_and_newlines() -> None:
    out, _err = _write("tsv")
    lines = out.split("\n")
    assert lines[-1] == "" and len(lines) == 5  # header + 3 rows, each on exactly one line
    rows = [[_unescape_tsv(field) for field in line.split("\t")] for line in lines[:-1]]
    assert rows == [
        ["file", "text", "score", "error"],
        ["one.png", "a cat", "-0.125", ""],
        ["bad.png", "", "", "cannot identify image file"],
        ["two, three.png", TRICKY, "-inf", ""],
    ]
    assert escape_tsv("a\tb\\n") == "a\\tb\\\\n"


def test_unknown_format_names_the_flag() -> None:
    with pytest.raises(OptionError) as info:
        make_writer("xml", io.StringIO(), single_input=True)
    assert info.value.option == "format"


def test_open_output(tmp_path: Path) -> None:
    import sys

    assert open_output(None) is sys.stdout
    with open_output(str(tmp_path / "out.csv")) as out:
        make_writer("csv", out, single_input=False).results("a.png", [Hyp("x\ny", 0.5)])
    assert (tmp_path / "out.csv").read_bytes() == b'file,text,score,error\na.png,"x\ny",0.5,\n'
    with pytest.raises(OptionError) as info:
        open_output(str(tmp_path / "no" / "such" / "dir.txt"))
    assert info.value.option == "output" and "no such file or directory" in info.value.message
