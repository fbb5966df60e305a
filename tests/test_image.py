"""vedcli.processing.image against transformers' image processors (the reference), and open_image on good and bad
files."""

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
from vedcli.processing.image import ImageProcessor, ImageProcessorConfig, crop_margin, load_image_processor, open_image

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
    "swin-old": {  # as microsoft/swin-tiny-patch4-window7-224: Swin checkpoints carry ViT's processor
        "feature_extractor_type": "ViTFeatureExtractor",
        "do_normalize": True,
        "do_resize": True,
        "image_mean": [0.485, 0.456, 0.406],
        "image_std": [0.229, 0.224, 0.225],
        "resample": 3,
        "size": 56,
    },
    "beit-old": {  # as microsoft/beit-base-patch16-224, at a smaller size
        "feature_extractor_type": "BeitFeatureExtractor",
        "crop_size": 224,
        "do_center_crop": False,
        "do_normalize": True,
        "do_resize": True,
        "image_mean": [0.5, 0.5, 0.5],
        "image_std": [0.5, 0.5, 0.5],
        "reduce_labels": False,
        "resample": 2,
        "size": 48,
    },
    "beit-crop-pad-ignored": {  # BEiT's pipeline has no pad step: do_pad does nothing
        "image_processor_type": "BeitImageProcessor",
        "size": {"height": 50, "width": 44},
        "do_center_crop": True,
        "crop_size": {"height": 40, "width": 36},
        "do_pad": True,
        "pad_size": {"height": 60, "width": 60},
    },
    "donut-base-old": {  # as naver-clova-ix/donut-base: size is [width, height]
        "do_align_long_axis": False,
        "do_normalize": True,
        "do_pad": True,
        "do_resize": True,
        "do_thumbnail": True,
        "feature_extractor_type": "DonutFeatureExtractor",
        "image_mean": [0.5, 0.5, 0.5],
        "image_std": [0.5, 0.5, 0.5],
        "processor_class": "DonutProcessor",
        "resample": 2,
        "size": [40, 56],
    },
    "donut-aligned": {  # a landscape page size, pages turned to it
        "image_processor_type": "DonutImageProcessor",
        "size": {"height": 48, "width": 64},
        "do_align_long_axis": True,
        "resample": 3,
        "rescale_factor": 0.00392156862745098,
        "image_mean": [0.485, 0.456, 0.406],
        "image_std": [0.229, 0.224, 0.225],
    },
    "donut-crop-nearest": {  # resample 0: transformers' Donut thumbnails with bicubic then
        "image_processor_type": "DonutImageProcessor",
        "size": [30, 36],
        "resample": 0,
        "do_center_crop": True,
        "crop_size": {"height": 26, "width": 40},  # wider than the page: zero padding
        "do_normalize": False,
    },
    "nougat-base": {  # as facebook/nougat-base, at a smaller size
        "do_align_long_axis": False,
        "do_crop_margin": True,
        "do_normalize": True,
        "do_pad": True,
        "do_rescale": True,
        "do_resize": True,
        "do_thumbnail": True,
        "image_mean": [0.485, 0.456, 0.406],
        "image_processor_type": "NougatImageProcessor",
        "image_std": [0.229, 0.224, 0.225],
        "processor_class": "NougatProcessor",
        "resample": 2,
        "rescale_factor": 0.00392156862745098,
        "size": {"height": 56, "width": 42},
    },
    "nougat-aligned": {  # Nougat's pipeline has no center crop: do_center_crop does nothing
        "image_processor_type": "NougatImageProcessor",
        "size": [30, 50],  # Nougat reads a list as [height, width]
        "do_crop_margin": False,
        "do_align_long_axis": True,
        "resample": 1,
        "do_center_crop": True,
        "crop_size": 20,
    },
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
    "mode, fmt",
    [
        ("1", "png"),
        ("L", "png"),
        ("LA", "png"),
        ("P-transparent", "png"),
        ("RGBA", "png"),
        ("RGB-transparent", "png"),
        ("I;16", "png"),
        ("I", "tiff"),
        ("F", "tiff"),
        ("P-transparent", "gif"),
    ],
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


# --- document pages (Donut, Nougat) ----------------------------------------------------------------------------

PORTRAIT, LANDSCAPE = {"height": 48, "width": 36}, {"height": 36, "width": 48}

