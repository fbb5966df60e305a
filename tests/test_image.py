"""vedcli.image against transformers' image processors (the reference), and open_image on good and bad files."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import skimage.data
import torch
from PIL import Image

from vedcli.errors import InputError, ModelError
from vedcli.image import ImageProcessor, ImageProcessorConfig, load_image_processor, open_image

warnings.filterwarnings("ignore", message=".*torchvision.*")
from transformers import AutoImageProcessor, ViTImageProcessorPil  # noqa: E402  (reference, tests only)
from transformers.image_transforms import convert_to_rgb  # noqa: E402
from transformers.image_utils import load_image  # noqa: E402

PHOTOS = Path(skimage.data.__file__).parent
TOL = 1e-5

# Published layouts (old feature-extractor files, current image-processor files) and every option that changes pixels.
CONFIGS = {
    "old-vit-trocr": {  # as microsoft/trocr-base-handwritten, at a smaller size
        "feature_extractor_type": "ViTFeatureExtractor",
        "processor_class": "TrOCRProcessor",
        "do_normalize": True,
        "do_resize": True,
        "image_mean": [0.5, 0.5, 0.5],
        "image_std": [0.5, 0.5, 0.5],
        "resample": 2,
        "size": 96,
    },
    "new-vit-bicubic": {
        "image_processor_type": "ViTImageProcessor",
        "size": {"height": 40, "width": 72},
        "resample": 3,
        "do_rescale": True,
        "rescale_factor": 0.00392156862745098,
        "image_mean": [0.485, 0.456, 0.406],
        "image_std": [0.229, 0.224, 0.225],
    },
    "vit-fast-name": {"image_processor_type": "ViTImageProcessorFast", "size": [33, 21], "resample": 1},
    "old-deit-crop": {  # DeiT defaults fill what is missing: bicubic
        "feature_extractor_type": "DeiTFeatureExtractor",
        "size": 80,
        "crop_size": 64,
        "do_center_crop": True,
    },
    "old-deit-no-crop": {  # as microsoft/trocr-small-*
        "feature_extractor_type": "DeiTFeatureExtractor",
        "size": 52,
        "crop_size": 52,
        "do_center_crop": False,
        "resample": 3,
        "image_mean": [0.5, 0.5, 0.5],
        "image_std": [0.5, 0.5, 0.5],
    },
    "deit-defaults": {"image_processor_type": "DeiTImageProcessor"},
    "beit": {"image_processor_type": "BeitImageProcessor", "size": {"height": 30, "width": 38}},
    "shortest-edge-crop": {
        "image_processor_type": "ViTImageProcessor",
        "size": {"shortest_edge": 45},
        "do_center_crop": True,
        "crop_size": {"height": 33, "width": 41},
        "resample": 1,
    },
    "int-size-not-square": {
        "image_processor_type": "ViTImageProcessor",
        "size": 37,
        "default_to_square": False,
        "do_center_crop": True,
        "crop_size": 29,
    },
    "short-long-edge": {
        "image_processor_type": "ViTImageProcessor",
        "size": {"shortest_edge": 45, "longest_edge": 50},
        "do_center_crop": True,
        "crop_size": {"height": 53, "width": 41},  # larger than the resized image: zero padding
        "resample": 4,
    },
    "max-hw-no-rescale": {
        "image_processor_type": "ViTImageProcessor",
        "size": {"max_height": 45, "max_width": 50},
        "do_center_crop": True,
        "crop_size": {"height": 44, "width": 31},
        "resample": 5,
        "do_rescale": False,
        "image_mean": [100.0, 110.0, 120.0],
        "image_std": [50.0, 60.0, 70.0],
    },
    "no-normalize": {"image_processor_type": "ViTImageProcessor", "size": 31, "resample": 0, "do_normalize": False},
    "no-resize-crop": {
        "image_processor_type": "ViTImageProcessor",
        "do_resize": False,
        "do_center_crop": True,
        "crop_size": {"height": 257, "width": 301},
        "rescale_factor": 0.5,
        "image_mean": 0.25,
        "image_std": 2.0,
    },
    "nothing-but-pad": {
        "image_processor_type": "ViTImageProcessor",
        "size": {"height": 40, "width": 72},
        "do_rescale": False,
        "do_normalize": False,
        "do_pad": True,
        "pad_size": {"height": 50, "width": 80},
    },
    "no-type": {"size": 28, "resample": 3},
}


def write_config(folder: Path, d: dict, name: str = "preprocessor_config.json") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(json.dumps(d))
    return folder


def reference(folder: Path, backend: str | None = "pil"):
    """The processor transformers builds for `folder`; a file naming no type is a ViT one."""
    d = json.loads((folder / "preprocessor_config.json").read_text())
    if "image_processor_type" not in d and "feature_extractor_type" not in d:
        return ViTImageProcessorPil.from_pretrained(folder)
    kwargs = {} if backend is None else {"backend": backend}
    return AutoImageProcessor.from_pretrained(folder, **kwargs)


def ref_pixels(processor, images: list[Image.Image], **kwargs) -> torch.Tensor:
    return processor(images, return_tensors="pt", **kwargs)["pixel_values"].float()


def assert_close(ours: torch.Tensor, ref: torch.Tensor, tol: float = TOL) -> None:
    assert ours.dtype == torch.float32
    assert ours.shape == ref.shape
    assert (ours - ref).abs().max().item() < tol


@pytest.fixture(scope="module")
def photos() -> dict[str, Image.Image]:
    out = {}
    for name in ["chelsea", "coffee", "astronaut", "page"]:
        with Image.open(PHOTOS / f"{name}.png") as image:
            out[name] = image.copy()
    return out


def noise(width: int, height: int, seed: int = 0) -> Image.Image:
    pixels = np.random.RandomState(seed).randint(0, 256, (height, width, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


# --- parity -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(CONFIGS))
def test_photos_match_reference(name, photos, tmp_path):
    folder = write_config(tmp_path, CONFIGS[name])
    rgb = [photos["chelsea"], photos["astronaut"]]
    # page.png is grayscale: transformers needs do_convert_rgb for it, ved converts always
    gray = [photos["page"]]
    ref = reference(folder)
    ours = load_image_processor(folder)
    assert_close(ours(rgb), ref_pixels(ref, rgb))
    assert_close(ours(gray), ref_pixels(ref, gray, do_convert_rgb=True))


def test_coffee_at_trocr_size(photos, tmp_path):
    """The full-size published TrOCR setting on one real photo."""
    folder = write_config(tmp_path, {**CONFIGS["old-vit-trocr"], "size": 384})
    images = [photos["coffee"]]
    assert_close(load_image_processor(folder)(images), ref_pixels(reference(folder), images))


def test_default_backend(photos, tmp_path):
    """What a user of transformers gets by default: the PIL processor (exact), or with torchvision installed the
    torchvision one, whose torch resize rounds differently from PIL's by at most one 8-bit level."""
    d = CONFIGS["new-vit-bicubic"]
    folder = write_config(tmp_path, d)
    ref = AutoImageProcessor.from_pretrained(folder)
    images = [photos["chelsea"], photos["coffee"]]
    ours = load_image_processor(folder)(images)
    expected = ref_pixels(ref, images)
    if ref.backend == "pil":
        assert type(ref).__name__ == "ViTImageProcessorPil"
        assert_close(ours, expected)
    else:
        assert type(ref).__name__ == "ViTImageProcessor"
        one_level = 1 / 255 / min(d["image_std"])
        assert_close(ours, expected, tol=one_level + TOL)
        assert (ours - expected).abs().gt(TOL).float().mean().item() < 0.05


