"""Models shipped inside the package, by short name: `printed` reads single lines of printed text.

A built-in name resolves to a folder under `vedcli/models/` with no network call, so `ved ocr line.png` reads
offline on a fresh machine. The folder is a plain VisionEncoderDecoder checkpoint (config.json, model.safetensors,
generation_config.json, preprocessor_config.json, tokenizer files), so a built-in model is also usable wherever a
folder is: `ved info printed`, `ved convert printed`, `ved compose printed ...`, `ved train --model printed`.

Names: a model argument that is exactly a built-in name (no path separator) is the built-in model, even when the
current folder holds a folder of that name; write `./printed` for that folder. Hub ids always hold a "/", so they
never collide with a built-in name.

A broken install (a missing or damaged file) is found here, before any tensor is read: one ModelError naming the
built-in model and the file.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

from ..errors import ModelError, option
from .files import read_json

# name -> what it is; each is a folder of the same name under ROOT
BUILTIN_MODELS = {"printed": "a reader of single lines of printed text"}
ROOT = Path(__file__).resolve().parents[1] / "models"  # vedcli/models/; tests point this at a tiny stand-in

REQUIRED_FILES = ("config.json", "generation_config.json", "preprocessor_config.json", "model.safetensors")
# at least one of these (what processing/tokenizer.py reads: fast tokenizer, BPE, WordPiece or SentencePiece files)
TOKENIZER_FILES = ("tokenizer.json", "vocab.json", "vocab.txt", "sentencepiece.bpe.model", "spiece.model")
HEADER_LIMIT = 100_000_000  # bytes: a larger safetensors header length means a damaged file


def is_builtin(name: str) -> bool:
    """True when `name` names a built-in model (exactly; "./printed" is a path)."""
    return name in BUILTIN_MODELS


def builtin_folder(name: str) -> Path:
    """The folder of built-in model `name`, checked to be complete; ModelError naming the model and file if not."""
    folder = ROOT / name
    if not folder.is_dir():
        raise ModelError(
            f"the built-in model '{name}' is not installed in this copy of ved: reinstall ved, or name another "
            f"model, e.g. {option('model')} microsoft/trocr-base-printed or {option('model')} path/to/folder",
            where=str(folder),
        )
    for file in REQUIRED_FILES:
        _check_file(name, folder / file)
    tokenizer = [folder / f for f in TOKENIZER_FILES if (folder / f).is_file()]
    if not tokenizer:
        raise _damaged(name, f"no tokenizer file (one of {', '.join(TOKENIZER_FILES)})", folder)
    for path in [folder / f for f in REQUIRED_FILES] + tokenizer:
        if path.suffix == ".json":
            _check_json(name, path)
    _check_safetensors(name, folder / "model.safetensors")
    return folder


def _damaged(name: str, what: str, path: Path) -> ModelError:
    return ModelError(f"the built-in model '{name}' is damaged: {what}; reinstall ved", where=str(path))


def _check_file(name: str, path: Path) -> None:
    if not path.is_file():
        raise _damaged(name, f"{path.name} is missing", path)
    try:
        with path.open("rb") as f:
            f.read(1)
    except OSError as error:
        raise _damaged(name, f"{path.name} cannot be read ({error.strerror or error})", path) from None


def _check_json(name: str, path: Path) -> None:
    """The file holds a JSON object (files.read_json's check), reported as damage to the built-in model."""
    try:
        read_json(path)
    except ModelError as error:
        raise _damaged(name, f"{path.name}: {error.message}", path) from None


def _check_safetensors(name: str, path: Path) -> None:
    """The header parses and the tensors it lists end exactly where the file ends (a truncated copy fails)."""
    size = path.stat().st_size
    try:
        with path.open("rb") as f:
            head = f.read(8)
            length = struct.unpack("<Q", head)[0] if len(head) == 8 else -1
            if not 2 <= length <= min(HEADER_LIMIT, size - 8):
                raise _damaged(name, f"{path.name} is not a safetensors file", path)
            header = json.loads(f.read(length))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        raise _damaged(name, f"{path.name} has an unreadable header", path) from None
    if not isinstance(header, dict):
        raise _damaged(name, f"{path.name} has an unreadable header", path)
    ends = []
    for key, entry in header.items():
        if key == "__metadata__":
            continue
        offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(o, int) for o in offsets)):
            raise _damaged(name, f"{path.name} has an unreadable header (tensor {key})", path)
        ends.append(offsets[1])
    if not ends:
        raise _damaged(name, f"{path.name} holds no tensors", path)
    if 8 + length + max(ends) != size:
        raise _damaged(name, f"{path.name} is {size} bytes, its header says {8 + length + max(ends)}", path)


__all__ = ["BUILTIN_MODELS", "builtin_folder", "is_builtin"]
