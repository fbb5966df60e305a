"""PIL image -> pixel tensor, driven by `preprocessor_config.json`.

Reads every layout that published checkpoints use (old `ViTFeatureExtractor` files with `size: 384`, current
`ViTImageProcessor` files with `size: {"height", "width"}`, DeiT and BEiT variants, Donut's old `DonutFeatureExtractor`
files with `size: [width, height]`, Nougat's, the nested `image_processor` entry of a `processor_config.json`) and
reproduces the pixel values of transformers' PIL-backend image processors exactly. Photos (ViT, DeiT, BEiT; Swin
checkpoints use ViT's processor):

    RGB (alpha composited onto white) -> resize (PIL) -> center crop -> rescale -> normalize -> pad   # (3, H, W)

Document pages (Donut, Nougat) are fitted into `size` and padded around, before rescaling:

    RGB -> crop margin (Nougat) -> align long axis -> resize shortest edge -> thumbnail -> pad centred
        -> center crop (Donut) -> rescale -> normalize                                                  # (3, H, W)

Donut's `random_padding` is a training-time augmentation that transformers' processors never apply, whatever a file
says: they always pad centred, and so does ved (the output is deterministic).

transformers' torchvision backend (picked by default when torchvision is installed) resizes with torch instead of
PIL, so its values differ from these by at most one 8-bit level on a small share of pixels.

Big files: `open_image` refuses an image of more than `max_pixels` pixels from its header, before decoding it.
Given the processor, it decodes an image of more than SHRINK_PIXELS (16 megapixels) no larger than the processor's
first resize needs, so that a batch and the images read ahead of it stay small in memory: when the image is more than
2 x REDUCING_GAP times the size of that resize along an edge, it is shrunk by a whole factor (a JPEG is decoded at
1/2, 1/4 or 1/8 scale, `Image.draft`; then `Image.reduce`, preferring factors that divide the edge) to at least
REDUCING_GAP times that size, and the resize reads the exact source extent (the EXTENT info entry). The result is
PIL's own two-step `resize(..., reducing_gap=4)` (PIL documents 3 and more as indistinguishable from the one-step
resize in most cases). Measured on noisy 4800 x 3600 photos (PNG and JPEG) and 6000 x 1720 text at 224 and 384
pixels: values move by at most 2 levels of 255 (mean 0.4); where no whole factor divides an edge (4801 x 3601, say),
the last row or column by up to 8. Smaller images, nearest-neighbour resizes and Nougat's margin crop (which reads
every pixel) get exactly the reference's values.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from vedcli.checkpoints.files import read_json
from vedcli.errors import InputError, ModelError
from vedcli.validate import check_image_size

PROCESSOR_FILE = "preprocessor_config.json"  # the image processor's own file
NESTED_PROCESSOR_FILE = "processor_config.json"  # transformers 5: {"image_processor": {...}, ...}; wins when present

RESAMPLE_NAMES = {0: "nearest", 1: "lanczos", 2: "bilinear", 3: "bicubic", 4: "box", 5: "hamming"}  # PIL codes
BICUBIC = 3

# The size key sets a resize may use, as transformers accepts them for these processors.
RESIZE_KEYS = ({"height", "width"}, {"shortest_edge"}, {"shortest_edge", "longest_edge"}, {"max_height", "max_width"})
HEIGHT_WIDTH = ({"height", "width"},)

STANDARD_MEAN = STANDARD_STD = (0.5, 0.5, 0.5)  # transformers' IMAGENET_STANDARD_*
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)  # transformers' IMAGENET_DEFAULT_*

PAGE_STEPS = ("do_thumbnail", "do_align_long_axis", "do_crop_margin")  # the document families' own switches

MAX_PIXELS = 100_000_000  # open_image's default limit: 100 megapixels (a 12000 x 8000 photo is 96)
SHRINK_PIXELS = 16_000_000  # open_image shrinks only bigger images: up to this, exactly the reference's values
REDUCING_GAP = 4.0  # an image is shrunk before resizing only to at least this many times the resize's size
EXTENT = "ved_extent"  # image.info entry of a shrunk image: (width, height, box): the source's exact box in its pixels
NEAREST = 0


@dataclass(frozen=True)
class _Preset:
    """Class defaults of one transformers image processor family (what a file leaves out falls back to these), and
    how that family's pipeline differs from the plain photo one."""

    size: dict[str, int]
    resample: int
    do_center_crop: bool = False
    crop_size: dict[str, int] | None = None
    image_mean: tuple[float, float, float] = STANDARD_MEAN
    image_std: tuple[float, float, float] = STANDARD_STD
    do_pad: bool = False
    # what do_pad does: "after" normalizing, zeros bottom/right up to pad_size; "page": zeros (black) evenly around
    # the page up to `size`, before rescaling; "never": nothing (the family's pipeline has no pad step)
    pad: str = "after"
    crops: bool = True  # False: the family's pipeline has no center-crop step (do_center_crop does nothing)
    page: dict[str, bool] | None = None  # document families: their PAGE_STEPS switches and defaults; None for photos
    width_first: bool = False  # a list `size` reads [width, height] (old Donut files), not [height, width]
    thumbnail_resample: int | None = None  # None: the file's resample, except nearest (0) means bicubic (Donut)
    thumbnail_reducing_gap: float | None = None  # PIL's two-step shrink for the thumbnail (Nougat: 2.0)


