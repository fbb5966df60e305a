"""The `ved` command, driven with typer's CliRunner: exit codes and exact output.

End-to-end tests run a tiny checkpoint written by transformers and compare the text with transformers' generate +
tokenizer decode on the same image. Flow tests (batching, flushing, Ctrl-C, what runs before what) swap the
pipeline for a recording fake, so they are exact and instant.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import os
import subprocess
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from vedcli import cli
from vedcli.cli import CAPTION_MODEL, OCR_MODEL, app, main
from vedcli.errors import ModelError, OptionError
from vedcli.generation import pipeline as pipeline_module
from vedcli.generation.decoding import DecodingOptions

ROOT = Path(__file__).resolve().parents[1]


def invoke(*args: str, input: str | None = None, env: dict[str, str] | None = None):
    return CliRunner().invoke(app, list(args), input=input, env=env)


def _write_images(folder: Path, names: list[str], seed: int = 0) -> list[Path]:
    rng = np.random.default_rng(seed)
    paths = []
    for i, name in enumerate(names):
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        size = (24 + 8 * i, 40 - 4 * i)  # different sizes and aspect ratios: the processor resizes
        Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def _bad_inputs(folder: Path) -> dict[str, Path]:
    """A text file named .png, a truncated PNG, and a path that does not exist."""
    folder.mkdir(parents=True, exist_ok=True)
    text = folder / "notes.png"
    text.write_text("not an image\n")
    whole = _write_images(folder, ["whole.png"], seed=9)[0]
    truncated = folder / "truncated.png"
    truncated.write_bytes(whole.read_bytes()[:200])
    whole.unlink()
    return {"text": text, "truncated": truncated, "missing": folder / "missing.png"}


# --- the reference: transformers' generate + tokenizer decode ------------------------------------------------------


@pytest.fixture(scope="module")
def checkpoint(tiny) -> Path:
    return tiny("vit", "gpt2", eos_boost=4.0)


@pytest.fixture(scope="module")
def reference(checkpoint):
    """reference(path, **generate_kwargs) -> list of (text, sequence score or None), as transformers gives them."""
    import transformers as T

    from support.checkpoints import reference as load_reference

    model = load_reference(checkpoint)
    processor = T.AutoImageProcessor.from_pretrained(checkpoint)
    tokenizer = T.AutoTokenizer.from_pretrained(checkpoint)

    @functools.cache
    def cached(path: Path, kwargs: tuple) -> list[tuple[str, float | None]]:
        pixels = processor(Image.open(path).convert("RGB"), return_tensors="pt").pixel_values
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # transformers' note about its default max_length
            out = model.generate(pixels, return_dict_in_generate=True, output_scores=True, **dict(kwargs))
        texts = tokenizer.batch_decode(out.sequences, skip_special_tokens=True)
        scores = (
            out.sequences_scores.tolist() if getattr(out, "sequences_scores", None) is not None else [None] * len(texts)
        )
        return [(text.strip(), score) for text, score in zip(texts, scores, strict=True)]

    return lambda path, **kwargs: cached(path, tuple(sorted(kwargs.items())))


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("images")
    _write_images(folder, ["b.png", "a.JPG", "sub/c.png", "sub/deeper/d.bmp"])
    (folder / "readme.txt").write_text("skipped: not an image name")
    return folder


IN_ORDER = ["a.JPG", "b.png", "sub/c.png", "sub/deeper/d.bmp"]  # recursive, sorted


def test_one_file_prints_just_the_text(checkpoint, images, reference) -> None:
    result = invoke("caption", str(images / "b.png"), "--model", str(checkpoint))
    assert (result.exit_code, result.stderr) == (0, "")
    assert result.stdout == reference(images / "b.png")[0][0] + "\n"


def test_folder_is_recursive_and_sorted(checkpoint, images, reference) -> None:
    result = invoke("caption", str(images), "--model", str(checkpoint), "--batch-size", "3")
    assert (result.exit_code, result.stderr) == (0, "")
    expected = [f"{images / name}: {reference(images / name)[0][0]}" for name in IN_ORDER]
    assert result.stdout.splitlines() == expected


def test_paths_from_stdin(checkpoint, images, reference) -> None:
    stdin = f"{images / 'sub' / 'c.png'}\n\n{images / 'a.JPG'}\n"
    result = invoke("ocr", "-", "--model", str(checkpoint), "--layout", "line", input=stdin)  # noise, not pages
    assert result.exit_code == 0
    assert result.stdout.splitlines() == [
        f"{images / n}: {reference(images / n)[0][0]}" for n in ("sub/c.png", "a.JPG")
    ]


def test_jsonl_csv_tsv_and_output_file(checkpoint, images, reference, tmp_path: Path) -> None:
    args = ["caption", str(images / "a.JPG"), str(images / "b.png"), "--model", str(checkpoint)]
    texts = [reference(images / name)[0][0] for name in ("a.JPG", "b.png")]
    files = [str(images / "a.JPG"), str(images / "b.png")]

    jsonl = invoke(*args, "--format", "jsonl")
    rows = [json.loads(line) for line in jsonl.stdout.splitlines()]
    assert jsonl.exit_code == 0 and [(r["file"], r["text"]) for r in rows] == list(zip(files, texts, strict=True))
    assert all(set(r) == {"file", "text", "score"} and isinstance(r["score"], float) for r in rows)

    table = invoke(*args, "--format", "csv")
    assert list(csv.reader(io.StringIO(table.stdout))) == [["file", "text", "score", "error"]] + [
        [f, t, repr(r["score"]), ""] for f, t, r in zip(files, texts, rows, strict=True)
    ]

    tsv = invoke(*args, "--format", "tsv")
    assert tsv.stdout.splitlines()[0] == "file\ttext\tscore\terror"
    assert [line.split("\t")[:2] for line in tsv.stdout.splitlines()[1:]] == [
        [f, t.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")]
        for f, t in zip(files, texts, strict=True)
    ]

    out = tmp_path / "rows.jsonl"
    to_file = invoke(*args, "--format", "jsonl", "--output", str(out))
    assert (to_file.exit_code, to_file.stdout) == (0, "")
    assert out.read_text() == jsonl.stdout


def test_beams_with_several_results_match_the_reference(checkpoint, images, reference) -> None:
    result = invoke(
        "caption",
        str(images / "b.png"),
        "--model",
        str(checkpoint),
        "--beams",
        "3",
        "--num-return-sequences",
        "2",
        "--max-new-tokens",
        "6",
        "--format",
        "jsonl",
    )
    assert result.exit_code == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    expected = reference(images / "b.png", num_beams=3, num_return_sequences=2, max_new_tokens=6)
    assert [(row["rank"], row["text"]) for row in rows] == [(1, expected[0][0]), (2, expected[1][0])]
    assert [row["score"] for row in rows] == pytest.approx([score for _text, score in expected], abs=1e-4)


def test_bad_inputs_become_rows_and_exit_1(checkpoint, images, reference, tmp_path: Path, monkeypatch) -> None:
    bad = _bad_inputs(tmp_path / "bad")
    locked = tmp_path / "locked"
    _write_images(locked, ["hidden.png"])
    real_scandir = os.scandir

    def scandir(path="."):  # the folder cannot be listed, as with chmod 000 for a non-root user
        if os.fspath(path) == str(locked):
            raise PermissionError(13, "Permission denied", str(locked))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    good = images / "a.JPG"
    args = [str(bad["missing"]), str(good), str(bad["text"]), str(locked), str(bad["truncated"]), str(images / "b.png")]
    text = invoke("caption", *args, "--model", str(checkpoint), "--batch-size", "1")
    assert text.exit_code == 1
    assert text.stdout.splitlines() == [
        f"{good}: {reference(good)[0][0]}",
        f"{images / 'b.png'}: {reference(images / 'b.png')[0][0]}",
    ]
    errors = text.stderr.splitlines()
    assert len(errors) == 4 and all(line.startswith("Error: ") for line in errors)
    assert [line.rsplit(" (", 1)[1] for line in errors] == [
        f"{bad['missing']})",
        f"{bad['text']})",
        f"{locked})",
        f"{bad['truncated']})",
    ]

    jsonl = invoke("caption", *args, "--model", str(checkpoint), "--format", "jsonl")
    assert jsonl.exit_code == 1 and jsonl.stderr == ""
    rows = [json.loads(line) for line in jsonl.stdout.splitlines()]
    assert [row["file"] for row in rows] == args
    assert [("error" in row) for row in rows] == [True, False, True, True, True, False]
    assert rows[1]["text"] == reference(good)[0][0]


def test_bad_model_exits_2_with_one_line(images, tmp_path: Path) -> None:
    result = invoke("caption", str(images / "a.JPG"), "--model", str(tmp_path / "nope" / "nothing"))
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == f"Error: no such folder or hub model ({tmp_path / 'nope' / 'nothing'})\n"


def test_broken_checkpoint_exits_2_with_one_line(images, tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{not json")
    result = invoke("caption", str(images / "a.JPG"), "--model", str(tmp_path))
    assert (result.exit_code, result.stdout) == (2, "")
    assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith("Error: ")
    assert "Traceback" not in result.output


def test_unreachable_hub_is_one_line(images, tmp_path: Path, monkeypatch) -> None:
    from huggingface_hub import constants

    from support.hub import closed_port, point_hub_at

    point_hub_at(monkeypatch, f"http://127.0.0.1:{closed_port()}")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    result = invoke("caption", str(images / "a.JPG"), "--model", "org/not-cached")
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == "Error: model is not in the local cache and the hub cannot be reached (org/not-cached)\n"


def test_bad_option_combination_names_the_flag(checkpoint, tmp_path: Path) -> None:
    missing = tmp_path / "missing.png"  # never read: options are checked before any image work
    result = invoke("caption", str(missing), "--model", str(checkpoint), "--top-p", "0.5")
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == "Error: --top-p needs --sample (--top-p)\n"


def test_no_inputs(images, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    for args, stdin, message in [
        ([str(empty)], None, f"the folder holds no image files ({empty})"),
        (["-"], "\n\n", "no paths were read from stdin (-)"),
        ([], None, "give image files, folders, or - to read paths from stdin (INPUT)"),
    ]:
        result = invoke("caption", *args, "--model", "unused/model", input=stdin)
        assert (result.exit_code, result.stdout) == (2, "")
        assert result.stderr == f"Error: no inputs: {message}\n"


def test_ved_debug_shows_the_traceback(images, tmp_path: Path) -> None:
    result = invoke("caption", str(images / "a.JPG"), "--model", str(tmp_path / "nothing"), env={"VED_DEBUG": "1"})
    assert isinstance(result.exception, ModelError) and result.exit_code != 0


def test_version() -> None:
    from vedcli import __version__

    result = invoke("--version")
    assert (result.exit_code, result.stdout) == (0, f"ved {__version__}\n")


# --- main(): command-line mistakes are one line too --------------------------------------------------------------


def test_main_usage_errors_are_one_line(capsys) -> None:
    assert main(["caption", "--bogus", "x.png"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == "Error: No such option: --bogus (see 'ved caption --help')\n"
    assert main(["caption", "--beams", "many", "x.png"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("Error: Invalid value for '--beams'") and len(err.splitlines()) == 1
    assert main(["ocr", "--device", "tpu", "x.png"]) == 2
    assert "'--device'" in capsys.readouterr().err


def test_main_returns_the_run_exit_code(images, tmp_path: Path, capsys) -> None:
    assert main(["caption", str(images / "a.JPG"), "--model", str(tmp_path / "absent")]) == 2
    assert capsys.readouterr().err.startswith("Error: no such folder or hub model")
    assert main(["--version"]) == 0


def test_python_m_vedcli_help() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "vedcli", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "100"},
    )
    assert done.returncode == 0, done.stderr
    assert "Usage: ved" in done.stdout and "caption" in done.stdout and "ocr" in done.stdout
    assert "Traceback" not in done.stderr


# --- the flow, with a recording fake pipeline ---------------------------------------------------------------------


@dataclass
class Hyp:
    text: str
    score: float
    tokens: list[int] = field(default_factory=list)


class FakePipeline:
    """Records what the CLI asks of it; each result names the image size it was given."""

    loads: list[dict] = []
    batches: list[list[tuple[int, int]]] = []
    options: list[DecodingOptions] = []
    output: Path | None = None  # if set, each run records what the output file held when it was called
    seen_output: list[str] = []
    interrupt_at: int | None = None  # raise KeyboardInterrupt on this run (0-based)
    processor = None  # images reach run() as open_image decodes them, unshrunk

    @classmethod
    def load(cls, model, revision=None, device="auto", dtype=None):
        cls.loads.append(dict(model=model, revision=revision, device=device, dtype=dtype))
        return cls()

    def resolve(self, options: DecodingOptions):
        if options.top_p is not None and not options.do_sample:
            raise OptionError("--top-p needs --sample", where="--top-p")
        return SimpleNamespace(num_return_sequences=options.num_return_sequences or 1)

    def run(self, images, options):
        if FakePipeline.interrupt_at == len(FakePipeline.batches):
            raise KeyboardInterrupt
        if FakePipeline.output is not None:
            FakePipeline.seen_output.append(FakePipeline.output.read_text())
        FakePipeline.batches.append([image.size for image in images])
        FakePipeline.options.append(options)
        n = options.num_return_sequences or 1
        return [[Hyp(f"{image.size[0]}x{image.size[1]} #{k}", -float(k)) for k in range(n)] for image in images]


@pytest.fixture
def fake(monkeypatch):
    FakePipeline.loads, FakePipeline.batches, FakePipeline.options = [], [], []
    FakePipeline.output, FakePipeline.seen_output, FakePipeline.interrupt_at = None, [], None
    monkeypatch.setattr(pipeline_module, "Pipeline", FakePipeline)
    return FakePipeline


def test_default_models_and_forwarded_flags(fake, images) -> None:
    assert invoke("caption", str(images / "a.JPG")).exit_code == 0
    assert invoke("ocr", str(images / "a.JPG"), "--revision", "v2", "--device", "cpu", "--dtype", "bf16").exit_code == 0
    assert fake.loads == [
        dict(model=CAPTION_MODEL, revision=None, device="auto", dtype=None),
        dict(model=OCR_MODEL, revision="v2", device="cpu", dtype="bf16"),
    ]
    assert fake.options[0] == DecodingOptions()  # nothing set: the checkpoint's defaults apply


def test_every_decoding_flag_reaches_the_options(fake, images) -> None:
    result = invoke(
        "caption",
        str(images / "a.JPG"),
        "--beams",
        "4",
        "--max-new-tokens",
        "9",
        "--min-new-tokens",
        "2",
        "--sample",
        "--temperature",
        "0.7",
        "--top-k",
        "5",
        "--top-p",
        "0.9",
        "--seed",
        "3",
        "--no-repeat-ngram-size",
        "2",
        "--repetition-penalty",
        "1.3",
        "--length-penalty",
        "0.5",
        "--num-return-sequences",
        "2",
    )
    assert result.exit_code == 0, result.stderr
    assert fake.options == [
        DecodingOptions(
            max_new_tokens=9,
            min_new_tokens=2,
            num_beams=4,
            do_sample=True,
            temperature=0.7,
            top_k=5,
            top_p=0.9,
            seed=3,
            no_repeat_ngram_size=2,
            repetition_penalty=1.3,
            length_penalty=0.5,
            num_return_sequences=2,
        )
    ]
    assert invoke("caption", str(images / "a.JPG"), "--no-sample").exit_code == 0
    assert fake.options[-1] == DecodingOptions(do_sample=False)


def test_good_images_are_batched_and_order_is_kept(fake, images, tmp_path: Path) -> None:
    bad = _bad_inputs(tmp_path)
    names = [images / n for n in IN_ORDER]
    args = [str(names[0]), str(bad["missing"]), str(names[1]), str(names[2]), str(bad["text"]), str(names[3])]
    result = invoke("caption", *args, "--batch-size", "2", "--format", "csv", "--num-return-sequences", "2")
    assert result.exit_code == 1
    sizes = [Image.open(p).size for p in names]
    assert fake.batches == [sizes[:2], sizes[2:]]
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert rows[0] == ["file", "rank", "text", "score", "error"]
    assert [(r[0], r[1], r[2]) for r in rows[1:]] == [
        (args[0], "1", f"{sizes[0][0]}x{sizes[0][1]} #0"),
        (args[0], "2", f"{sizes[0][0]}x{sizes[0][1]} #1"),
        (args[1], "", ""),
        (args[2], "1", f"{sizes[1][0]}x{sizes[1][1]} #0"),
        (args[2], "2", f"{sizes[1][0]}x{sizes[1][1]} #1"),
        (args[3], "1", f"{sizes[2][0]}x{sizes[2][1]} #0"),
        (args[3], "2", f"{sizes[2][0]}x{sizes[2][1]} #1"),
        (args[4], "", ""),
        (args[5], "1", f"{sizes[3][0]}x{sizes[3][1]} #0"),
        (args[5], "2", f"{sizes[3][0]}x{sizes[3][1]} #1"),
    ]
    assert rows[3][4] == "no such image file" and rows[8][4].startswith("not an image file")


def test_results_are_flushed_after_each_batch(fake, images, tmp_path: Path) -> None:
    out = tmp_path / "out.txt"
    fake.output = out
    result = invoke("caption", str(images), "--batch-size", "1", "--output", str(out))
    assert result.exit_code == 0
    lines = out.read_text().splitlines()
    assert len(lines) == 4
    assert fake.seen_output == ["", lines[0] + "\n", "\n".join(lines[:2]) + "\n", "\n".join(lines[:3]) + "\n"]


def test_ctrl_c_exits_130_and_keeps_what_was_written(fake, images, tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    fake.interrupt_at = 2
    result = invoke("caption", str(images), "--batch-size", "1", "--format", "jsonl", "--output", str(out))
    assert result.exit_code == 130
    assert [json.loads(line)["file"] for line in out.read_text().splitlines()] == [
        str(images / n) for n in IN_ORDER[:2]
    ]


def test_model_loads_and_options_are_checked_before_images_are_read(fake, tmp_path: Path, monkeypatch) -> None:
    bad = _bad_inputs(tmp_path)
    result = invoke("caption", str(bad["text"]), "--top-p", "0.5")
    assert (result.exit_code, result.stdout, result.stderr) == (2, "", "Error: --top-p needs --sample (--top-p)\n")

    def broken(*args, **kwargs):
        raise ModelError("missing file", where="config.json")

    monkeypatch.setattr(FakePipeline, "load", broken)
    result = invoke("caption", str(bad["text"]), str(bad["missing"]), "--format", "jsonl")
    assert (result.exit_code, result.stdout, result.stderr) == (2, "", "Error: missing file (config.json)\n")


def test_unwritable_output_names_the_flag(fake, images, tmp_path: Path) -> None:
    result = invoke("caption", str(images / "a.JPG"), "--output", str(tmp_path / "no" / "dir" / "out.txt"))
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr.startswith("Error: cannot write ") and result.stderr.endswith("(--output)\n")


def test_batch_size_must_be_positive(fake, images) -> None:
    result = invoke("caption", str(images / "a.JPG"), "--batch-size", "0")
    assert (result.exit_code, result.stderr) == (2, "Error: --batch-size must be at least 1 (--batch-size)\n")


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_keeps_results_and_errors_apart(fake, images, tmp_path: Path) -> None:
    """stderr a terminal, results piped: a bar on stderr, errors printed above it, stdout exactly the results."""
    stdout, stderr = io.StringIO(), FakeTerminal()
    settings = cli.RunSettings(inputs=[str(tmp_path / "gone.png"), str(images / "a.JPG")], model="m")
    assert cli.run(settings, io.StringIO(), stdout, stderr) == 1
    size = Image.open(images / "a.JPG").size
    assert stdout.getvalue() == f"{images / 'a.JPG'}: {size[0]}x{size[1]} #0\n"
    assert f"Error: no such image file ({tmp_path / 'gone.png'})" in stderr.getvalue()
    assert "images" in stderr.getvalue()  # the bar's label


def test_help_starts_without_torch() -> None:
    """`ved --help` and `import vedcli` do not import torch: the CLI answers at once."""
    code = "import sys, vedcli.cli; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
