"""`ved ocr --layout auto|page|line` on rendered pages, with a stub reader (no model): lines found, read in batches,
written back in reading order as text, jsonl, csv, hOCR; `--debug-layout` drawings; flag errors."""

from __future__ import annotations

import json
import math
import struct
import subprocess
import sys
import xml.etree.ElementTree as ET
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import pytest
from PIL import Image, ImageDraw, ImageFont
from typer.testing import CliRunner

from vedcli.cli import app, main
from vedcli.generation import pipeline as pipeline_module

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
needs_font = pytest.mark.skipif(not Path(FONT).exists(), reason="DejaVu fonts not installed")

LONG = "The quick brown fox jumps over the lazy dog"
SHORT = "and sleeps"


@dataclass
class Hyp:
    text: str
    score: float
    tokens: list[int] = field(default_factory=list)


class StubReader:
    """Reads a crop as "long" or "short" by its shape, "whole WxH" for an image wider than 30:1 or given whole;
    records the batches it was given."""

    batches: list[list[tuple[int, int]]] = []
    processor = None
    output: Path | None = None  # if set, each run records what this file held when it was called
    seen_output: list[str] = []
    fail_at: int | None = None  # raise `failure` on this run (0-based)
    failure: BaseException = KeyboardInterrupt()

    @classmethod
    def load(cls, model, revision=None, device="auto", dtype=None):
        return cls()

    def resolve(self, options):
        return SimpleNamespace(num_return_sequences=options.num_return_sequences or 1, num_beams=1, length_penalty=1.0)

    def run(self, images, options):
        if StubReader.output is not None:
            StubReader.seen_output.append(StubReader.output.read_text() if StubReader.output.exists() else "")
        if StubReader.fail_at == len(StubReader.batches):
            raise StubReader.failure
        StubReader.batches.append([image.size for image in images])
        out = []
        for image in images:
            ratio = image.width / image.height
            text = "long" if ratio > 8 else "short"
            out.append([Hyp(text, -0.1 * 3, [1, 2])])  # mean log-prob -0.1 over 3 tokens (end included)
        return out


@pytest.fixture
def stub(monkeypatch):
    StubReader.batches, StubReader.output, StubReader.seen_output, StubReader.fail_at = [], None, [], None
    monkeypatch.setattr(pipeline_module, "Pipeline", StubReader)
    return StubReader


def render(path: Path, lines: list[str], size: int = 28) -> Path:
    font = ImageFont.truetype(FONT, size)
    image = Image.new("RGB", (900, 120 + len(lines) * 2 * size), "white")
    draw = ImageDraw.Draw(image)
    for i, text in enumerate(lines):
        draw.text((60, 60 + i * 2 * size), text, fill="black", font=font)
    image.save(path)
    return path


@pytest.fixture
def two_lines(tmp_path) -> Path:
    return render(tmp_path / "page.png", [LONG, SHORT])


def invoke(*args):
    return CliRunner().invoke(app, ["ocr", *map(str, args)])


@needs_font
def test_a_two_line_page_is_read_line_by_line_in_order(stub, two_lines):
    result = invoke(two_lines, "--format", "text")
    assert (result.exit_code, result.stderr) == (0, "")
    assert [row for row in result.stdout.splitlines() if row] == ["long", "short"]  # (a blank line between blocks)
    assert sorted(len(b) for b in stub.batches) == [2]  # both lines in one batch
    ratios = [w / h for w, h in stub.batches[0]]
    assert ratios == sorted(ratios)  # batched by shape: the short line first, its text put back second


@needs_font
def test_layout_line_reads_the_whole_image_as_today(stub, two_lines):
    result = invoke(two_lines, "--layout", "line")
    assert (result.exit_code, result.stdout) == (0, "short\n")
    assert stub.batches == [[Image.open(two_lines).size]]