PRESETS: dict[str, _Preset] = {
    "ViTImageProcessor": _Preset({"height": 224, "width": 224}, 2),
    "DeiTImageProcessor": _Preset({"height": 256, "width": 256}, 3, True, {"height": 224, "width": 224}),
    "BeitImageProcessor": _Preset({"height": 224, "width": 224}, 3, False, {"height": 224, "width": 224}, pad="never"),
    "DonutImageProcessor": _Preset(
        {"height": 2560, "width": 1920},
        2,
        do_pad=True,
        pad="page",
        width_first=True,
        page={"do_thumbnail": True, "do_align_long_axis": False},
    ),
    "NougatImageProcessor": _Preset(
        {"height": 896, "width": 672},
        2,
        image_mean=IMAGENET_MEAN,
        image_std=IMAGENET_STD,
        do_pad=True,
        pad="page",
        crops=False,
        page={"do_thumbnail": True, "do_align_long_axis": False, "do_crop_margin": True},
        thumbnail_resample=BICUBIC,
        thumbnail_reducing_gap=2.0,
    ),
}


@dataclass
class ImageProcessorConfig:
    """How images become pixel values; field names and meanings follow transformers' image processors. A field left
    None takes the family's default (PRESETS); after construction only the page switches of photo families stay None."""

    processor_type: str = "ViTImageProcessor"  # family, as `image_processor_type` names it (a key of PRESETS)
    do_convert_rgb: bool | None = None  # kept for round trips; ved always converts to RGB (the model wants 3 channels)
    do_resize: bool = True  # resize to `size` (Donut, Nougat: its shorter edge to the shorter of height and width)
    size: dict[str, int] | None = None  # one of RESIZE_KEYS; Donut, Nougat: {"height", "width"} only
    resample: int | None = None  # PIL resampling code: 0 nearest, 1 lanczos, 2 bilinear, 3 bicubic, 4 box, 5 hamming
    do_center_crop: bool | None = None  # crop (zero-padding if needed) the middle `crop_size` after resizing
    crop_size: dict[str, int] | None = None  # {"height", "width"}
    do_rescale: bool = True  # multiply 0..255 values by `rescale_factor`
    rescale_factor: float = 1 / 255
    do_normalize: bool = True  # (x - mean) / std per channel
    image_mean: list[float] | None = None
    image_std: list[float] | None = None
    do_pad: bool | None = None  # photos: zero-pad bottom/right to `pad_size` after normalizing (BEiT: no pad step);
    #                             pages: zero-pad (black) evenly around the page to `size` before rescaling
    pad_size: dict[str, int] | None = None  # {"height", "width"}; photos only
    do_thumbnail: bool | None = None  # pages: shrink to fit inside `size`, keeping the aspect ratio
    do_align_long_axis: bool | None = None  # pages: turn 90 degrees clockwise when the long axis crosses `size`'s
    do_crop_margin: bool | None = None  # Nougat: first cut away the light margin around the page's dark content

    def __post_init__(self) -> None:
        if self.processor_type not in PRESETS:
            raise ModelError(f"unsupported image processor {self.processor_type!r}; ved knows {', '.join(PRESETS)}")
        preset = PRESETS[self.processor_type]
        self._fill_defaults(preset)
        if preset.width_first and isinstance(self.size, (list, tuple)):
            self.size = list(self.size)[::-1]  # as transformers' Donut processor reads a list
        self.size = _size_dict(self.size, "size", HEIGHT_WIDTH if preset.page is not None else RESIZE_KEYS)
        if self.crop_size is not None:
            self.crop_size = _size_dict(self.crop_size, "crop_size", HEIGHT_WIDTH)
        if self.pad_size is not None:
            self.pad_size = _size_dict(self.pad_size, "pad_size", HEIGHT_WIDTH)
        for name in ("do_resize", "do_center_crop", "do_rescale", "do_normalize", "do_pad", *PAGE_STEPS):
            value = getattr(self, name)
            if value is not None and not isinstance(value, bool):
                raise ModelError(f"{name} must be true or false, got {value!r}")
        if self.do_center_crop and self.crop_size is None:
            raise ModelError("do_center_crop is set but crop_size is missing")
        if self.do_pad and preset.pad == "after" and self.pad_size is None:
            raise ModelError("do_pad is set but pad_size is missing")
        if isinstance(self.resample, bool) or self.resample not in RESAMPLE_NAMES:
            raise ModelError(f"resample must be a PIL resampling code 0..5, got {self.resample!r}")
        if not isinstance(self.rescale_factor, (int, float)) or isinstance(self.rescale_factor, bool):
            raise ModelError(f"rescale_factor must be a number, got {self.rescale_factor!r}")
        self.rescale_factor = float(self.rescale_factor)
        self.image_mean = _per_channel(self.image_mean, "image_mean")
        self.image_std = _per_channel(self.image_std, "image_std")
        if self.do_normalize and 0.0 in self.image_std:
            raise ModelError(f"image_std must not contain 0, got {self.image_std}")

    def _fill_defaults(self, preset: _Preset) -> None:
        """None fields take the family's defaults; a page switch the family does not have is an error."""
        for name in ("size", "resample", "do_center_crop", "crop_size", "image_mean", "image_std", "do_pad"):
            if getattr(self, name) is None:
                default = getattr(preset, name)
                setattr(self, name, list(default) if isinstance(default, tuple) else _copy(default))
        page = preset.page or {}
        for name in PAGE_STEPS:
            if name in page:
                if getattr(self, name) is None:
                    setattr(self, name, page[name])
            elif getattr(self, name) is not None:
                raise ModelError(f"{name} is not an option of {self.processor_type}")

    @property
    def is_page(self) -> bool:
        """Whether this is a document family (Donut, Nougat): fit the page into `size`, pad around it."""
        return PRESETS[self.processor_type].page is not None

    @classmethod
    def from_dict(cls, d: dict, image_size: int | tuple[int, int] | None = None) -> ImageProcessorConfig:
        """Read any published layout. `image_size` (the encoder's: a side or (height, width)) fills `size`, and
        `crop_size` when cropping, where `d` gives none; an empty `d` (no preprocessor file) means ViT defaults at
        `image_size`. Keys the family does not use are ignored, as transformers ignores them."""
        if not isinstance(d, dict):
            raise ModelError(f"image processor config must be a JSON object, got {type(d).__name__}")
        processor_type = _family(d)
        preset = PRESETS[processor_type]
        square = _value(d, "default_to_square", True)  # an int `size` means a square unless this says otherwise
        encoder_size = _encoder_size(image_size)
        size = d.get("size")
        if isinstance(size, int) and not isinstance(size, bool):
            size = {"height": size, "width": size} if square else {"shortest_edge": size}
        elif size is None:
            size = encoder_size or _copy(preset.size)
        do_center_crop = _flag(d, "do_center_crop", preset.do_center_crop)
        crop_size = d.get("crop_size")
        if crop_size is None:
            crop_size = (do_center_crop and encoder_size) or _copy(preset.crop_size)
        page = {name: _flag(d, name, default) for name, default in (preset.page or {}).items()}
        return cls(
            processor_type=processor_type,
            do_convert_rgb=d.get("do_convert_rgb"),
            do_resize=_flag(d, "do_resize", True),
            size=size,
            resample=_value(d, "resample", preset.resample),
            do_center_crop=do_center_crop,
            crop_size=crop_size,
            do_rescale=_flag(d, "do_rescale", True),
            rescale_factor=_value(d, "rescale_factor", 1 / 255),
            do_normalize=_flag(d, "do_normalize", True),
            image_mean=_value(d, "image_mean", list(preset.image_mean)),
            image_std=_value(d, "image_std", list(preset.image_std)),
            do_pad=_flag(d, "do_pad", preset.do_pad),
            pad_size=d.get("pad_size"),
            **page,
        )

    def to_dict(self) -> dict:
        """The current transformers layout (what `save_pretrained` writes); AutoImageProcessor loads it."""
        d: dict[str, Any] = {"image_processor_type": self.processor_type}
        d.update({k: v for k, v in asdict(self).items() if k != "processor_type" and v is not None})
        return d

    def output_size(self) -> tuple[int, int] | None:
        """(height, width) of every processed image, or None when it depends on the image."""
        preset = PRESETS[self.processor_type]
        if self.do_pad and preset.pad == "after":
            return self.pad_size["height"], self.pad_size["width"]
        if self.do_center_crop and preset.crops:
            return self.crop_size["height"], self.crop_size["width"]
        if self.do_pad and preset.pad == "page":
            return self.size["height"], self.size["width"]
        if self.do_resize and not self.is_page and set(self.size) == {"height", "width"}:
            return self.size["height"], self.size["width"]
        return None


