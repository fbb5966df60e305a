"""Bounded memory for images: the pixel limit (ved's own one-line error, --max-pixels), images shrunk right after
decoding to what the processor needs (exactly PIL's two-step resize; untouched when not larger than needed), and
the read-ahead bounded in bytes."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image, ImageFile
from typer.testing import CliRunner

from vedcli.cli import app
from vedcli.commands import caption as runner_module
from vedcli.commands.inputs import InputItem
from vedcli.generation import pipeline as pipeline_module
from vedcli.processing import image as image_module
from vedcli.processing.image import (
    EXTENT,
    REDUCING_GAP,
    ImageProcessor,
    ImageProcessorConfig,
    ImageTooLarge,
    decoding_bytes,
    open_image,
)


def noise(width: int, height: int, seed: int = 0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8))


def photo_like(width: int, height: int, seed: int = 0) -> Image.Image:
    """Smooth shapes plus a little noise: what a shrink-then-resize is allowed to change only slightly."""
    small = noise(max(2, width // 40), max(2, height // 40), seed)
    smooth = np.asarray(small.resize((width, height), Image.BICUBIC)).astype(np.int16)
    grain = np.random.default_rng(seed + 1).integers(-12, 13, smooth.shape, dtype=np.int16)
    return Image.fromarray(np.clip(smooth + grain, 0, 255).astype(np.uint8))


def processor(height: int = 16, width: int = 16, resample: int = 2, **over) -> ImageProcessor:
    return ImageProcessor(ImageProcessorConfig(size={"height": height, "width": width}, resample=resample, **over))


def levels(a, b, config: ImageProcessorConfig) -> np.ndarray:
    """|a - b| of two processed batches in 8-bit levels of the input."""
    std = np.asarray(config.image_std, dtype=np.float32)[:, None, None]
    return np.abs(a.numpy() - b.numpy()) * std * 255


# --- the pixel limit ---------------------------------------------------------------------------------------------


def test_over_the_limit_is_refused_from_the_header(tmp_path, monkeypatch):
    path = tmp_path / "big.png"
    Image.new("RGB", (300, 200), (9, 9, 9)).save(path)

    def no_decoding(self, *args, **kwargs):
        raise AssertionError("decoded an image that is over the limit")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    with pytest.raises(ImageTooLarge) as info:
        open_image(path, max_pixels=59_999)
    assert info.value.where == str(path)
    assert info.value.message == "image of 300x200 pixels (0 megapixels) is over the limit of 0.059999 megapixels"
    assert decoding_bytes(path, max_pixels=59_999) == 0  # never decoded: nothing to reserve


def test_at_the_limit_and_without_limit_the_image_is_read(tmp_path):
    path = tmp_path / "big.png"
    Image.new("RGB", (300, 200), (9, 9, 9)).save(path)
    assert open_image(path, max_pixels=60_000).size == (300, 200)
    assert open_image(path, max_pixels=None).size == (300, 200)
    assert decoding_bytes(path) == 300 * 200 * 4


def _fake_pipeline(monkeypatch, seen: list):
    class Fake:
        processor = None

        @classmethod
        def load(cls, *args, **kwargs):
            return cls()

        def resolve(self, options):
            return SimpleNamespace(num_return_sequences=1)

        def run(self, images, options):
            seen.append([image.size for image in images])
            return [
                [SimpleNamespace(text=f"{image.size[0]}x{image.size[1]}", score=0.0, tokens=[])] for image in images
            ]

    monkeypatch.setattr(pipeline_module, "Pipeline", Fake)


def test_an_image_over_the_limit_is_one_error_row_and_the_batch_goes_on(tmp_path, monkeypatch):
    """PIL's own check would warn above 1000 pixels and refuse above 2000 here: ved's limit replaces it."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    names = {"a.png": (40, 30), "b.png": (100, 100), "c.png": (50, 20)}
    for name, size in names.items():
        noise(*size).save(tmp_path / name)
    seen: list = []
    _fake_pipeline(monkeypatch, seen)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a DecompressionBombWarning would fail the run
        result = CliRunner().invoke(app, ["caption", str(tmp_path), "--max-pixels", "5k", "--format", "jsonl"])
    assert result.exit_code == 1, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [row["file"] for row in rows] == [str(tmp_path / name) for name in names]
    assert rows[0]["text"] == "40x30" and rows[2]["text"] == "50x20"
    assert rows[1]["error"] == (
        "image of 100x100 pixels (0 megapixels) is over the limit of 0.005 megapixels; --max-pixels raises the limit"
    )
    assert seen == [[(40, 30), (50, 20)]]
    assert "DecompressionBomb" not in result.output

    done = CliRunner().invoke(app, ["caption", str(tmp_path), "--max-pixels", "0", "--format", "jsonl"])  # no limit
    assert done.exit_code == 0 and "DecompressionBomb" not in done.output
    assert [json.loads(line)["text"] for line in done.stdout.splitlines()] == ["40x30", "100x100", "50x20"]


