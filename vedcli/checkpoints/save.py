"""Writing checkpoints in Hugging Face layout, atomically: what `ved convert`, `ved compose` and `ved train` produce.

A written folder holds config.json, model.safetensors (or shards plus model.safetensors.index.json),
generation_config.json, the tokenizer (tokenizer.json and its configs) and preprocessor_config.json: ved and
transformers both load it as it stands. Folders appear whole or not at all (`atomic_folder`).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import Tensor

from ..errors import OptionError, option
from ..generation.defaults import GenerationConfig, SpecialTokens
from ..processing.image import ImageProcessor
from ..processing.tokenizer import Tokenizer
from .dtypes import CONFIG_NAMES
from .init import init_tensor
from .safety import check_replaceable, follow_umask, write_marker

UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30}


@contextlib.contextmanager
def atomic_folder(target: str | Path, force: bool = False, kind: str = "model") -> Iterator[Path]:
    """Yield an empty folder beside `target`, marked as ved's (`kind`: model or run); on success it replaces
    `target` in one rename, on failure (or Ctrl-C) it is removed and `target` is untouched.

    An existing `target` is replaced only when that loses nothing of the user's: an empty folder, or, with `force`,
    a folder ved wrote that holds only what ved writes (safety.check_replaceable); anything else is an OptionError
    naming it, checked on entry and again just before the swap. What is written gets the umask's permissions."""
    check_replaceable(target, force)
    place = Path(os.path.abspath(target))  # "out/", "./out" and the like get a name to rename
    place.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{place.name}.", suffix=".partial", dir=place.parent))
    try:
        write_marker(tmp, kind)
        yield tmp
        follow_umask(tmp)  # mkdtemp makes the folder private and safetensors its files: make them ordinary
        check_replaceable(target, force)  # again: something of the user's may have appeared meanwhile
        if os.path.lexists(place):
            old = place.with_name(f".{place.name}.old-{os.getpid()}")
            place.rename(old)
            tmp.rename(place)
            shutil.rmtree(old)  # a folder ved wrote, or an empty one
        else:
            tmp.rename(place)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def parse_size(text: str | int | None, where: str = option("max_shard_size")) -> int | None:
    """'500MB', '2GB', '1.5GiB' or a byte count -> bytes; None stays None."""
    if text is None or isinstance(text, int):
        return text
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([KMG]I?B|B)?\s*", str(text).upper())
    if not match or float(match.group(1)) <= 0:
        raise OptionError(f"cannot read size '{text}' (use e.g. 500MB or 2GB)", where)
    return int(float(match.group(1)) * UNITS[match.group(2) or ""])


def write_weights(folder: Path, state: dict[str, Tensor], max_shard_size: int | None = None) -> list[str]:
    """model.safetensors, or `model-0000i-of-0000n.safetensors` shards and their index. Returns the file names."""
    state = {k: v.detach().contiguous().cpu() for k, v in state.items()}
    total = sum(t.numel() * t.element_size() for t in state.values())
    if max_shard_size is None or total <= max_shard_size:
        save_file(state, folder / "model.safetensors", metadata={"format": "pt"})
        follow_umask(folder / "model.safetensors")  # safetensors creates files readable by their owner only
        return ["model.safetensors"]
    shards: list[dict[str, Tensor]] = [{}]
    size = 0
    for name, tensor in state.items():  # in order; a tensor larger than the limit gets a shard of its own
        nbytes = tensor.numel() * tensor.element_size()
        if shards[-1] and size + nbytes > max_shard_size:
            shards.append({})
            size = 0
        shards[-1][name] = tensor
        size += nbytes
    names, weight_map = [], {}
    for i, shard in enumerate(shards, start=1):
        name = f"model-{i:05d}-of-{len(shards):05d}.safetensors"
        save_file(shard, folder / name, metadata={"format": "pt"})
        follow_umask(folder / name)
        names.append(name)
        weight_map.update({k: name for k in shard})
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")
    return names + ["model.safetensors.index.json"]


def save_pretrained(
    model,
    folder: str | Path,
    *,
    tokenizer: Tokenizer | None = None,
    processor: ImageProcessor | None = None,
    generation: GenerationConfig | None = None,
    extra: dict[str, Tensor] | None = None,
    dtype: torch.dtype | None = None,
    max_shard_size: int | None = None,
) -> list[str]:
    """Write `model` (a VisionEncoderDecoder) and its companions into an existing folder; returns the file names.

    `extra` holds tensors the reference's model has but ved does not use (an encoder's pooler, say), so that
    transformers finds every key it expects.
    """
    folder = Path(folder)
    dtype = dtype or model.dtype
    state = {**model.hf_state_dict(), **(extra or {})}
    state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
    files = write_weights(folder, state, max_shard_size)
    config = dict(model.config.hf)
    config.pop("torch_dtype", None)
    config["dtype"] = CONFIG_NAMES[dtype]
    (folder / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    files.append("config.json")
    if generation is not None:
        generation.save(folder)
        files.append("generation_config.json")
    if tokenizer is not None:
        tokenizer.save(folder)
        files += ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"]
    if processor is not None:
        text = json.dumps(processor.config.to_dict(), indent=2) + "\n"
        (folder / "preprocessor_config.json").write_text(text)
        files.append("preprocessor_config.json")
    return files


def resolved_generation(gen: GenerationConfig) -> GenerationConfig:
    """The checkpoint's decoding settings with the special ids filled in as decoding resolves them."""
    special = SpecialTokens.from_config(gen)
    values = gen.to_dict()
    values["decoder_start_token_id"] = special.start
    values["pad_token_id"] = special.pad
    if gen.eos_token_id is None and special.eos:
        values["eos_token_id"] = list(special.eos) if len(special.eos) > 1 else special.eos[0]
    return GenerationConfig.from_dict(values)


def reference_only_tensors(model, state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Tensors transformers expects and ved does not use: the source's own, else made as the reference makes them."""
    out = {}
    generator = torch.Generator().manual_seed(0)
    for name, shape in model.reference_only().items():
        if name in state and tuple(state[name].shape) == shape:
            out[name] = state[name]
        else:
            side, _, inner = name.partition(".")
            out[name] = init_tensor(inner, shape, getattr(model.config, side).hf, generator)
    return out
