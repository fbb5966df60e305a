"""benchmarks/ocr_quality.py: the figures it computes, the table's shape, tesseract present or not, bad lines.

A tiny random model reads five drawn lines: its figures are garbage, so the tests check that the table holds every
row and column, that the figures are the metrics of the predictions it reports, and exact error rates on known
pairs.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image, ImageDraw, ImageFont

from vedcli.training.metrics import cer

ROOT = Path(__file__).resolve().parents[1]
TEXTS = ["the cat", "a dog ran over the hill and far away into the night", "7", "on a table", "two dogs play"]


def _load_script():
    spec = importlib.util.spec_from_file_location("ocr_quality", ROOT / "benchmarks" / "ocr_quality.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


q = _load_script()


@pytest.fixture(autouse=True)
def keep_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def lines(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("lines")
    font = ImageFont.load_default(size=24)
    rows = []
    for i, text in enumerate(TEXTS):
        image = Image.new("RGB", (16 + 14 * len(text), 36), "white")
        ImageDraw.Draw(image).text((8, 4), text, fill="black", font=font)
        image.save(folder / f"{i}.png")
        rows.append(json.dumps({"file_name": f"{i}.png", "text": text}))
    (folder / "metadata.jsonl").write_text("\n".join(rows) + "\n")
    return folder


@pytest.fixture(scope="module")
def model(tiny) -> Path:
    return tiny("vit", "trocr", eos_boost=4.0)


def table_rows(out: str) -> list[list[str]]:
    return [[cell.strip() for cell in row.strip("|").split("|")] for row in out.splitlines() if row.startswith("|")]


# --- figures ---------------------------------------------------------------------------------------------------------


def test_error_rates_on_known_pairs() -> None:
    rates = q.error_rates(["hallo wrld", "7"], ["hello world", "7"])
    assert rates == {"cer": 2 / 12, "wer": 2 / 3}


def test_quality_per_bucket_and_variant() -> None:
    references = ["ab", "abcdefghij", "abcd"]
    reader = q.Reader("r", predictions={"plain": ["ax", "abcdefghij", ""], "inverted": ["", "", ""]})
    groups = q.buckets(references, short=2, long=10)
    assert groups == {"all": [0, 1, 2], "short (<= 2 chars)": [0], "long (>= 10 chars)": [1]}
    scores = q.quality(reader, references, groups)
    assert scores["all"]["cer"] == 5 / 16
    assert scores["short (<= 2 chars)"] == {"cer": 0.5, "wer": 1.0, "lines": 1}
    assert scores["long (>= 10 chars)"]["cer"] == 0.0
    assert scores["inverted"]["cer"] == 1.0 and "colour" not in scores


def test_variants_keep_the_line_size_and_invert_exactly() -> None:
    image = Image.new("RGB", (40, 12), (250, 240, 230))
    image.putpixel((3, 4), (10, 20, 30))
    assert q.inverted(image).getpixel((3, 4)) == (245, 235, 225)
    assert q.coloured(image, 1).size == image.size and q.coloured(image, 1).mode == "RGB"
    assert q.coloured(image, 1).tobytes() == q.coloured(image, 1).tobytes()  # seeded


# --- the script ------------------------------------------------------------------------------------------------------


def test_table_has_every_row_and_column(model, lines, tmp_path, capsys) -> None:
    out = tmp_path / "figures.json"
    code = q.main(
        [
            "--model",
            str(model),
            "--data",
            str(lines),
            "--limit",
            "5",
            "--threads",
            "1",
            "--batch-sizes",
            "1",
            "2",
            "--tesseract",
            "",
            "--short",
            "7",
            "--long",
            "30",
            "--json",
            str(out),
        ]
    )
    assert code == 0
    rows = table_rows(capsys.readouterr().out)
    assert rows[0] == ["", f"ved: {model}", "tesseract"]
    assert [row[0] for row in rows[2:]] == [
        "CER, all: 5 lines",
        "WER, all: 5 lines",
        "CER, short (<= 7 chars): 2 lines",
        "CER, long (>= 30 chars): 1 lines",
        "CER, inverted (white on black): 5 lines",
        "CER, colour (tinted, uneven light): 5 lines",
        "s/line, 1 thread, batch 1 (median)",
        "s/line, 1 thread, batch 2 (median)",
    ]
    assert all(len(row) == 3 and row[2] == "not asked for" for row in rows[2:])
    assert all(row[1].endswith("%") for row in rows[2:8]) and all(float(row[1]) > 0 for row in rows[8:])

    report = json.loads(out.read_text())
    predictions = [line["ved:plain"] for line in report["predictions"]]
    assert [line["text"] for line in report["predictions"]] == TEXTS
    ved = report["readers"][0]
    assert ved["quality"]["all"]["cer"] == cer(predictions, TEXTS)
    assert rows[2][1] == f"{100 * cer(predictions, TEXTS):.2f}%"
    assert ved["quality"]["colour"]["cer"] == cer([line["ved:colour"] for line in report["predictions"]], TEXTS)
    assert {(t["threads"], t["batch"]) for t in ved["seconds_per_line"]} == {(1, 1), (1, 2)}
    assert report["batch_differences"] == 0  # all lines are resized to one size: batching changes nothing


def test_also_adds_a_column_per_setting(model, lines, tmp_path, capsys) -> None:
    """--also int8: the same model quantized, as a column of its own beside fp32 (CER next to fp32's)."""
    out = tmp_path / "figures.json"
    args = ["--model", str(model), "--data", str(lines), "--limit", "5", "--threads", "1", "--batch-sizes", "2"]
    code = q.main([*args, "--tesseract", "", "--no-variants", "--also", "int8", "--json", str(out)])
    assert code == 0
    rows = table_rows(capsys.readouterr().out)
    assert rows[0] == ["", f"ved: {model}", f"ved int8: {model}", "tesseract"]
    assert all(row[1].endswith("%") and row[2].endswith("%") for row in rows[2:4])
    report = json.loads(out.read_text())
    quantized = [line["ved int8:plain"] for line in report["predictions"]]
    assert report["readers"][1]["quality"]["all"]["cer"] == cer(quantized, TEXTS)
    assert rows[2][2] == f"{100 * cer(quantized, TEXTS):.2f}%"


def test_missing_tesseract_is_said_in_the_table(model, lines, capsys) -> None:
    code = q.main(
        [
            "--model",
            str(model),
            "--data",
            str(lines),
            "--limit",
            "2",
            "--threads",
            "1",
            "--batch-sizes",
            "1",
            "--no-variants",
            "--tesseract",
            "/nonexistent/tesseract",
        ]
    )
    assert code == 0
    rows = table_rows(capsys.readouterr().out)
    assert [row[2] for row in rows[2:]] == ["not installed"] * 5


@pytest.mark.skipif(shutil.which("tesseract") is None, reason="tesseract is not installed")
def test_tesseract_reads_the_same_lines(model, lines, tmp_path, capsys) -> None:
    out = tmp_path / "figures.json"
    code = q.main(
        [
            "--model",
            str(model),
            "--data",
            str(lines),
            "--limit",
            "2",
            "--threads",
            "1",
            "--batch-sizes",
            "2",
            "--no-variants",
            "--json",
            str(out),
        ]
    )
    assert code == 0
    rows = table_rows(capsys.readouterr().out)
    assert rows[0][2].startswith("tesseract ") and rows[0][2].endswith("(--psm 7)")
    assert rows[2][2].endswith("%") and rows[-1][2] == "—"  # no batched figure for one process per line
    report = json.loads(out.read_text())
    tess = [line["tesseract:plain"] for line in report["predictions"]]
    assert report["readers"][1]["quality"]["all"]["cer"] == cer(tess, TEXTS[:2])
    assert cer(tess, TEXTS[:2]) < 0.5  # clean drawn lines: tesseract reads them


def test_bad_lines_are_named_and_left_out(model, lines, tmp_path, capsys) -> None:
    data = tmp_path / "data"
    shutil.copytree(lines, data)
    (data / "1.png").write_text("not an image")
    with open(data / "metadata.jsonl", "a") as f:
        f.write(json.dumps({"file_name": "gone.png", "text": "lost"}) + "\n")
    code = q.main(
        [
            "--model",
            str(model),
            "--data",
            str(data),
            "--threads",
            "1",
            "--batch-sizes",
            "1",
            "--no-variants",
            "--tesseract",
            "",
        ]
    )
    assert code == 0
    captured = capsys.readouterr()
    assert table_rows(captured.out)[2][0] == "CER, all: 4 lines"
    assert f"skipped: not an image file (unknown format) ({data / '1.png'})" in captured.err
    assert "gone.png" in captured.err


def test_bad_model_is_one_error_line(lines, tmp_path, capsys) -> None:
    code = q.main(["--model", str(tmp_path / "none"), "--data", str(lines), "--tesseract", ""])
    assert code == 2
    assert capsys.readouterr().err == f"Error: no such folder or hub model ({tmp_path / 'none'})\n"