# One option combination each; the images below come out in different sizes, so each is processed alone.
PAGE_CASES = {
    "resize-thumbnail": {"do_pad": False},
    "resize-only": {"do_thumbnail": False, "do_pad": False},
    "thumbnail-pad": {"do_resize": False},  # small images are left alone, large ones shrink
    "thumbnail-only": {"do_resize": False, "do_pad": False},
    "pad-only": {"do_resize": False, "do_thumbnail": False, "size": {"height": 520, "width": 600}},
    "align-portrait": {"do_align_long_axis": True, "do_pad": False},
    "align-landscape": {"do_align_long_axis": True, "do_pad": False, "size": LANDSCAPE},
    "align-square": {"do_align_long_axis": True, "do_pad": False, "size": {"height": 40, "width": 40}},
    "align-pad-bicubic": {"do_align_long_axis": True, "size": LANDSCAPE, "resample": 3},
}


def page_images(photos) -> dict[str, Image.Image]:
    return {
        "portrait": noise(20, 31, seed=6),  # smaller than the page sizes above
        "landscape": noise(33, 17, seed=7),
        "square": noise(25, 25, seed=8),
        "chelsea": photos["chelsea"],  # larger, landscape
        "page": photos["page"].convert("RGB"),  # landscape document
    }


@pytest.mark.parametrize("family", ["DonutImageProcessor", "NougatImageProcessor"])
@pytest.mark.parametrize("case", list(PAGE_CASES))
def test_page_options_match_reference(case, family, photos, tmp_path):
    d = {"image_processor_type": family, "size": PORTRAIT, "resample": 2, **PAGE_CASES[case]}
    folder = write_config(tmp_path, d)
    ref = reference(folder)
    ours = load_image_processor(folder)
    for image in page_images(photos).values():
        assert_close(ours([image]), ref_pixels(ref, [image]))


@pytest.mark.parametrize("size", [(1, 1), (2, 7), (7, 2), (40, 3), (5, 60)])
@pytest.mark.parametrize("name", ["donut-base-old", "donut-aligned", "donut-crop-nearest", "nougat-base"])
def test_page_odd_sizes_match_reference(size, name, tmp_path):
    folder = write_config(tmp_path, CONFIGS[name])
    images = [noise(*size, seed=9), noise(*size, seed=10)]
    assert_close(load_image_processor(folder)(images), ref_pixels(reference(folder), images))


def test_align_long_axis_turns_clockwise():
    """A landscape image with its left half red, on a portrait page: turned clockwise, red ends up on top."""
    image = Image.new("RGB", (40, 20), (0, 0, 255))
    image.paste((255, 0, 0), (0, 0, 20, 20))
    config = ImageProcessorConfig(
        processor_type="DonutImageProcessor",
        size=PORTRAIT,
        do_align_long_axis=True,
        do_resize=False,
        do_thumbnail=False,
        do_pad=False,
        do_rescale=False,
        do_normalize=False,
    )
    pixels = ImageProcessor(config)([image])[0]
    assert pixels.shape == (3, 40, 20)
    assert pixels[:, :20].tolist() == torch.tensor([255.0, 0, 0])[:, None, None].expand(3, 20, 20).tolist()
    assert pixels[:, 20:].tolist() == torch.tensor([0, 0, 255.0])[:, None, None].expand(3, 20, 20).tolist()


def _document(width: int, height: int, box: tuple[int, int, int, int], seed: int) -> Image.Image:
    """A light page with dark noise inside `box` (left, top, right, bottom)."""
    rng = np.random.RandomState(seed)
    page = rng.randint(215, 256, (height, width, 3)).astype(np.uint8)
    left, top, right, bottom = box
    page[top:bottom, left:right] = rng.randint(0, 120, (bottom - top, right - left, 3))
    return Image.fromarray(page)


def _threshold_page() -> Image.Image:
    """White with one black pixel, one at gray 199 (dark: inside the crop) and one at 200 (light: outside)."""
    gray = np.full((30, 40), 255, dtype=np.uint8)
    gray[10, 10], gray[25, 3], gray[2, 35] = 0, 199, 200
    return Image.fromarray(gray).convert("RGB")


@pytest.mark.parametrize(
    "image",
    [
        _threshold_page(),
        _document(90, 70, (13, 21, 50, 44), seed=11),
        _document(40, 120, (0, 5, 40, 6), seed=12),  # one dark row
        Image.new("RGB", (30, 20), (240, 240, 240)),  # uniform: nothing to crop
        Image.new("L", (9, 6), 200).convert("RGB"),
    ],
    ids=["threshold", "box", "row", "uniform", "gray-uniform"],
)
def test_crop_margin_matches_reference(image, tmp_path, request):
    from transformers import NougatImageProcessorPil

    chw = np.asarray(image).transpose(2, 0, 1).copy()
    expected = NougatImageProcessorPil().crop_margin(chw)
    if request.node.callspec.id == "threshold":
        assert expected.shape == (3, 16, 8)  # rows 10..25, columns 3..10
    assert np.array_equal(np.asarray(crop_margin(image)).transpose(2, 0, 1), expected)
    folder = write_config(tmp_path, {**CONFIGS["nougat-base"], "size": {"height": 64, "width": 48}})
    assert_close(load_image_processor(folder)([image]), ref_pixels(reference(folder), [image]))