@pytest.mark.parametrize("size", [(1, 1), (3, 1000), (1000, 3), (2, 7)])
@pytest.mark.parametrize("name", ["new-vit-bicubic", "shortest-edge-crop", "no-resize-crop", "old-deit-crop"])
def test_odd_sizes_match_reference(size, name, tmp_path):
    folder = write_config(tmp_path, CONFIGS[name])
    images = [noise(*size, seed=1), noise(*size, seed=2)]
    assert_close(load_image_processor(folder)(images), ref_pixels(reference(folder), images))


def _mode_images() -> dict[str, Image.Image]:
    rgb = noise(13, 9, seed=3)
    rng = np.random.RandomState(4)
    alpha = Image.fromarray(rng.randint(0, 256, (9, 13), dtype=np.uint8))
    images = {m: rgb.convert(m) for m in ["1", "L", "P", "CMYK", "YCbCr", "HSV", "LAB", "RGBX", "F"]}
    images["RGBA"] = rgb.copy()
    images["RGBA"].putalpha(alpha)
    images["LA"] = rgb.convert("L")
    images["LA"].putalpha(alpha)
    images["PA"] = rgb.convert("P")
    images["PA"].putalpha(alpha)
    images["RGBa"] = images["RGBA"].convert("RGBa")
    p = rgb.convert("P")
    p.info["transparency"] = int(np.asarray(p)[0, 0])  # one palette entry see-through
    images["P-transparent"] = p
    keyed = rgb.copy()
    keyed.info["transparency"] = tuple(int(v) for v in np.asarray(rgb)[0, 0])  # a PNG tRNS colour key
    images["RGB-transparent"] = keyed
    images["I;16"] = Image.fromarray(rng.randint(0, 700, (9, 13)).astype(np.uint16))
    images["I"] = Image.fromarray(rng.randint(-300, 300, (9, 13)).astype(np.int32))
    return images


