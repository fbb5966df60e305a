"""The reader shipped in the package (vedcli/models/printed), itself: a plain VisionEncoderDecoder checkpoint that
transformers loads with no missing or unexpected keys and computes the same logits from, small enough to ship, and
one that reads a clean printed line. (test_builtin_model.py checks the name and the folder's handling on a stand-in.)

Skipped in a checkout that does not hold the weights yet.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image, ImageDraw, ImageFont

from vedcli.checkpoints.load import load_model
from vedcli.training.metrics import cer

SHIPPED = Path(__file__).resolve().parents[1] / "vedcli" / "models" / "printed"
pytestmark = pytest.mark.skipif(not SHIPPED.is_dir(), reason="no built-in reader in this checkout")
TEXT = "Invoice No. 2024-117: total $1,284.50 (due 12 March)"


def _line(text: str, size: int = 28) -> Image.Image:
    """`text` drawn in black on white with Pillow's own scalable font (the same on every machine)."""
    font = ImageFont.load_default(size=size)
    left, top, right, bottom = font.getbbox(text)
    image = Image.new("RGB", (right - left + 16, bottom - top + 12), "white")
    ImageDraw.Draw(image).text((8 - left, 6 - top), text, fill="black", font=font)
    return image


def _pixels(folder: Path, images: Image.Image | list[Image.Image]) -> torch.Tensor:
    from vedcli.processing.image import load_image_processor

    return load_image_processor(folder)(images if isinstance(images, list) else [images])


def test_shipped_reader_is_small_and_in_fp16():
    weights = SHIPPED / "model.safetensors"
    assert weights.stat().st_size <= 30 * 1024 * 1024
    header = json.loads(weights.read_bytes()[8 : 8 + int.from_bytes(weights.read_bytes()[:8], "little")])
    assert {entry["dtype"] for name, entry in header.items() if name != "__metadata__"} == {"F16"}
    assert json.loads((SHIPPED / "generation_config.json").read_text())["max_length"] >= 256
    assert (SHIPPED / "README.md").is_file()


def test_shipped_reader_is_what_transformers_loads():
    transformers = pytest.importorskip("transformers")
    reference, info = transformers.VisionEncoderDecoderModel.from_pretrained(
        SHIPPED, output_loading_info=True, torch_dtype=torch.float32
    )
    assert not any(info[key] for key in ("missing_keys", "unexpected_keys", "mismatched_keys")), info
    ours = load_model("printed", dtype="fp32")
    pixels = _pixels(SHIPPED, _line(TEXT))
    ids = torch.tensor([[ours.config.decoder_start_token_id, 40, 110, 118]])
    with torch.no_grad():
        expected = reference.eval()(pixel_values=pixels, decoder_input_ids=ids).logits
        got = ours(pixel_values=pixels, decoder_input_ids=ids).logits
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


def test_shipped_reader_reads_clean_lines():
    """Lines in a font it was not trained on, at three sizes: a character error rate well under 10 % (the README's
    figures on real scans come from `make ocr-quality`)."""
    from vedcli.processing.tokenizer import load_tokenizer

    model = load_model("printed", dtype="fp32")
    tokenizer = load_tokenizer(SHIPPED)
    texts = [TEXT, "the quick brown fox jumps over the lazy dog", "Section 4.2 describes the method; see Table 3."]
    texts.append("42")
    lines = [(text, _line(text, size)) for text in texts for size in (20, 28, 40)]
    ids = model.generate(_pixels(SHIPPED, [image for _, image in lines]))
    read = [tokenizer.decode(row.tolist(), skip_special_tokens=True).strip() for row in ids]
    assert cer(read, [text for text, _ in lines]) <= 0.10, read