def _encoder_size(image_size: int | tuple[int, int] | None) -> dict[str, int] | None:
    """The encoder's image size as a {"height", "width"} dict."""
    if image_size is None:
        return None
    if isinstance(image_size, int):
        return {"height": image_size, "width": image_size}
    height, width = image_size
    return {"height": height, "width": width}


def _copy(value: Any) -> Any:
    return dict(value) if isinstance(value, dict) else value


def _family(d: dict) -> str:
    """`image_processor_type`, else the old `feature_extractor_type`, as a PRESETS key (no Fast/Pil suffix)."""
    name = d.get("image_processor_type") or d.get("feature_extractor_type") or "ViTImageProcessor"
    if not isinstance(name, str):
        raise ModelError(f"image_processor_type must be a string, got {name!r}")
    name = name.replace("FeatureExtractor", "ImageProcessor")
    for suffix in ("Fast", "Pil"):
        name = name.removesuffix(suffix)
    if name not in PRESETS:
        raise ModelError(f"unsupported image processor {name!r}; ved knows {', '.join(PRESETS)}")
    return name


def _value(d: dict, key: str, default: Any) -> Any:
    """`d[key]`, or `default` when missing or null (transformers treats null as "use the class default")."""
    value = d.get(key)
    return default if value is None else value