@pytest.mark.parametrize("mode", list(_mode_images()))
def test_every_mode_matches_reference(mode):
    image = _mode_images()[mode]
    ref = ViTImageProcessorPil(size={"height": 20, "width": 24}, resample=3, do_convert_rgb=True)
    ours = ImageProcessor(ImageProcessorConfig(size={"height": 20, "width": 24}, resample=3))
    assert_close(ours([image]), ref_pixels(ref, [image]))


def test_mode_pil_cannot_convert_is_an_input_error():
    image = Image.new("La", (4, 3))
    with pytest.raises(ValueError):  # the reference cannot either
        ViTImageProcessorPil(do_convert_rgb=True)([image])
    with pytest.raises(InputError, match="La image to RGB"):
        ImageProcessor()([image])


@pytest.mark.parametrize(
    "mode, fmt", [("1", "png"), ("L", "png"), ("LA", "png"), ("P-transparent", "png"), ("RGBA", "png"),
                  ("RGB-transparent", "png"), ("I;16", "png"), ("I", "tiff"), ("F", "tiff"), ("P-transparent", "gif")]
)
def test_open_image_converts_like_reference(mode, fmt, tmp_path):
    image = _mode_images()[mode]
    path = tmp_path / f"image.{fmt}"
    image.save(path)
    with Image.open(path) as stored:
        expected = convert_to_rgb(stored, return_numpy=True)
    ours = open_image(path)
    assert ours.mode == "RGB"
    assert np.array_equal(np.asarray(ours), expected)


def test_open_image_cmyk_jpeg(tmp_path):
    path = tmp_path / "cmyk.jpg"
    _mode_images()["CMYK"].save(path)
    with Image.open(path) as stored:
        assert stored.mode == "CMYK"
        expected = convert_to_rgb(stored, return_numpy=True)
    assert np.array_equal(np.asarray(open_image(path)), expected)


