"""`ved convert`: any checkpoint ved can load -> a self-contained folder that ved and transformers load quickly.

The result has safetensors weights (one file or shards), tokenizer.json built from whatever tokenizer files the
source had, preprocessor_config.json in the current layout and generation_config.json with the resolved special
tokens and decoding defaults. It is written atomically and checked before it appears: reloaded, it must give the
source's logits on a probe image within the tolerance of its dtype.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image
from torch import Tensor

from ..checkpoints.dtypes import stored_dtype
from ..checkpoints.files import load_state_dict
from ..checkpoints.hub import resolve_model
from ..checkpoints.load import load_model, resolve_dtype
from ..checkpoints.safety import check_not_inside, check_replaceable
from ..checkpoints.save import atomic_folder, reference_only_tensors, resolved_generation, save_pretrained
from ..errors import ModelError
from ..generation.defaults import SpecialTokens
from ..model import VisionEncoderDecoder
from ..processing.image import ImageProcessor, load_image_processor
from ..processing.tokenizer import load_tokenizer

# Largest logit difference accepted between the written model and the source (with its weights rounded to the
# stored dtype), relative to the largest logit (at least 1): float32 arithmetic noise, nothing more.
TOLERANCE = 1e-5


@dataclass
class Conversion:
    target: Path
    files: list[str]
    dtype: torch.dtype
    bytes: int  # weights on disk
    max_diff: float  # largest logit difference on the probe image between the written model and the source
    rounding: float  # how far rounding the weights to `dtype` moved the source's logits (0 for float32)


def convert(
    source: str,
    target: str | Path,
    revision: str | None = None,
    dtype: str | torch.dtype | None = None,
    max_shard_size: int | None = None,
    force: bool = False,
) -> Conversion:
    check_replaceable(target, force)  # before any download or loading
    folder = resolve_model(source, revision)
    check_not_inside(target, [("the source model", folder)])
    state = load_state_dict(folder)
    model = load_model(folder, device="cpu", state=state)
    out_dtype = resolve_dtype(dtype) if dtype is not None else _stored_dtype(state)
    tokenizer = load_tokenizer(folder)
    processor = load_image_processor(folder, image_size=model.config.encoder.image_size)
    generation = resolved_generation(model.generation_config)
    extra = reference_only_tensors(model, state)
    rounded = None
    if out_dtype != torch.float32:  # the source as the stored dtype can hold it, for the check
        values = {k: v.to(out_dtype).float() if v.is_floating_point() else v for k, v in state.items()}
        rounded = load_model(folder, device="cpu", state=values)
    with atomic_folder(target, force) as tmp:
        files = save_pretrained(
            model,
            tmp,
            tokenizer=tokenizer,
            processor=processor,
            generation=generation,
            extra=extra,
            dtype=out_dtype,
            max_shard_size=max_shard_size,
        )
        diff, rounding = _check(model, rounded, tmp, processor, where=str(target))
        weights = sum((tmp / f).stat().st_size for f in files if f.endswith(".safetensors"))
    return Conversion(Path(target), files, out_dtype, weights, diff, rounding)


def _stored_dtype(state: dict[str, Tensor]) -> torch.dtype:
    """The source's floating dtype when it is one ved writes, else float32."""
    return stored_dtype(state.values())


def probe_image(width: int = 640, height: int = 480) -> Image.Image:
    """A deterministic test picture: colour gradients with dark stripes, so every patch differs."""
    y, x = torch.meshgrid(torch.linspace(0, 1, height), torch.linspace(0, 1, width), indexing="ij")
    stripes = ((x * 23 + y * 7).floor() % 2) * 0.5 + 0.5
    rgb = torch.stack([x * stripes, y * stripes, (1 - x) * (1 - y)], dim=-1)
    return Image.fromarray((rgb * 255).round().to(torch.uint8).numpy(), "RGB")


def _check(
    source: VisionEncoderDecoder,
    rounded: VisionEncoderDecoder | None,
    folder: Path,
    processor: ImageProcessor,
    where: str,
) -> tuple[float, float]:
    """Reload `folder` and compare its logits on the probe image, all in float32, with those of the source whose
    weights were rounded to the stored dtype (`rounded`; None when nothing is rounded): they must agree to float32
    accuracy, so the files hold exactly what was meant. Returns that difference, and how far the rounding moved
    the logits from the source's (0 without rounding)."""
    written = load_model(folder, device="cpu", dtype=torch.float32)
    pixels = processor([probe_image()])
    start = SpecialTokens.from_config(source.generation_config).start
    vocab = source.config.decoder.vocab_size
    ids = torch.tensor([[start] + [(7 * i + 3) % vocab for i in range(7)]])
    with torch.inference_mode():
        original = source(pixel_values=pixels, decoder_input_ids=ids).logits
        expected = rounded(pixel_values=pixels, decoder_input_ids=ids).logits if rounded is not None else original
        got = written(pixel_values=pixels, decoder_input_ids=ids).logits
    diff = (got - expected).abs().max().item()
    tolerance = TOLERANCE * max(1.0, expected.abs().max().item())
    if not diff <= tolerance:  # also catches NaN
        raise ModelError(
            f"the converted model's logits differ from the source's by {diff:.3g} "
            f"(tolerance {tolerance:.3g}); nothing was written",
            where,
        )
    return diff, (expected - original).abs().max().item()


def report(done: Conversion) -> str:
    """What `ved convert` prints: the files written, and how close the reloaded model is to the source."""
    weights = [f for f in done.files if f.endswith(".safetensors")]
    wrote = (
        f"wrote {done.target}: {len(weights)} weight file{'s' * (len(weights) > 1)} "
        f"({done.bytes / 1e6:.1f} MB, {str(done.dtype).removeprefix('torch.')}), "
        + ", ".join(f for f in done.files if not f.endswith(".safetensors"))
    )
    check = f"checked: reloaded, it gives the source's logits on a probe image (largest difference {done.max_diff:.2g}"
    rounding = f"; storing {str(done.dtype)[6:]} moves them by up to {done.rounding:.2g})" if done.rounding else ")"
    return wrote + "\n" + check + rounding
