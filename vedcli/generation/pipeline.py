"""Images in, text out: a model, its tokenizer and its image processor, loaded once and run on batches.

Importing this module does not import torch: `Pipeline.load` finds the model folder first (a missing model is reported
at once), then imports torch and loads it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..checkpoints.hub import resolve_model

if TYPE_CHECKING:
    import torch
    from PIL import Image

    from ..model import VisionEncoderDecoder
    from ..processing.image import ImageProcessor
    from ..processing.tokenizer import Tokenizer
    from .decoding import DecodingOptions, ResolvedOptions


@dataclass
class Hypothesis:
    text: str
    score: float  # sequence log-probability (length-penalised for beams, as the reference reports it)
    tokens: list[int]  # the generated ids, without the start token, the end-of-sequence token and padding


class Pipeline:
    def __init__(self, model: VisionEncoderDecoder, tokenizer: Tokenizer, processor: ImageProcessor):
        self.model = model
        self.tokenizer = tokenizer
        self.processor = processor

    @classmethod
    def load(
        cls,
        model: str | Path,
        revision: str | None = None,
        device: str = "auto",
        dtype: str | None = None,
        quantize: str | None = None,
    ) -> Pipeline:
        folder = resolve_model(str(model), revision)
        from ..checkpoints.load import load_model
        from ..processing.image import load_image_processor
        from ..processing.tokenizer import load_tokenizer

        net = load_model(folder, device=device, dtype=dtype, quantize=quantize)
        processor = load_image_processor(folder, image_size=net.config.encoder.image_size)
        return cls(net, load_tokenizer(folder), processor)

    def resolve(self, options: DecodingOptions) -> ResolvedOptions:
        """Options merged with the checkpoint's defaults and validated (OptionError names the option)."""
        return options.resolve(self.model.generation_config)

    def run(self, images: list[Image.Image] | list[torch.Tensor], options: DecodingOptions) -> list[list[Hypothesis]]:
        """One list of `num_return_sequences` hypotheses per image, best first. `images`: PIL images, or their pixel
        values as `self.processor.process` makes them (prepared ahead, e.g. by the threads that decode them)."""
        import torch

        from .decoding import generate
        from .defaults import SpecialTokens

        resolved = self.resolve(options)
        pixels = _on_device(images, self.processor, self.model.device)
        with torch.inference_mode():
            out = generate(self.model, pixels, resolved, self.model.generation_config)
        texts = self.tokenizer.batch_decode(out.sequences)
        per_image = len(texts) // len(images)
        eos = set(SpecialTokens.from_config(self.model.generation_config).eos)
        hyps = [
            Hypothesis(text.strip(), float(score), _content(seq.tolist(), eos))
            for text, score, seq in zip(texts, out.scores, out.sequences, strict=True)
        ]
        return [hyps[i * per_image : (i + 1) * per_image] for i in range(len(images))]


def _on_device(images: list, processor: ImageProcessor, device: torch.device) -> torch.Tensor:
    """The batch's pixel values (B, 3, H, W), on `device`. For a GPU they are put together in pinned (page-locked)
    memory and copied without blocking, so the copy overlaps the work queued before it."""
    import torch

    if not images or not isinstance(images[0], torch.Tensor):
        pixels = processor(images)
        return pixels.pin_memory().to(device, non_blocking=True) if device.type == "cuda" else pixels
    if device.type != "cuda":
        return torch.stack(images)
    pinned = torch.empty((len(images), *images[0].shape), dtype=images[0].dtype, pin_memory=True)
    torch.stack(images, out=pinned)
    return pinned.to(device, non_blocking=True)


def _content(sequence: list[int], eos: set[int]) -> list[int]:
    """The ids after the start token and before the first end-of-sequence token (padding follows that)."""
    tokens = sequence[1:]
    for i, token in enumerate(tokens):
        if token in eos:
            return tokens[:i]
    return tokens