# --- configs ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(CONFIGS))
def test_to_dict_loads_in_transformers(name, photos, tmp_path):
    config = ImageProcessorConfig.from_dict(CONFIGS[name])
    assert ImageProcessorConfig.from_dict(config.to_dict()) == config
    folder = write_config(tmp_path, config.to_dict())
    ref = AutoImageProcessor.from_pretrained(folder, backend="pil")
    images = [photos["chelsea"]]
    assert_close(ImageProcessor(config)(images), ref_pixels(ref, images))


def test_missing_file_means_vit_defaults(photos, tmp_path):
    images = [photos["chelsea"]]
    default = load_image_processor(tmp_path)
    assert default.config.output_size() == (224, 224)
    assert_close(default(images), ref_pixels(ViTImageProcessorPil(), images))
    at_64 = load_image_processor(tmp_path, image_size=64)
    assert_close(at_64(images), ref_pixels(ViTImageProcessorPil(size=64), images))


def test_image_size_fills_only_what_the_file_leaves_out(photos, tmp_path):
    images = [photos["coffee"]]
    folder = write_config(tmp_path, CONFIGS["old-vit-trocr"])
    assert load_image_processor(folder, image_size=64).config.output_size() == (96, 96)  # the file wins
    assert_close(load_image_processor(folder, image_size=64)(images), ref_pixels(reference(folder), images))
    cropped = ImageProcessorConfig.from_dict({"image_processor_type": "DeiTImageProcessor"}, image_size=48)
    assert cropped.size == {"height": 48, "width": 48} and cropped.output_size() == (48, 48)


def test_nested_processor_config(photos, tmp_path):
    """transformers 5 saves a TrOCRProcessor as one processor_config.json with an `image_processor` entry."""
    from tokenizers import Tokenizer, models
    from transformers import DeiTImageProcessorPil, PreTrainedTokenizerFast, TrOCRProcessor

    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer(models.WordLevel({"<unk>": 0, "a": 1}, unk_token="<unk>")), unk_token="<unk>"
    )
    image_processor = DeiTImageProcessorPil(size=48, crop_size=40, do_center_crop=True, resample=2)
    TrOCRProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(tmp_path)
    assert not (tmp_path / "preprocessor_config.json").exists()
    # a stale preprocessor_config.json beside it loses, as in transformers
    write_config(tmp_path, {"image_processor_type": "ViTImageProcessor", "size": 20})
    images = [photos["astronaut"]]
    ours = load_image_processor(tmp_path)
    assert ours.config.output_size() == (40, 40)
    assert_close(ours(images), ref_pixels(AutoImageProcessor.from_pretrained(tmp_path, backend="pil"), images))


@pytest.mark.parametrize(
    "d, message",
    [
        ({"resample": 9}, "resample"),
        ({"resample": "bilinear"}, "resample"),
        ({"size": {"longest_edge": 5}}, "size must be"),
        ({"size": {"height": 0, "width": 5}}, "positive"),
        ({"image_processor_type": "DonutImageProcessor"}, "unsupported image processor"),
        ({"image_mean": [0.5, 0.5]}, "image_mean"),
        ({"image_std": [0.5, 0.0, 0.5]}, "image_std"),
        ({"do_center_crop": True}, "crop_size is missing"),
        ({"do_pad": True}, "pad_size is missing"),
        ({"do_resize": "yes"}, "do_resize"),
        ([1, 2], "JSON object"),
    ],
)
def test_bad_config_is_a_model_error_naming_the_file(d, message, tmp_path):
    folder = write_config(tmp_path, d)
    with pytest.raises(ModelError, match=message) as info:
        load_image_processor(folder)
    assert info.value.where == str(folder / "preprocessor_config.json")


def test_unreadable_json_is_a_model_error(tmp_path):
    (tmp_path / "preprocessor_config.json").write_text("{not json")
    with pytest.raises(ModelError) as info:
        load_image_processor(tmp_path)
    assert info.value.where == str(tmp_path / "preprocessor_config.json")