@needs_font
def test_a_single_line_image_is_read_whole_in_auto(stub, tmp_path):
    line = Image.new("RGB", (700, 40), "white")
    ImageDraw.Draw(line).text((10, 4), LONG, fill="black", font=ImageFont.truetype(FONT, 28))
    line.save(tmp_path / "line.png")
    result = invoke(tmp_path / "line.png", "--format", "jsonl")
    assert result.exit_code == 0
    assert stub.batches == [[(700, 40)]]
    assert set(json.loads(result.stdout)) == {"file", "text", "score"}  # a line's record, as before


@needs_font
def test_jsonl_has_one_record_per_page_with_boxes_and_scores(stub, two_lines, tmp_path):
    other = render(tmp_path / "other.png", [SHORT, LONG, LONG])
    result = invoke(two_lines, other, "--format", "jsonl", "--layout", "page")
    assert result.exit_code == 0, result.stderr
    records = [json.loads(row) for row in result.stdout.splitlines()]
    assert [r["file"] for r in records] == [str(two_lines), str(other)]
    assert [[ln["text"] for ln in r["lines"]] for r in records] == [["long", "short"], ["short", "long", "long"]]
    first, second = records[0]["lines"]
    assert first["box"][1] < second["box"][1] and first["box"][2] > second["box"][2]  # above it, and longer
    assert 55 <= first["box"][0] <= 65  # in the file's pixels (drawn from x = 60)
    assert first["score"] == pytest.approx(math.exp(-0.1), abs=1e-4)


@needs_font
def test_csv_has_a_row_per_line(stub, two_lines):
    result = invoke(two_lines, "--format", "csv")
    rows = result.stdout.splitlines()
    assert rows[0] == "file,line,box,text,score,error"
    assert [r.split(",")[1] for r in rows[1:]] == ["0", "1"] and rows[2].split(",")[3] == "short"


@needs_font
def test_hocr_is_xml_with_a_page_and_its_lines(stub, two_lines, tmp_path):
    out = tmp_path / "page.hocr"
    result = invoke(two_lines, two_lines, "-o", out)  # the format from the extension
    assert result.exit_code == 0, result.stderr
    root = ET.fromstring(out.read_text())
    classes = [el.get("class") for el in root.iter()]
    assert classes.count("ocr_page") == 2 and classes.count("ocr_line") == 4
    words = [el.text for el in root.iter() if el.get("class") == "ocrx_word"]
    assert words == ["long", "short", "long", "short"]


@needs_font
def test_debug_layout_writes_a_png(stub, two_lines, tmp_path):
    drawing = tmp_path / "layout.png"
    assert invoke(two_lines, "--debug-layout", drawing).exit_code == 0
    with Image.open(drawing) as image:
        assert (image.format, image.size) == ("PNG", Image.open(two_lines).size)
    folder = tmp_path / "drawings"
    other = render(tmp_path / "other.png", [LONG])
    assert invoke(two_lines, other, "--debug-layout", folder).exit_code == 0
    assert sorted(p.name for p in folder.iterdir()) == ["other.png", "page.png"]


def test_bad_layout_and_misplaced_flags_are_one_line_errors(stub, tmp_path, capsys):
    Image.new("RGB", (40, 20), "white").save(tmp_path / "x.png")
    for args in (["ocr", "--layout", "columns"], ["caption", "--layout", "page"], ["ocr", "--layout", "line",
                                                                                  "--format", "hocr"]):  # fmt: skip
        assert main([*args, str(tmp_path / "x.png")]) == 2, args
        out, err = capsys.readouterr()
        assert err.count("\n") == 1 and err.startswith("Error:") and out == "", err


def test_blank_page_is_empty_and_a_bad_file_is_one_error_row(stub, tmp_path):
    Image.new("RGB", (600, 800), "white").save(tmp_path / "blank.png")
    (tmp_path / "broken.png").write_text("not an image")
    result = invoke(tmp_path / "blank.png", tmp_path / "broken.png", "--format", "jsonl")
    assert result.exit_code == 1
    blank, broken = [json.loads(row) for row in result.stdout.splitlines()]
    assert (blank["lines"], blank["text"]) == ([], "") and stub.batches == []  # nothing read, nothing made up
    assert broken["file"] == str(tmp_path / "broken.png") and "error" in broken