def _flag(d: dict, key: str, default: bool) -> bool:
    value = _value(d, key, default)
    if not isinstance(value, bool):
        raise ModelError(f"{key} must be true or false, got {value!r}")
    return value


def _size_dict(size: Any, name: str, allowed: tuple[set[str], ...]) -> dict[str, int]:
    """Normalise an int / [height, width] / dict size and check its keys and values."""
    if isinstance(size, int) and not isinstance(size, bool):
        size = {"height": size, "width": size}
    elif isinstance(size, (list, tuple)) and len(size) == 2:
        size = {"height": size[0], "width": size[1]}
    if not isinstance(size, dict) or set(size) not in allowed:
        keys = " or ".join("{" + ", ".join(sorted(k)) + "}" for k in allowed)
        raise ModelError(f"{name} must be an int or a dict with keys {keys}, got {size!r}")
    for key, value in size.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ModelError(f"{name}[{key!r}] must be a positive integer, got {value!r}")
    height = size.get("height") or size.get("max_height") or size["shortest_edge"]
    check_image_size(height, size.get("width") or size.get("max_width") or size.get("longest_edge") or height, name)
    return dict(size)


def _per_channel(value: Any, name: str) -> list[float]:
    """A number or three numbers -> a list of three floats."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return [float(value)] * 3
    if (
        isinstance(value, (list, tuple))
        and len(value) == 3
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
    ):
        return [float(v) for v in value]
    raise ModelError(f"{name} must be a number or a list of 3 numbers, got {value!r}")


# --- the steps -------------------------------------------------------------------------------------------------


def to_rgb(image: Image.Image) -> Image.Image:
    """Any mode -> RGB, as transformers' `convert_to_rgb` does: alpha (or a palette transparency) over white."""
    if image.mode == "RGB" and image.info.get("transparency") is None:
        return image
    try:
        if "A" in image.getbands() or image.info.get("transparency") is not None:
            rgba = image.convert("RGBA")
            white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            return Image.alpha_composite(white, rgba).convert("RGB")
        return image.convert("RGB")
    except (ValueError, OSError) as e:
        raise InputError(f"cannot convert a {image.mode} image to RGB: {e}", where=_name(image)) from e


def resized_size(height: int, width: int, size: dict[str, int]) -> tuple[int, int]:
    """(height, width) after resizing an image of `height` x `width` to `size` (transformers' rules)."""
    if "height" in size:
        return size["height"], size["width"]
    if "max_height" in size:
        scale = min(size["max_height"] / height, size["max_width"] / width)
        return max(1, int(height * scale)), max(1, int(width * scale))
    short, long = min(height, width), max(height, width)
    new_short = size["shortest_edge"]
    if "longest_edge" in size:  # shrink the short edge so the long one fits, then keep the aspect ratio
        raw = None
        if long / short * new_short > size["longest_edge"]:
            raw = size["longest_edge"] * short / long
            new_short = int(round(raw))
        if short == new_short:
            return height, width
        new_long = int((raw if raw is not None else new_short) * long / short)
    else:
        new_long = int(new_short * long / short)
    new_long = max(1, new_long)
    return (new_long, new_short) if width <= height else (new_short, new_long)


