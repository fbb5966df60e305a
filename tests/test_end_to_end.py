"""The CLI on real photos against the reference's own processor + generate + tokenizer, for the families whose
preprocessing is more than a resize: a Donut-style page reader (Donut-Swin + mBART, non-square pages) and BEiT."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import skimage.data
import torch
import transformers as T
from PIL import Image
from typer.testing import CliRunner

from support.checkpoints import reference, write_checkpoint
from vedcli.cli import app

PHOTOS = Path(skimage.data.__file__).parent
runner = CliRunner()


def reference_texts(folder: Path, files: list[Path], **options) -> list[str]:
    processor = T.AutoImageProcessor.from_pretrained(folder)
    tokenizer = T.AutoTokenizer.from_pretrained(folder)
    images = [Image.open(f).convert("RGB") for f in files]
    pixels = processor(images=images, return_tensors="pt").pixel_values
    with torch.no_grad():
        ids = reference(folder).generate(pixels, **options)
    return [t.strip() for t in tokenizer.batch_decode(ids, skip_special_tokens=True)]


def ved_texts(folder: Path, files: list[Path], *flags: str) -> list[str]:
    result = runner.invoke(
        app, ["ocr", *map(str, files), "--model", str(folder), "--format", "jsonl", "--layout", "line", *flags]
    )
    assert result.exit_code == 0, result.output
    return [json.loads(line)["text"] for line in result.output.splitlines()]


@pytest.fixture(scope="module")
def donut(tmp_path_factory) -> Path:
    folder = write_checkpoint(
        tmp_path_factory.mktemp("donut"), "donut-swin", "mbart", encoder_over=dict(image_size=[40, 28])
    )
    # Donut's page preprocessing: align the long axis, thumbnail, centre padding to 40x28 (height x width)
    T.DonutImageProcessor(
        size={"height": 40, "width": 28}, do_align_long_axis=True, do_thumbnail=True, do_pad=True
    ).save_pretrained(folder)
    return folder


def test_donut_style_page_reader_matches_reference(donut):
    files = [PHOTOS / "page.png", PHOTOS / "chelsea.png", PHOTOS / "text.png"]
    expected = reference_texts(donut, files, num_beams=3, max_new_tokens=8)
    assert ved_texts(donut, files, "--beams", "3", "--max-new-tokens", "8") == expected


def test_beit_reader_matches_reference(tmp_path):
    folder = write_checkpoint(tmp_path / "beit", "beit", "trocr")
    T.BeitImageProcessor(size={"height": 32, "width": 32}, do_center_crop=False).save_pretrained(folder)
    files = [PHOTOS / "coffee.png", PHOTOS / "astronaut.png"]
    expected = reference_texts(folder, files, max_new_tokens=6)
    assert ved_texts(folder, files, "--max-new-tokens", "6") == expected