def test_a_line_shaped_image_without_lines_is_still_read_whole(stub, tmp_path):
    Image.new("RGB", (90, 20), "white").save(tmp_path / "strip.png")  # a line crop the finder sees nothing in
    assert invoke(tmp_path / "strip.png").stdout == "short\n"
    assert stub.batches == [[(90, 20)]]


def test_line_scores_and_page_readers():
    from vedcli.commands.pages import line_score, reads_whole_pages
    from vedcli.processing.image import ImageProcessor, ImageProcessorConfig

    assert line_score(-0.3, [1, 2], num_beams=1, length_penalty=1.0) == pytest.approx(math.exp(-0.1))
    assert line_score(-0.1, [1, 2], num_beams=4, length_penalty=1.0) == pytest.approx(math.exp(-0.1))  # sum / n
    assert line_score(float("-inf"), [], num_beams=1, length_penalty=1.0) == 0.0

    def processor(height, width):
        d = {"image_processor_type": "DonutImageProcessor", "size": {"height": height, "width": width}}
        return ImageProcessor(ImageProcessorConfig.from_dict(d))

    assert reads_whole_pages(processor(2560, 1920)) and not reads_whole_pages(processor(32, 1280))
    assert not reads_whole_pages(None)


@needs_font
def test_debug_layout_never_draws_over_an_input(stub, two_lines, tmp_path):
    before = two_lines.read_bytes()
    result = invoke(two_lines, "--debug-layout", two_lines)
    assert result.exit_code == 2 and "--debug-layout" in result.stderr
    render(tmp_path / "other.png", [LONG])
    assert invoke(tmp_path, "--debug-layout", tmp_path).exit_code == 0  # drawings into the inputs' own folder
    assert two_lines.read_bytes() == before
    assert {"page-2.png", "other-2.png"} <= {p.name for p in tmp_path.iterdir()}


@needs_font
@pytest.mark.parametrize("fmt", ["hocr", "alto"])
@pytest.mark.parametrize("failure", [KeyboardInterrupt(), RuntimeError("the reader broke")])
def test_hocr_and_alto_are_written_page_by_page_and_ended_when_the_run_stops(stub, tmp_path, capsys, fmt, failure):
    pages = [render(tmp_path / f"p{i}.png", [LONG, SHORT]) for i in range(3)]
    out = tmp_path / f"pages.{fmt}"
    stub.output, stub.fail_at, stub.failure = out, 2, failure  # the third page's lines fail to read
    code = main(["ocr", *map(str, pages), "--format", fmt, "-o", str(out), "--batch-size", "2"])
    assert code == (130 if isinstance(failure, KeyboardInterrupt) else 70)  # 70: a crash
    assert capsys.readouterr().err.count("\n") == 1  # "Interrupted." or the crash, one line
    # each page was on disk as soon as it was read: the header with the first, before the second page's lines
    assert stub.seen_output[0] == "" and stub.seen_output[1].count("p0.png") == 1
    tag = 'class="ocr_page"' if fmt == "hocr" else "<Page "
    assert [seen.count(tag) for seen in stub.seen_output] == [0, 1, 2]
    root = ET.fromstring(out.read_text())  # ended properly: a valid document of the two pages read
    if fmt == "hocr":
        assert [el.get("class") for el in root.iter()].count("ocr_page") == 2
    else:
        assert len(list(root.iter("{http://www.loc.gov/standards/alto/ns-v4#}Page"))) == 2