def center_crop(pixels: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Middle `height` x `width` of (C, H, W); an edge shorter than the crop is zero-padded, extra pad before."""
    _, h, w = pixels.shape
    out = pixels.new_zeros((pixels.shape[0], height, width))
    top, left = (h - height) // 2, (w - width) // 2  # negative: the image is smaller along that edge
    src_top, src_left = max(top, 0), max(left, 0)
    dst_top, dst_left = max(-top, 0), max(-left, 0)
    rows, cols = min(h, height), min(w, width)
    out[:, dst_top : dst_top + rows, dst_left : dst_left + cols] = pixels[
        :, src_top : src_top + rows, src_left : src_left + cols
    ]
    return out


def crop_margin(image: Image.Image, threshold: int = 200) -> Image.Image:
    """The smallest box holding every dark pixel, as Nougat finds it: gray levels stretched to 0..255, then darker
    than `threshold`. A uniform image is returned as it is."""
    gray = np.asarray(image.convert("L"), dtype=np.uint8)
    low, high = gray.min(), gray.max()
    if low == high:
        return image
    stretched = (gray - low) / (high - low) * 255  # uint8 difference, then float64 (the reference's order)
    rows, cols = np.nonzero(stretched < threshold)
    return image.crop((int(cols.min()), int(rows.min()), int(cols.max()) + 1, int(rows.max()) + 1))


def align_long_axis(image: Image.Image, height: int, width: int) -> Image.Image:
    """Turned 90 degrees clockwise when the image is landscape and `height` x `width` portrait, or the other way."""
    if (width < height and image.width > image.height) or (width > height and image.width < image.height):
        turned = image.transpose(Image.Transpose.ROTATE_270)  # 270 counter-clockwise = 90 clockwise
        _turn_extent(image, turned, Image.Transpose.ROTATE_270)
        return turned
    return image


def thumbnail_size(height: int, width: int, max_height: int, max_width: int) -> tuple[int, int]:
    """(height, width) of the Donut / Nougat thumbnail of a `height` x `width` image (transformers' rule, not PIL's
    `Image.thumbnail`): clip each edge to the target, then shrink the shorter edge by the longer one's ratio."""
    new_height, new_width = min(height, max_height), min(width, max_width)
    if (new_height, new_width) == (height, width):
        return height, width
    if height > width:
        new_width = int(width * new_height / height)
    elif width > height:
        new_height = int(height * new_width / width)
    return new_height, new_width


def pad_centered(pixels: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(C, H, W) zero-padded evenly on all sides to `height` x `width`; the odd pixel goes bottom / right."""
    channels, h, w = pixels.shape
    if h > height or w > width:
        raise InputError(f"image of {h}x{w} is larger than the page size {height}x{width}; it needs do_thumbnail")
    top, left = (height - h) // 2, (width - w) // 2
    out = pixels.new_zeros((channels, height, width))
    out[:, top : top + h, left : left + w] = pixels
    return out


class ImageProcessor:
    """Turns PIL images into the encoder's pixel values, following an ImageProcessorConfig."""

    def __init__(self, config: ImageProcessorConfig | None = None):
        self.config = config or ImageProcessorConfig()

    def __call__(self, images: list[Image.Image]) -> torch.Tensor:
        """PIL images -> (B, 3, H, W) float32. All images must come out the same size (a fixed size, a crop or
        padding)."""
        if isinstance(images, Image.Image):
            images = [images]
        if not images:
            size = self.config.output_size()
            if size is None:
                raise InputError("no images given")
            return torch.empty((0, 3, *size), dtype=torch.float32)
        pixels = [self.process(image) for image in images]
        shapes = {tuple(p.shape) for p in pixels}
        if len(shapes) > 1:
            raise InputError(
                f"images came out in different sizes {sorted(s[1:] for s in shapes)}; "
                "a batch needs a fixed size, a crop or padding"
            )
        return torch.stack(pixels)

    def process(self, image: Image.Image) -> torch.Tensor:
        """One PIL image -> (3, H, W) float32."""
        try:
            return self._process(image)
        except InputError as e:
            if e.where is None and _name(image):
                raise InputError(e.message, where=_name(image)) from e
            raise

    def _process(self, image: Image.Image) -> torch.Tensor:
        c = self.config
        preset = PRESETS[c.processor_type]
        image = to_rgb(image)
        if c.is_page:
            image = self.fit_page(image)
        elif c.do_resize:
            height, width = resized_size(image.height, image.width, c.size)
            image = _resize(image, width, height, c.resample)
        x = torch.from_numpy(_as_array(image)).permute(2, 0, 1)  # (3, H, W) uint8
        if c.do_pad and preset.pad == "page":
            x = pad_centered(x, c.size["height"], c.size["width"])  # black, before rescaling
        if c.do_center_crop and preset.crops:
            x = center_crop(x, c.crop_size["height"], c.crop_size["width"])
        if c.do_rescale:
            x = (x.to(torch.float64) * c.rescale_factor).to(torch.float32)  # float64 first, as transformers does
        if c.do_normalize:
            mean = torch.tensor(c.image_mean, dtype=torch.float32)[:, None, None]
            std = torch.tensor(c.image_std, dtype=torch.float32)[:, None, None]
            x = (x.to(torch.float32) - mean) / std
        x = x.to(torch.float32)
        if c.do_pad and preset.pad == "after":
            x = _pad(x, c.pad_size["height"], c.pad_size["width"])
        return x.contiguous()

    def fit_page(self, image: Image.Image) -> Image.Image:
        """Donut / Nougat: an RGB page cropped to its content, turned, resized and shrunk to fit inside `size`."""
        c = self.config
        preset = PRESETS[c.processor_type]
        height, width = c.size["height"], c.size["width"]
        if c.do_crop_margin:
            image = crop_margin(image)
        if c.do_align_long_axis:
            image = align_long_axis(image, height, width)
        if c.do_resize:
            new_height, new_width = resized_size(image.height, image.width, {"shortest_edge": min(height, width)})
            image = _resize(image, new_width, new_height, c.resample)
        if c.do_thumbnail:
            new_height, new_width = thumbnail_size(image.height, image.width, height, width)
            if min(new_height, new_width) < 1:
                raise InputError(f"a {image.height}x{image.width} image is too thin to fit in {height}x{width}")
            # transformers' Donut passes its resample as `resample or BICUBIC`: nearest (0) becomes bicubic
            resample = preset.thumbnail_resample if preset.thumbnail_resample is not None else c.resample or BICUBIC
            image = image.resize((new_width, new_height), resample=resample, reducing_gap=preset.thumbnail_reducing_gap)
        return image

    def shrink_factors(self, height: int, width: int) -> tuple[int, int]:
        """(along height, along width): whole factors by which an upright `height` x `width` image may be shrunk
        before `process` without changing more than PIL's two-step resize does (module docstring); (1, 1): none."""
        first = self._first_resize(height, width)
        if first is None:
            return 1, 1
        _turned, new_height, new_width = first
        factors = _whole_factor(height, new_height), _whole_factor(width, new_width)
        shrunk = -(-height // factors[0]), -(-width // factors[1])  # PIL's reduce rounds up
        if factors == (1, 1) or self._first_resize(*shrunk) != first:  # the shrunk image must resize the same way
            return 1, 1
        return factors

    def _first_resize(self, height: int, width: int) -> tuple[bool, int, int] | None:
        """(turned, height, width) of the first resize `process` makes of an upright `height` x `width` RGB image,
        in the image's own orientation (turned: Donut's align_long_axis turns it first); None when no resize comes
        first (no do_resize, Nougat's margin crop) or it samples single pixels (nearest)."""
        c = self.config
        if not c.do_resize or c.resample == NEAREST or c.do_crop_margin:
            return None
        if not c.is_page:
            return (False, *resized_size(height, width, c.size))
        page_height, page_width = c.size["height"], c.size["width"]
        turned = bool(c.do_align_long_axis) and (
            (page_width < page_height and width > height) or (page_width > page_height and width < height)
        )
        if turned:
            height, width = width, height
        new_height, new_width = resized_size(height, width, {"shortest_edge": min(page_height, page_width)})
        return (True, new_width, new_height) if turned else (False, new_height, new_width)


def _resize(image: Image.Image, width: int, height: int, resample: int) -> Image.Image:
    """`image.resize((width, height), resample)`, over the exact source extent when open_image shrank the image."""
    extent = image.info.get(EXTENT)
    box = extent[2] if extent and tuple(extent[:2]) == image.size else None
    out = image.resize((width, height), resample=resample, box=box)
    out.info.pop(EXTENT, None)  # the extent was the source's: a later resize reads the whole image
    return out


# transposition -> where each axis of the result comes from: (source axis, reversed) for x, then for y
_AXES = {
    Image.Transpose.FLIP_LEFT_RIGHT: ((0, True), (1, False)),
    Image.Transpose.FLIP_TOP_BOTTOM: ((0, False), (1, True)),
    Image.Transpose.ROTATE_180: ((0, True), (1, True)),
    Image.Transpose.ROTATE_90: ((1, False), (0, True)),  # counter-clockwise
    Image.Transpose.ROTATE_270: ((1, True), (0, False)),  # clockwise
    Image.Transpose.TRANSPOSE: ((1, False), (0, False)),
    Image.Transpose.TRANSVERSE: ((1, True), (0, True)),
}


def _turn_box(
    box: tuple[float, float, float, float], size: tuple[int, int], method: Image.Transpose
) -> tuple[float, float, float, float]:
    """A (left, top, right, bottom) box in an image of `size`, where it lies once the image is transposed."""
    spans = ((box[0], box[2]), (box[1], box[3]))
    out = []
    for axis, flipped in _AXES[method]:
        low, high = spans[axis]
        out.append((size[axis] - high, size[axis] - low) if flipped else (low, high))
    return out[0][0], out[1][0], out[0][1], out[1][1]


def _turn_extent(image: Image.Image, turned: Image.Image, method: Image.Transpose) -> None:
    """Carry a shrunk image's EXTENT over to its transposed copy."""
    extent = image.info.get(EXTENT)
    if extent and tuple(extent[:2]) == image.size:
        turned.info[EXTENT] = (*turned.size, _turn_box(extent[2], image.size, method))


def _as_array(image: Image.Image) -> np.ndarray:
    """RGB PIL image -> writable (H, W, 3) uint8 numpy array."""
    return np.array(image, dtype=np.uint8).reshape(image.height, image.width, 3)


def _pad(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Zero-pad (C, H, W) at the bottom and right to `height` x `width`."""
    _, h, w = x.shape
    if h > height or w > width:
        raise InputError(f"image of {h}x{w} is larger than pad_size {height}x{width}")
    return torch.nn.functional.pad(x, (0, width - w, 0, height - h))


def _name(image: Image.Image) -> str | None:
    return getattr(image, "filename", None) or None


# --- files -----------------------------------------------------------------------------------------------------


def load_image_processor(folder: str | Path, image_size: int | tuple[int, int] | None = None) -> ImageProcessor:
    """The image processor of a model folder: `processor_config.json`'s nested `image_processor` entry, else
    `preprocessor_config.json`, else ViT defaults. `image_size` (the encoder's: a side or (height, width)) fills the
    size a file leaves out."""
    folder = Path(folder)
    nested = folder / NESTED_PROCESSOR_FILE
    if nested.is_file():
        d = read_json(nested)
        if isinstance(d.get("image_processor"), dict):
            return ImageProcessor(_config_from(d["image_processor"], image_size, nested))
    path = folder / PROCESSOR_FILE
    if path.is_file():
        return ImageProcessor(_config_from(read_json(path), image_size, path))
    return ImageProcessor(ImageProcessorConfig.from_dict({}, image_size=image_size))


def _config_from(d: Any, image_size: int | tuple[int, int] | None, path: Path) -> ImageProcessorConfig:
    try:
        return ImageProcessorConfig.from_dict(d, image_size=image_size)
    except ModelError as e:
        raise ModelError(e.message, where=str(path)) from e


class ImageTooLarge(InputError):
    """An image with more pixels than the limit open_image was given."""


def open_image(
    path: str | Path, max_pixels: int | None = MAX_PIXELS, processor: ImageProcessor | None = None
) -> Image.Image:
    """Read an image file, turn it upright (EXIF orientation) and convert it to RGB.

    `max_pixels`: an image with more pixels is refused (ImageTooLarge) from its header, before it is decoded; None:
    no limit. `processor`: the image is for it: decoded and shrunk no larger than it needs (module docstring); the
    result then carries its exact extent for the processor's resize (`EXTENT`) and is meant for that processor only.
    Images of SHRINK_PIXELS or fewer are decoded whole (exactly the reference's values).
    """
    where = str(path)
    path = Path(path)
    try:
        if path.is_dir():
            raise InputError("is a directory, not an image file", where=where)
        if not path.exists():
            raise InputError("no such image file", where=where)
    except (OSError, ValueError) as e:  # a name too long for the file system, a NUL byte in it, ...
        reason = e.strerror.lower() if isinstance(e, OSError) and e.strerror else "not a valid file name"
        raise InputError(f"cannot open image file: {reason}", where=where) from None
    try:
        if path.stat().st_size == 0:
            raise InputError("image file is empty", where=where)
        with Image.open(path) as image:
            _check_pixels(image.size, max_pixels, where)
            return _decode(image, processor)
    except InputError as e:
        raise type(e)(e.message, where=where) from e
    except PermissionError as e:
        raise InputError("cannot read image file: permission denied", where=where) from e
    except Image.UnidentifiedImageError as e:
        raise InputError("not an image file (unknown format)", where=where) from e
    except Image.DecompressionBombError as e:  # PIL's own limit, where the caller left it on (the CLI turns it off)
        raise ImageTooLarge(f"image is too large: {e}", where=where) from e
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        reason = str(e) or type(e).__name__
        raise InputError(f"cannot decode image (truncated or corrupt?): {reason}", where=where) from e


def decoding_bytes(path: str | Path, max_pixels: int | None = None) -> int:
    """About how much memory decoding `path` takes at most (its pixels as PIL holds them, plus the RGB copy), read
    from its header; 0 when the file cannot be opened or has more than `max_pixels` pixels (open_image then says
    why, without decoding it)."""
    try:
        with Image.open(path) as image:
            pixels = image.width * image.height
            mode = image.mode
    except Exception:  # noqa: BLE001 - any unreadable file: open_image reports it
        return 0
    if max_pixels is not None and pixels > max_pixels:
        return 0
    held = 1 if mode in ("1", "L", "P") else 2 if mode.startswith("I;16") else 4  # bytes a pixel, as PIL stores it
    return pixels * (held + (0 if mode == "RGB" else 12))  # to_rgb: RGBA, white, composite (4 bytes a pixel each)


def _check_pixels(size: tuple[int, int], max_pixels: int | None, where: str) -> None:
    width, height = size
    if max_pixels is not None and width * height > max_pixels:
        raise ImageTooLarge(
            f"image of {width}x{height} pixels ({width * height / 1e6:.0f} megapixels) is over the "
            f"limit of {max_pixels / 1e6:g} megapixels",
            where=where,
        )


# EXIF orientation -> the transposition that turns the stored image upright (as ImageOps.exif_transpose)
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_SWAPS_AXES = {
    Image.Transpose.TRANSPOSE,
    Image.Transpose.ROTATE_270,
    Image.Transpose.TRANSVERSE,
    Image.Transpose.ROTATE_90,
}


def _decode(image: Image.Image, processor: ImageProcessor | None) -> Image.Image:
    """An opened image file, decoded (JPEG: at a smaller scale when the processor allows), RGB, shrunk as the
    processor allows, upright."""
    if image.format != "JPEG":
        image.load()  # a PNG's EXIF block may follow its pixels: reading the orientation would decode them anyway
    turn = _orientation(image)
    swaps = turn in _SWAPS_AXES
    width, height = image.size
    upright = (width, height) if swaps else (height, width)  # (height, width) once turned
    shrinks = processor is not None and width * height > SHRINK_PIXELS
    factor_h, factor_w = processor.shrink_factors(*upright) if shrinks else (1, 1)
    factor_x, factor_y = (factor_h, factor_w) if swaps else (factor_w, factor_h)  # along the stored x and y
    extent = (float(width), float(height))  # the source's size in the decoded image's pixels
    if (factor_x, factor_y) != (1, 1) and image.format == "JPEG":
        scale = _jpeg_scale(width, height, min(factor_x, factor_y), swaps, processor)
        if scale > 1:
            drafted = image.draft(None, (-(-width // scale), -(-height // scale)))
            if drafted is not None:
                extent = tuple(float(v) for v in drafted[1][2:])
                # what is left to shrink, for the drafted size
                factor_h, factor_w = processor.shrink_factors(
                    *((image.width, image.height) if swaps else (image.height, image.width))
                )
                factor_x, factor_y = (factor_h, factor_w) if swaps else (factor_w, factor_h)
    image.load()
    rgb = to_rgb(image)
    if (factor_x, factor_y) != (1, 1):
        rgb = rgb.reduce((factor_x, factor_y))  # a partial block at the right / bottom end
        extent = (extent[0] / factor_x, extent[1] / factor_y)
    if extent != tuple(float(v) for v in rgb.size):
        rgb.info[EXTENT] = (*rgb.size, (0.0, 0.0, *extent))
    if turn is not None:
        turned = rgb.transpose(turn)
        _turn_extent(rgb, turned, turn)  # a flipped axis has its partial block first: the box says so
        rgb = turned
    return rgb


def _whole_factor(length: int, target: int) -> int:
    """The whole factor to shrink an edge of `length` pixels by, for a resize to `target`: at most length / target /
    REDUCING_GAP; the largest from half that up that divides `length` (then no partial block is left at the end,
    whose last row or column PIL's two-step resize weighs a little wrongly), else that most; 1: none."""
    most = int(length / target / REDUCING_GAP)
    for factor in range(most, max(2, -(-most // 2)) - 1, -1):
        if length % factor == 0:
            return factor
    return max(most, 1)


def _jpeg_scale(width: int, height: int, most: int, swaps: bool, processor: ImageProcessor) -> int:
    """The JPEG decoding scale (8, 4, 2) of at most `most` whose image still resizes the same way: the largest that
    divides both edges, else the largest; 1: none."""
    first = processor._first_resize(*((width, height) if swaps else (height, width)))
    usable = []
    for scale in (8, 4, 2):
        if scale <= most:
            drafted = -(-width // scale), -(-height // scale)
            if processor._first_resize(*(drafted if swaps else drafted[::-1])) == first:
                usable.append(scale)
    exact = [scale for scale in usable if width % scale == 0 and height % scale == 0]
    return (exact or usable or [1])[0]


def _orientation(image: Image.Image) -> Image.Transpose | None:
    """The transposition its EXIF orientation asks for; None for none, or an unreadable EXIF block (a damaged EXIF
    must not cost the user an otherwise good photo)."""
    try:
        return _UPRIGHT.get(image.getexif().get(0x0112))
    except Exception:  # noqa: BLE001
        return None


__all__ = [
    "MAX_PIXELS",
    "ImageProcessor",
    "ImageProcessorConfig",
    "ImageTooLarge",
    "align_long_axis",
    "center_crop",
    "crop_margin",
    "decoding_bytes",
    "load_image_processor",
    "open_image",
    "pad_centered",
    "resized_size",
    "thumbnail_size",
    "to_rgb",
]