def test_batches():
    processor = ImageProcessor(ImageProcessorConfig(size={"height": 8, "width": 6}))
    assert processor([]).shape == (0, 3, 8, 6)
    assert processor([noise(5, 5), noise(9, 2)]).shape == (2, 3, 8, 6)
    varying = ImageProcessor(ImageProcessorConfig(size={"shortest_edge": 4}))
    with pytest.raises(InputError, match="different sizes"):
        varying([noise(5, 5), noise(9, 2)])


# --- open_image -------------------------------------------------------------------------------------------------


def test_open_image_applies_exif_orientation(tmp_path):
    """Stored 40 wide x 20 high, left half red; orientation 6 means "turn 90 degrees clockwise to view"."""
    stored = Image.new("RGB", (40, 20), (0, 0, 255))
    stored.paste((255, 0, 0), (0, 0, 20, 20))
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "rotated.jpg"
    stored.save(path, exif=exif, quality=95)

    image = open_image(path)
    assert image.mode == "RGB" and image.size == (20, 40)
    pixels = np.asarray(image).astype(int)
    assert pixels[5, 10, 0] > 200 and pixels[5, 10, 2] < 60  # top is the red half
    assert pixels[35, 10, 2] > 200 and pixels[35, 10, 0] < 60  # bottom is the blue half
    assert np.array_equal(pixels, np.asarray(load_image(str(path))))  # transformers' loader turns it too


def _encoded(tmp_path: Path, fmt: str) -> bytes:
    path = tmp_path / f"whole.{fmt}"
    noise(64, 64, seed=5).save(path, format=fmt)
    return path.read_bytes()


@pytest.mark.parametrize("fmt", ["png", "jpeg"])
def test_open_image_truncated(fmt, tmp_path):
    whole = _encoded(tmp_path, fmt)
    path = tmp_path / f"cut.{fmt}"
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(InputError, match="truncated or corrupt") as info:
        open_image(path)
    assert info.value.where == str(path)


def test_open_image_corrupt_png_data(tmp_path):
    data = bytearray(_encoded(tmp_path, "png"))
    data[200:260] = bytes(60)  # damage the compressed pixel data, keep the length
    path = tmp_path / "damaged.png"
    path.write_bytes(bytes(data))
    with pytest.raises(InputError) as info:
        open_image(path)
    assert info.value.where == str(path)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p.write_text("this is not a picture\n"), "not an image"),
        (lambda p: p.write_bytes(b""), "empty"),
        (lambda p: p.mkdir(), "directory"),
        (lambda p: None, "no such"),
    ],
    ids=["text-file", "zero-bytes", "directory", "missing"],
)
def test_open_image_bad_paths(make, message, tmp_path):
    path = tmp_path / "photo.jpg"
    make(path)
    with pytest.raises(InputError, match=message) as info:
        open_image(path)
    assert info.value.where == str(path)
    assert str(path) in str(info.value)


def test_open_image_permission_denied(tmp_path, monkeypatch):
    path = tmp_path / "secret.png"
    noise(4, 4).save(path)
    if hasattr(os, "geteuid") and os.geteuid() != 0:
        path.chmod(0)
    else:  # root reads anything: make the open fail the way it would for a user

        def refuse(*args, **kwargs):
            raise PermissionError(13, "Permission denied", str(path))

        monkeypatch.setattr(Image, "open", refuse)
    with pytest.raises(InputError, match="permission denied") as info:
        open_image(path)
    assert info.value.where == str(path)


def test_open_image_then_process_matches_reference(photos, tmp_path):
    """The path a user takes: file -> open_image -> processor, against transformers on the same file."""
    path = tmp_path / "page.png"
    photos["page"].save(path)
    folder = write_config(tmp_path / "model", CONFIGS["old-vit-trocr"])
    ref = ref_pixels(reference(folder), [load_image(str(path))])
    assert_close(load_image_processor(folder)([open_image(path)]), ref)
