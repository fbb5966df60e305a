"""benchmarks/page_quality.py: page CER/WER, line recall and seconds per page of ved's page path beside tesseract's,
on pages made of drawn lines; without a reader (the built-in one not installed) the line finding is still measured.
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
from PIL import Image, ImageDraw, ImageFont

from vedcli.checkpoints import builtin
from vedcli.training.metrics import cer

ROOT = Path(__file__).resolve().parents[1]
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
TEXTS = [
    "The quick brown fox jumps over the lazy dog",
    "while the cat watches from the window",
    "and the rain keeps falling on the roof",
    "of the old house by the river where",
    "nobody has lived for many years now",
    "Printed pages come in many shapes",
]
pytestmark = pytest.mark.skipif(not Path(FONT).exists(), reason="DejaVu fonts not installed")


def _load_script():
    spec = importlib.util.spec_from_file_location("page_quality", ROOT / "benchmarks" / "page_quality.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


pq = _load_script()


@pytest.fixture(autouse=True)
def keep_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def lines(tmp_path_factory) -> Path:
    """Six text lines as scanned-line images (an imagefolder with metadata.jsonl)."""
    folder = tmp_path_factory.mktemp("lines")
    font = ImageFont.truetype(FONT, 32)
    rows = []
    for i, text in enumerate(TEXTS):
        image = Image.new("L", (int(font.getlength(text)) + 40, 56), 250)
        ImageDraw.Draw(image).text((20, 8), text, fill=20, font=font)
        image.save(folder / f"{i}.png")
        rows.append(json.dumps({"file_name": f"{i}.png", "text": text}))
    (folder / "metadata.jsonl").write_text("\n".join(rows) + "\n")
    return folder


def run(capsys, *args) -> tuple[str, dict]:
    out_json = Path(args[args.index("--json") + 1])
    assert pq.main([*args, "--threads", "1"]) == 0
    return capsys.readouterr().out, json.loads(out_json.read_text())


def row(table: str, group: str, system: str) -> list[str]:
    """The cells (CER, WER, line recall, s/page) of one row of the markdown table."""
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 7 and cells[0] == group and cells[2].startswith(system):
            return cells[3:]
    raise AssertionError(f"no row {group!r} / {system!r} in\n{table}")


def test_pages_of_lines_keep_each_line_and_its_box(lines):
    (page,) = pq.line_pages(lines, per_page=10)
    assert page.texts == TEXTS and page.text == " ".join(" ".join(TEXTS).split())
    ink = np.asarray(page.image) < 128
    for x0, y0, x1, y1 in page.boxes.astype(int):
        assert ink[y0:y1, x0:x1].any() and not ink[y1 + 2 : y1 + 6, x0:x1].any()  # a line's box, space below


def test_without_a_reader_the_line_finding_is_still_measured(lines, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(builtin, "ROOT", tmp_path / "no-models")  # the built-in reader is not installed
    args = ["--pages", "0", "--lines", str(lines), "--lines-per-page", "3", "--tesseract", ""]
    table, report = run(capsys, *args, "--json", str(tmp_path / "pq.json"))
    cer_, wer_, recall, seconds = row(table, "real scans (lines set as pages)", "ved: line finding only")
    assert (cer_, wer_, recall) == ("not installed", "not installed", "100.0%") and float(seconds) > 0
    assert "tesseract" in table and "not asked for" in table
    ved = report["systems"][0]
    assert ved["note"] == "not installed" and ved["figures"]["real scans (lines set as pages)"]["recall"] == 1.0


@pytest.mark.skipif(shutil.which("tesseract") is None, reason="tesseract not installed")
def test_a_reader_and_tesseract_side_by_side(lines, tmp_path, capsys, tiny):
    model = tiny("vit", "trocr", eos_boost=4.0)
    args = ["--pages", "0", "--lines", str(lines), "--lines-per-page", "6", "--model", str(model), "--no-photo"]
    table, report = run(capsys, *args, "--json", str(tmp_path / "pq.json"))
    group = "real scans (lines set as pages)"
    tess = row(table, group, "tesseract")
    assert float(tess[0].rstrip("%")) < 5 and tess[2] == "100.0%"  # clean lines: tesseract reads them
    ved = row(table, group, "ved (")
    assert ved[0].endswith("%") and ved[2] == "100.0%"  # a tiny random reader: garbage text, lines all found
    page = next(p for p in report["pages"] if p["kind"] == group)
    ved_text = next(v[0] for k, v in page.items() if k.startswith("ved ("))
    figure = report["systems"][0]["figures"][group]["cer"]
    assert figure == pytest.approx(cer([ved_text], [page["text"]]))  # the table's CER is the pages' CER