def test_crop_margin_on_the_document_photo(photos, tmp_path):
    """page.png has a dark border on some sides: the margin crop keeps it, the pipeline matches end to end."""
    folder = write_config(tmp_path, {**CONFIGS["nougat-base"], "do_align_long_axis": True})
    images = [photos["page"]]
    assert_close(load_image_processor(folder)(images), ref_pixels(reference(folder), images, do_convert_rgb=True))


def test_random_padding_is_ignored_like_reference(photos, tmp_path):
    """transformers never pads at random at inference, whatever the file says; ved pads centred too."""
    images = [photos["chelsea"], noise(9, 30, seed=13)]
    centred = ref_pixels(reference(write_config(tmp_path / "plain", CONFIGS["donut-base-old"])), images)
    folder = write_config(tmp_path / "random", {**CONFIGS["donut-base-old"], "random_padding": True})
    ref = reference(folder)
    assert_close(ref_pixels(ref, images), centred)
    assert_close(ref_pixels(ref, images), centred)
    assert_close(load_image_processor(folder)(images), centred)
    # the padding really is there: black (-1 after normalizing) above and below the landscape photo
    assert centred[0, :, 0].eq(-1).all() and centred[0, :, -1].eq(-1).all()


@pytest.mark.parametrize("family", ["DonutImageProcessor", "NougatImageProcessor"])
def test_page_too_thin_to_fit_fails_like_reference(family):
    """The thumbnail of a 3x1000 image on a 48x36 page would be 0 pixels wide: the reference fails, ved says why."""
    image = noise(3, 1000)
    from transformers import DonutImageProcessorPil, NougatImageProcessorPil

    reference_class = DonutImageProcessorPil if family.startswith("Donut") else NougatImageProcessorPil
    with pytest.raises(ValueError):
        reference_class(size=PORTRAIT)([image])
    with pytest.raises(InputError, match="too thin"):
        ImageProcessor(ImageProcessorConfig(processor_type=family, size=PORTRAIT))([image])


def test_page_error_names_the_file(tmp_path):
    path = tmp_path / "thin.png"
    noise(3, 1000).save(path)
    with Image.open(path) as image, pytest.raises(InputError, match="too thin") as info:
        ImageProcessor(ImageProcessorConfig(processor_type="DonutImageProcessor", size=PORTRAIT))([image])
    assert info.value.where == str(path)


def test_page_larger_than_size_without_thumbnail_fails_like_reference():
    from transformers import DonutImageProcessorPil

    image = noise(50, 30)
    with pytest.raises(ValueError):
        DonutImageProcessorPil(size=PORTRAIT, do_resize=False, do_thumbnail=False)([image])
    config = ImageProcessorConfig(
        processor_type="DonutImageProcessor", size=PORTRAIT, do_resize=False, do_thumbnail=False
    )
    with pytest.raises(InputError, match="larger than the page size"):
        ImageProcessor(config)([image])


def test_page_batches_need_padding():
    pad = ImageProcessor(ImageProcessorConfig(processor_type="DonutImageProcessor", size=PORTRAIT))
    assert pad.config.output_size() == (48, 36)
    assert pad([]).shape == (0, 3, 48, 36)
    assert pad([noise(5, 9), noise(90, 20)]).shape == (2, 3, 48, 36)
    crop = ImageProcessorConfig.from_dict(CONFIGS["donut-crop-nearest"])
    assert crop.output_size() == (26, 40)
    no_pad = ImageProcessor(ImageProcessorConfig(processor_type="NougatImageProcessor", size=PORTRAIT, do_pad=False))
    assert no_pad.config.output_size() is None
    with pytest.raises(InputError, match="different sizes"):
        no_pad([noise(5, 9), noise(90, 20)])


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


FAMILIES = [
    "ViTImageProcessor",
    "DeiTImageProcessor",
    "BeitImageProcessor",
    "DonutImageProcessor",
    "NougatImageProcessor",
]


