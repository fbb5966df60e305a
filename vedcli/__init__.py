"""ved: image captioning and OCR with vision encoder-decoder models, in plain PyTorch.

The Python API:
    model = vedcli.load_model("nlpconnect/vit-gpt2-image-captioning")      # a torch module
    processor = vedcli.load_image_processor(folder); tokenizer = vedcli.load_tokenizer(folder)
    ids = model.generate(processor([image]), num_beams=4)
    vedcli.Pipeline.load(name).run([image], vedcli.DecodingOptions(num_beams=4))

Names are imported on first use, so that `import vedcli` (and `ved --help`) does not wait for torch.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

from .errors import InputError, ModelError, OptionError, VedError

# public name -> the module that holds it
_LAZY = {
    "DecodingOptions": "generation.options",
    "Hypothesis": "generation.pipeline",
    "Pipeline": "generation.pipeline",
    "VisionEncoderDecoder": "model",
    "load_model": "checkpoints.load",
    "open_image": "processing.image",
}

if TYPE_CHECKING:
    from .checkpoints.load import load_model
    from .generation.options import DecodingOptions
    from .generation.pipeline import Hypothesis, Pipeline
    from .model import VisionEncoderDecoder
    from .processing.image import open_image


def __getattr__(name: str):
    if name == "__version__":  # looked up on first use: importlib.metadata takes a while to import
        from importlib.metadata import PackageNotFoundError, version

        try:
            value = version("vedcli")
        except PackageNotFoundError:  # running from a source tree
            value = "0.0.0"
        globals()[name] = value
        return value
    if name in _LAZY:
        value = getattr(import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'vedcli' has no attribute {name!r}")


def load_image_processor(name_or_path: str, revision: str | None = None, image_size: int | None = None):
    """The image processor of a folder or hub id."""
    from .checkpoints.hub import resolve_model
    from .processing.image import load_image_processor as load

    return load(resolve_model(str(name_or_path), revision), image_size=image_size)


def load_tokenizer(name_or_path: str, revision: str | None = None):
    """The tokenizer of a folder or hub id."""
    from .checkpoints.hub import resolve_model
    from .processing.tokenizer import load_tokenizer as load

    return load(resolve_model(str(name_or_path), revision))


__all__ = [
    "DecodingOptions",
    "Hypothesis",
    "InputError",
    "ModelError",
    "OptionError",
    "Pipeline",
    "VedError",
    "VisionEncoderDecoder",
    "load_image_processor",
    "load_model",
    "load_tokenizer",
    "open_image",
    "__version__",
]