def test_the_text_format_prints_one_line_for_it(tmp_path, monkeypatch):
    noise(100, 100).save(tmp_path / "b.png")
    _fake_pipeline(monkeypatch, [])
    result = CliRunner().invoke(app, ["caption", str(tmp_path / "b.png"), "--max-pixels", "9999"])
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == (
        "Error: image of 100x100 pixels (0 megapixels) is over the limit of 0.009999 megapixels; "
        f"--max-pixels raises the limit ({tmp_path / 'b.png'})\n"
    )


@pytest.mark.parametrize("value", ["lots", "-5", "1.5.2M"])
def test_a_bad_max_pixels_is_one_line(value, tmp_path, monkeypatch):
    _fake_pipeline(monkeypatch, [])
    noise(4, 4).save(tmp_path / "a.png")
    result = CliRunner().invoke(app, ["caption", str(tmp_path / "a.png"), f"--max-pixels={value}"])
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr.startswith("Error: --max-pixels must be") and result.stderr.endswith("(--max-pixels)\n")


# --- shrinking right after decoding ------------------------------------------------------------------------------


@pytest.fixture
def shrink_small(monkeypatch):
    """Shrink images of any size (ved shrinks only those above 16 megapixels), so the tests stay small."""
    monkeypatch.setattr(image_module, "SHRINK_PIXELS", 0)


def test_images_up_to_16_megapixels_are_decoded_whole(tmp_path):
    path = tmp_path / "photo.png"
    photo_like(701, 503).save(path)
    proc = processor(16, 16)
    assert proc.shrink_factors(503, 701) == (7, 10)
    opened = open_image(path, processor=proc)
    assert opened.size == (701, 503) and EXTENT not in opened.info


def test_a_big_image_is_shrunk_and_resizes_as_pils_two_step_resize(shrink_small, tmp_path):
    """701 x 503 for a 16 x 16 resize: shrunk 10 x 7 times (to at least 4 x the target; 503 / 7 is no whole number,
    so the resize reads the exact extent), and the processed pixels are exactly PIL's resize(reducing_gap=4)."""
    path = tmp_path / "big.png"
    photo_like(701, 503).save(path)
    proc = processor(16, 16, resample=2)
    small = open_image(path, processor=proc)
    assert small.size == (71, 72)
    assert small.info[EXTENT] == (71, 72, (0.0, 0.0, 70.1, 503 / 7))
    expected = processor(16, 16, resample=2, do_resize=False)(
        [Image.open(path).convert("RGB").resize((16, 16), 2, reducing_gap=REDUCING_GAP)]
    )
    assert np.array_equal(proc([small]).numpy(), expected.numpy())
    # and close to the one-step resize the reference makes (no whole factor divides 701 or 503: the last row and
    # column move most)
    moved = levels(proc([small]), proc([open_image(path)]), proc.config)
    assert moved[..., 1:-1, 1:-1].max() <= 4 and moved.max() <= 10


def test_factors_that_divide_the_edges_are_preferred(shrink_small, tmp_path):
    """704 x 512 for 16 x 16: at most 11 x 8 times, and both divide: no partial block, no extent to carry."""
    proc = processor(16, 16)
    assert proc.shrink_factors(512, 704) == (8, 11)
    assert proc.shrink_factors(510, 700) == (6, 10)  # at most 7 and 10: 7 divides no 510, 6 does
    assert proc.shrink_factors(503, 701) == (7, 10)  # primes: the most, with a partial block
    path = tmp_path / "photo.png"
    photo_like(704, 512, seed=2).save(path)
    small = open_image(path, processor=proc)
    assert small.size == (64, 64) and EXTENT not in small.info
    assert levels(proc([small]), proc([open_image(path)]), proc.config).max() <= 4