@pytest.mark.parametrize("family", FAMILIES)
def test_family_defaults_match_reference(family, tmp_path):
    """What a file leaves out falls back to the reference class's own defaults."""
    import transformers

    ref = getattr(transformers, family + "Pil")()
    ours = ImageProcessorConfig.from_dict({"image_processor_type": family})
    assert ours.size == dict(ref.size)
    assert ours.resample == ref.resample
    assert ours.do_center_crop == bool(ref.do_center_crop)
    assert ours.crop_size == (dict(ref.crop_size) if ref.crop_size else None)
    assert ours.image_mean == pytest.approx(list(ref.image_mean))
    assert ours.image_std == pytest.approx(list(ref.image_std))
    assert ours.do_rescale == ref.do_rescale and ours.rescale_factor == ref.rescale_factor
    if family in ("DonutImageProcessor", "NougatImageProcessor"):
        assert ours.do_pad is True is ref.do_pad
        assert (ours.do_thumbnail, ours.do_align_long_axis) == (ref.do_thumbnail, ref.do_align_long_axis)
    if family == "NougatImageProcessor":
        assert ours.do_crop_margin is True is ref.do_crop_margin
    # direct construction takes the same defaults
    assert ImageProcessorConfig(processor_type=family) == ours


@pytest.mark.parametrize(
    "name, size", [("donut-base-old", (56, 40)), ("donut-crop-nearest", (36, 30)), ("nougat-aligned", (30, 50))]
)
def test_list_sizes_read_like_reference(name, size, tmp_path):
    """Old Donut files give [width, height]; Nougat, like the others, [height, width]."""
    config = ImageProcessorConfig.from_dict(CONFIGS[name])
    assert config.size == {"height": size[0], "width": size[1]}
    assert config.size == dict(reference(write_config(tmp_path, CONFIGS[name])).size)


def test_page_size_from_the_encoder():
    """A Donut file naming no size takes the encoder's (height, width), as for the photo families."""
    config = ImageProcessorConfig.from_dict({"feature_extractor_type": "DonutFeatureExtractor"}, image_size=(56, 40))
    assert config.size == {"height": 56, "width": 40} and config.output_size() == (56, 40)
    named = ImageProcessorConfig.from_dict(CONFIGS["donut-base-old"], image_size=(80, 60))
    assert named.size == {"height": 56, "width": 40}  # the file wins


def test_swin_folder_uses_vit_processor(photos, tmp_path):
    """A Swin checkpoint whose file names no processor: transformers picks ViT's from config.json, as ved does."""
    folder = write_config(tmp_path, {"size": 40, "resample": 3, "image_mean": [0.485, 0.456, 0.406]})
    (folder / "config.json").write_text(json.dumps({"model_type": "swin"}))
    ref = AutoImageProcessor.from_pretrained(folder, backend="pil")
    assert type(ref).__name__ == "ViTImageProcessorPil"
    images = [photos["coffee"]]
    assert_close(load_image_processor(folder)(images), ref_pixels(ref, images))


def test_nested_donut_processor_config(photos, tmp_path):
    """A DonutProcessor saved by transformers 5: the nested entry, with the page options."""
    from tokenizers import Tokenizer, models
    from transformers import DonutImageProcessorPil, DonutProcessor, PreTrainedTokenizerFast

    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer(models.WordLevel({"<unk>": 0, "a": 1}, unk_token="<unk>")), unk_token="<unk>"
    )
    image_processor = DonutImageProcessorPil(size=[36, 44], do_align_long_axis=True, resample=3)
    DonutProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(tmp_path)
    images = [photos["page"].convert("RGB")]
    ours = load_image_processor(tmp_path)
    assert ours.config.processor_type == "DonutImageProcessor" and ours.config.output_size() == (44, 36)
    assert_close(ours(images), ref_pixels(AutoImageProcessor.from_pretrained(tmp_path, backend="pil"), images))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"do_thumbnail": True}, "do_thumbnail is not an option of ViTImageProcessor"),
        ({"processor_type": "DonutImageProcessor", "do_crop_margin": False}, "do_crop_margin is not an option"),
        ({"processor_type": "DonutImageProcessor", "size": {"max_height": 4, "max_width": 5}}, "size must be"),
    ],
)
def test_bad_direct_config(kwargs, message):
    with pytest.raises(ModelError, match=message):
        ImageProcessorConfig(**kwargs)


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
        ({"image_processor_type": "LayoutLMv3ImageProcessor"}, "unsupported image processor"),
        ({"image_processor_type": "DonutImageProcessor", "size": {"shortest_edge": 30}}, "size must be"),
        ({"image_processor_type": "NougatImageProcessor", "size": 30, "default_to_square": False}, "size must be"),
        ({"image_processor_type": "DonutImageProcessor", "do_thumbnail": 1}, "do_thumbnail"),
        ({"image_processor_type": "NougatImageProcessor", "do_crop_margin": "no"}, "do_crop_margin"),
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