@needs_font
def test_a_page_is_written_before_the_next_pages_are_read_and_small_pages_share_a_batch(stub, tmp_path):
    big = render(tmp_path / "big.png", [LONG, SHORT, LONG])
    small = [render(tmp_path / f"s{i}.png", [LONG]) for i in range(2)]  # pages of one line each
    out = stub.output = tmp_path / "pages.jsonl"
    result = invoke(big, *small, "--layout", "page", "--batch-size", "3", "-o", out)
    assert result.exit_code == 0, result.stderr
    assert [len(b) for b in stub.batches] == [3, 2]  # the big page alone, then the two small pages together
    assert stub.seen_output[0] == "" and json.loads(stub.seen_output[1])["file"] == str(big)  # on disk already
    assert [len(json.loads(row)["lines"]) for row in out.read_text().splitlines()] == [3, 1, 1]


def png_header(width: int, height: int) -> bytes:
    """A PNG that says it is width x height (grey) and holds no pixels: refused or read from its header alone."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


@needs_font
def test_a_huge_page_and_a_broken_file_are_one_error_line_each_and_the_batch_goes_on(stub, tmp_path, capsys):
    huge = tmp_path / "huge.png"
    huge.write_bytes(png_header(10_000, 14_000))  # 140 megapixels: over the default limit, refused from the header
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    blank = tmp_path / "blank.png"
    Image.new("RGB", (1240, 1754), "white").save(blank)
    page = render(tmp_path / "page.png", [LONG, SHORT])
    code = main(["ocr", str(huge), str(tmp_path / "broken.png"), str(blank), str(page), "--format", "text"])
    out, err = capsys.readouterr()
    assert code == 1
    assert [row for row in out.splitlines() if row] == [f"{page}: long", f"{page}: short"]  # the blank page: nothing
    errors = err.splitlines()
    assert len(errors) == 2 and all(e.startswith("Error: ") for e in errors)
    assert "10000x14000" in errors[0] and "--max-pixels" in errors[0] and errors[0].endswith(f"({huge})")
    assert errors[1].endswith(f"({tmp_path / 'broken.png'})")


CHILD = """
import resource, sys
from types import SimpleNamespace
from vedcli.cli import main
from vedcli.generation import pipeline

class Stub:
    processor = None
    @classmethod
    def load(cls, *args, **kwargs):
        return cls()
    def resolve(self, options):
        return SimpleNamespace(num_return_sequences=1, num_beams=1, length_penalty=1.0)
    def run(self, images, options):
        return [[SimpleNamespace(text=f"{i.width}x{i.height}", score=-0.1, tokens=[1])] for i in images]

pipeline.Pipeline = Stub
code = main(sys.argv[1:])
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024, file=sys.stderr)
sys.exit(code)
"""


@pytest.mark.slow
@needs_font
def test_a_10000_by_14000_page_is_read_in_bounded_memory_when_allowed(tmp_path):
    huge = Image.new("L", (10_000, 14_000), 255)
    draw = ImageDraw.Draw(huge)
    font = ImageFont.truetype(FONT, 120)
    for i in range(12):
        draw.text((600, 800 + 200 * i), f"Line {i}: {LONG}", font=font, fill=0)
    huge.save(tmp_path / "huge.png")
    del huge, draw

    def run(*args):
        done = subprocess.run(
            [sys.executable, "-c", CHILD, "ocr", *args, "--format", "csv"], capture_output=True, text=True, timeout=300
        )
        return done.returncode, done.stdout, int(done.stderr.splitlines()[-1])

    code, out, peak = run(str(tmp_path / "huge.png"), "--max-pixels", "0")
    Image.new("L", (300, 200), 255).save(tmp_path / "small.png")
    _, _, baseline = run(str(tmp_path / "small.png"))
    assert code == 0
    rows = out.splitlines()[1:]
    assert len(rows) == 12
    x0, y0, x1, y1 = map(int, rows[0].split(",")[2].split())
    assert 590 <= x0 <= 630 and 790 <= y0 <= 840 and x1 > 3000  # in the file's own pixels
    assert peak - baseline < 1000  # MB: the page as RGB (420 MB) and its decoding, the analysis shrunk to 12 MPx