@pytest.mark.parametrize("size", [(127, 127), (127, 64), (16, 16), (10, 127)])
def test_an_image_not_larger_than_needed_is_untouched(shrink_small, size, tmp_path):
    """Below 2 x REDUCING_GAP times the target along an edge, nothing is shrunk: exactly the reference's values."""
    path = tmp_path / "photo.png"
    noise(*size).save(path)
    proc = processor(16, 16)
    opened = open_image(path, processor=proc)
    assert opened.size == size and EXTENT not in opened.info
    assert np.array_equal(proc([opened]).numpy(), proc([open_image(path)]).numpy())


def test_nearest_no_resize_and_margin_crop_read_every_pixel(shrink_small, tmp_path):
    path = tmp_path / "photo.png"
    noise(400, 400).save(path)
    keep = [
        processor(16, 16, resample=0),  # nearest samples single pixels
        processor(16, 16, do_resize=False, do_pad=True, pad_size={"height": 400, "width": 400}),
        ImageProcessor(ImageProcessorConfig(processor_type="NougatImageProcessor", size={"height": 32, "width": 24})),
    ]
    for proc in keep:
        assert proc.shrink_factors(400, 400) == (1, 1)
        assert open_image(path, processor=proc).size == (400, 400)


def test_exif_orientation_and_a_shrink(shrink_small, tmp_path):
    """Stored 600 wide x 200 high, orientation 6 (turn clockwise): upright 200 x 600, shrunk along each edge by what
    the upright image needs, and then exactly PIL's two-step resize of the upright image."""
    stored = photo_like(600, 200, seed=3)
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "turned.png"
    stored.save(path, exif=exif)
    proc = processor(20, 10)  # height 20, width 10
    small = open_image(path, processor=proc)
    upright = stored.transpose(Image.Transpose.ROTATE_270)
    assert upright.size == (200, 600)
    assert small.size == (40, 100)  # width 200 / 10 / 4 = 5; height 600 / 20 / 4 = 7.5: 6, which divides 600
    expected = upright.reduce((5, 6)).resize((10, 20), 2)
    assert np.array_equal(np.asarray(image_module._resize(small, 10, 20, 2)), np.asarray(expected))


def test_a_big_jpeg_is_decoded_at_a_smaller_scale(shrink_small, tmp_path, monkeypatch):
    """1600 x 1200 for a 32 x 32 resize: decoded at 1/8 scale (1200 / 32 / 4 = 9 >= 8), nothing left to reduce; the
    processed pixels stay within a few levels of the full decode's."""
    path = tmp_path / "photo.jpg"
    photo_like(1600, 1200, seed=4).save(path, quality=92)
    asked = []
    jpeg = type(Image.open(path))
    real = jpeg.draft
    monkeypatch.setattr(jpeg, "draft", lambda self, mode, size: asked.append(size) or real(self, mode, size))
    proc = processor(32, 32)
    small = open_image(path, processor=proc)
    assert asked == [(200, 150)] and small.size == (200, 150)
    full = proc([open_image(path)])
    assert levels(proc([small]), full, proc.config).max() <= 4


