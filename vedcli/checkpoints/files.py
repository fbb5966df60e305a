"""Reading checkpoint files: JSON configs and weights (safetensors, or .bin through torch's safe unpickler).

Every failure is a ModelError naming the file, so the CLI can say which file of the checkpoint is bad. `read_json`
is ved's one reader of JSON files (configs, generation and processor configs, tokenizer files); torch is imported
only by the weight readers, so reading JSON does not wait for it.
"""

from __future__ import annotations

import json
import pickle
import re
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from safetensors import SafetensorError

from ..errors import ModelError

if TYPE_CHECKING:
    import torch

SAFETENSORS = "model.safetensors"
SAFETENSORS_INDEX = "model.safetensors.index.json"
PICKLE = "pytorch_model.bin"
PICKLE_INDEX = "pytorch_model.bin.index.json"


def read_json(path: str | Path) -> dict[str, Any]:
    """The JSON object in `path`; ModelError naming the file if it is missing, cannot be read, is not JSON or holds
    something else than an object."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError("missing file", where=str(path)) from None
    except (OSError, UnicodeDecodeError) as error:
        raise ModelError(f"cannot read file: {error}", where=str(path)) from None
    except json.JSONDecodeError as error:
        raise ModelError(f"invalid JSON: {error}", where=str(path)) from None
    if not isinstance(data, dict):
        raise ModelError("expected a JSON object", where=str(path))
    return data


def load_state_dict(folder: str | Path) -> dict[str, torch.Tensor]:
    """All weight tensors of the checkpoint in `folder`, on the CPU.

    Looks for, in order: model.safetensors, model.safetensors.index.json (+ shards), pytorch_model.bin,
    pytorch_model.bin.index.json (+ shards). Safetensors wins when both formats are there.
    """
    folder = Path(folder)
    if (folder / SAFETENSORS).is_file():
        return _load_safetensors(folder / SAFETENSORS)
    if (folder / SAFETENSORS_INDEX).is_file():
        return _load_sharded(folder / SAFETENSORS_INDEX, _load_safetensors)
    if (folder / PICKLE).is_file():
        return _load_pickle(folder / PICKLE)
    if (folder / PICKLE_INDEX).is_file():
        return _load_sharded(folder / PICKLE_INDEX, _load_pickle)
    raise ModelError(f"no weights found: expected {SAFETENSORS} or {PICKLE}", where=str(folder))


def load_file(path: Path, device: str = "cpu") -> dict[str, torch.Tensor]:
    """safetensors' reader, imported on first use: it imports torch, which reading JSON files does not need."""
    from safetensors.torch import load_file as read

    return read(path, device=device)


def _load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(path, device="cpu")
    except FileNotFoundError:  # safetensors says so for any file it cannot open: find out why
        raise _unopenable(path) from None
    except PermissionError as error:
        raise _unopenable(path, error) from None
    except (SafetensorError, OSError, ValueError) as error:
        raise ModelError(f"corrupt safetensors file: {_first_line(error)}", where=str(path)) from None


def _unopenable(path: Path, error: OSError | None = None) -> ModelError:
    """The error for a weights file that could not be opened: missing, or there but unreadable."""
    if error is None:
        try:
            with open(path, "rb"):
                pass
        except OSError as found:
            error = found
    if error is None or isinstance(error, FileNotFoundError):
        return ModelError("missing weights file", where=str(path))
    reason = error.strerror.lower() if error.strerror else _first_line(error)
    return ModelError(f"cannot read weights file: {reason}", where=str(path))


def unpickling_refusal(error: pickle.UnpicklingError) -> str:
    """What to tell the user when torch's weights-only unpickler refuses a file: what it wanted to run, without
    torch's advice to turn the safety off (weights_only=False)."""
    blocked = re.search(r"GLOBAL (\S+)", str(error))
    detail = f": it calls {blocked.group(1)}" if blocked else ""
    return f"refusing to unpickle: not a plain tensor file{detail}"


def _load_pickle(path: Path) -> dict[str, torch.Tensor]:
    """A .bin state dict through torch's weights-only unpickler: tensors and plain containers, never code."""
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ModelError("missing weights file", where=str(path)) from None
    except PermissionError as error:
        raise _unopenable(path, error) from None
    except pickle.UnpicklingError as error:
        # torch's weights-only unpickler refused the file: it names code to run, or it is damaged.
        raise ModelError(unpickling_refusal(error), where=str(path)) from None
    except (RuntimeError, OSError, EOFError, ValueError, KeyError) as error:
        raise ModelError(f"corrupt weights file: {_first_line(error)}", where=str(path)) from None
    if not isinstance(state, dict) or not all(
        isinstance(key, str) and isinstance(value, torch.Tensor) for key, value in state.items()
    ):
        raise ModelError("expected a dict of named tensors", where=str(path))
    return state


def _load_sharded(index_path: Path, load_shard) -> dict[str, torch.Tensor]:
    """Load every shard named in the index's weight_map; each tensor must be in the shard the index says."""
    weight_map = read_json(index_path).get("weight_map")
    if not isinstance(weight_map, dict) or not weight_map:
        raise ModelError("index has no weight_map", where=str(index_path))
    for shard in set(weight_map.values()):
        if not inside_folder(shard):
            raise ModelError(f"weight_map names shard {json.dumps(shard)}, which is not a file in the model folder",
                             where=str(index_path))  # fmt: skip
    state: dict[str, torch.Tensor] = {}
    for shard in sorted(set(weight_map.values())):
        shard_path = index_path.parent / shard
        if not shard_path.is_file():
            raise ModelError("missing shard", where=str(shard_path))
        state.update(load_shard(shard_path))
    missing = sorted(set(weight_map) - set(state))
    if missing:
        raise ModelError(
            f"{len(missing)} tensors named in the index are in no shard, e.g. {missing[0]}", where=str(index_path)
        )
    return state


def inside_folder(name: object) -> bool:
    """Whether a file name from an index stays inside the folder holding the index: a relative path without `..`
    (links inside the folder are followed as they are, as hub snapshots link into the cache's blobs)."""
    if not isinstance(name, str) or not name or "\0" in name or "\\" in name:
        return False
    path = PurePosixPath(name)
    return not path.is_absolute() and ".." not in path.parts and not re.match(r"^[A-Za-z]:", name)


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]