@pytest.mark.parametrize("orientation", [2, 3, 4, 5, 7, 8])
def test_flipped_axes_keep_the_exact_extent(shrink_small, orientation, tmp_path):
    """Orientations that flip an axis put the reduced image's partial block first along it: the resize reads the
    box where it is, so the result stays within a few levels of the full image's."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / "turned.png"
    photo_like(701, 503, seed=orientation).save(path, exif=exif)  # partial blocks along both edges
    proc = processor(16, 16)
    small = open_image(path, processor=proc)
    assert max(small.size) < 100
    moved = levels(proc([small]), proc([open_image(path)]), proc.config)
    assert moved[..., 1:-1, 1:-1].max() <= 4 and moved.max() <= 10


def test_a_page_turned_to_its_long_axis_keeps_the_exact_extent(shrink_small, tmp_path):
    """Donut: a landscape image for a portrait page is turned, then resized; the shrunk image gives the same size and
    nearly the same pixels as the full one."""
    path = tmp_path / "page.png"
    photo_like(1001, 701, seed=5).save(path)
    proc = ImageProcessor(
        ImageProcessorConfig(
            processor_type="DonutImageProcessor", size={"height": 40, "width": 28}, do_align_long_axis=True
        )
    )
    small = open_image(path, processor=proc)
    assert small.size[0] < 1001 // 2
    full = proc([open_image(path)])
    shrunk = proc([small])
    assert shrunk.shape == full.shape
    assert levels(shrunk, full, proc.config).max() <= 4


def test_a_later_crop_does_not_use_a_stale_extent(shrink_small, tmp_path):
    path = tmp_path / "big.png"
    photo_like(701, 503).save(path)
    small = open_image(path, processor=processor(16, 16))
    cropped = small.crop((0, 0, 40, 40))
    assert np.array_equal(np.asarray(image_module._resize(cropped, 8, 8, 2)), np.asarray(cropped.resize((8, 8), 2)))


# --- the read-ahead, bounded in bytes ----------------------------------------------------------------------------


class CountingReader:
    """A reader whose every item costs `cost` bytes; records how many items were handed to the threads."""

    def __init__(self, cost: int):
        self.item_cost = cost
        self.submitted = 0

    def cost(self, item: InputItem) -> int:
        self.submitted += 1  # asked right before the item is submitted (or before older ones are handed out)
        return self.item_cost

    def __call__(self, item: InputItem):
        return item, Image.new("RGB", (2, 2)), None


@pytest.mark.parametrize("cost, window, ahead", [(600, 8, 1), (300, 8, 3), (0, 4, 4), (5000, 8, 1)])
def test_read_ahead_is_bounded_in_bytes_and_count(cost, window, ahead):
    """With 1000 bytes allowed, items of 600 bytes are read one at a time, of 300 three at a time; an item larger
    than the whole budget is still read, alone."""
    items = [InputItem(f"{i}.png") for i in range(12)]
    reader = CountingReader(cost)
    for i, (item, _image, error) in enumerate(runner_module._read_ahead(items, reader, window=window, max_bytes=1000)):
        assert item is items[i] and error is None
        assert reader.submitted <= min(i + 1 + ahead, len(items))  # this one, those ahead, the one asked about
    assert reader.submitted == len(items)


def test_the_run_reserves_by_the_images_headers(tmp_path, monkeypatch):
    """A run of big images keeps at most READ_AHEAD_BYTES of decoding ahead: here, one image at a time."""
    for i in range(4):
        Image.new("RGB", (100, 100), (i, i, i)).save(tmp_path / f"{i}.png")
    monkeypatch.setattr(runner_module, "READ_AHEAD_BYTES", 100 * 100 * 4)
    decoding = []
    running = []
    real = image_module.open_image

    def open_spy(path, *args, **kwargs):
        running.append(path)
        decoding.append(len(running))
        try:
            return real(path, *args, **kwargs)
        finally:
            running.remove(path)

    monkeypatch.setattr(image_module, "open_image", open_spy)
    _fake_pipeline(monkeypatch, [])
    result = CliRunner().invoke(app, ["caption", str(tmp_path), "--batch-size", "4"])
    assert result.exit_code == 0, result.output
    assert decoding and max(decoding) == 1


def test_huge_images_need_not_exist_on_disk_to_be_refused(tmp_path):
    """A 100000 x 100000 PNG header (a decompression bomb) is refused without a warning, whatever PIL's limit."""
    path = tmp_path / "bomb.png"
    _write_png_header(path, 100_000, 100_000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        previous, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
        try:
            with pytest.raises(ImageTooLarge, match="10000 megapixels"):
                open_image(path)
        finally:
            Image.MAX_IMAGE_PIXELS = previous
    with pytest.raises(ImageTooLarge, match="decompression bomb"):  # PIL's own limit on: its error becomes ved's
        previous, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, 89_478_485
        try:
            open_image(path, max_pixels=None)
        finally:
            Image.MAX_IMAGE_PIXELS = previous


def _write_png_header(path: Path, width: int, height: int) -> None:
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")
    )
