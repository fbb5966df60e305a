"""Model name or path -> local folder.

A built-in name (`printed`) is the folder shipped inside the package (checkpoints/builtin.py). A local folder is
used as it is. Anything else is a Hugging Face Hub model id: it goes through huggingface_hub's
cache (HF_HOME / HF_HUB_CACHE), honours `revision` (branch, tag or commit) and HF_HUB_OFFLINE, and downloads only
the files ved reads: configs, tokenizer files and ONE weight format (safetensors when the repo has it, else .bin).
When the hub cannot be reached, a cached snapshot for the revision is used if there is one.
"""

from __future__ import annotations

import re
from pathlib import Path

import httpx2
from huggingface_hub import HfApi, constants, get_cached_repo_tree, snapshot_download
from huggingface_hub.errors import (
    CachedRepoTreeNotFoundError,
    GatedRepoError,
    HfHubHTTPError,
    HFValidationError,
    IncompleteSnapshotError,
    LocalEntryNotFoundError,
    OfflineModeIsEnabled,
    RepositoryNotFoundError,
    RevisionNotFoundError,
    RevisionResolutionError,
)
from huggingface_hub.utils import validate_repo_id

from ..errors import ModelError, OptionError, option
from .builtin import builtin_folder, is_builtin

CONFIG_FILES = ("config.json", "generation_config.json", "preprocessor_config.json")
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "merges.txt",
    "vocab.txt",
    "sentencepiece.bpe.model",
)
# One weight format, in order of preference: (single file, index of a sharded checkpoint, shard name pattern).
WEIGHT_FORMATS = (
    ("model.safetensors", "model.safetensors.index.json", re.compile(r"model-\d+-of-\d+\.safetensors")),
    ("pytorch_model.bin", "pytorch_model.bin.index.json", re.compile(r"pytorch_model-\d+-of-\d+\.bin")),
)


def resolve_model(name_or_path: str, revision: str | None = None, *, cache_dir: str | Path | None = None) -> Path:
    """Return a local folder holding the model `name_or_path` (a built-in name, a folder, or a hub id at `revision`).

    A built-in name (`printed`: builtin.py) wins over a folder of that name in the current folder; `./printed`
    names the folder. Built-in models never touch the network."""
    if is_builtin(name_or_path):
        if revision is not None:
            raise OptionError(
                f"{option('revision')} only applies to hub models, not to the built-in model '{name_or_path}'",
                where=option("revision"),
            )
        return builtin_folder(name_or_path)
    folder = Path(name_or_path).expanduser()
    if folder.is_dir():
        if revision is not None:
            raise OptionError(
                f"{option('revision')} only applies to hub models, not to a local folder", where=option("revision")
            )
        return folder
    if folder.exists():
        raise ModelError("a model is a folder or a hub id, not a file", where=name_or_path)
    try:
        validate_repo_id(name_or_path)
    except HFValidationError:
        raise ModelError("no such folder or hub model", where=name_or_path) from None
    cache = str(cache_dir) if cache_dir is not None else None
    return Path(_from_hub(name_or_path, revision, cache))


def needed_files(repo_files: list[str]) -> list[str]:
    """The files of a repo listing that ved reads: configs, tokenizer files and one weight format.

    Raises ModelError when the repo has no PyTorch weights (only tf / flax / onnx files, say).
    """
    top = [name for name in repo_files if "/" not in name]
    wanted = [name for name in top if name in CONFIG_FILES or name in TOKENIZER_FILES or name.endswith(".model")]
    for single, index, shard in WEIGHT_FORMATS:
        if single in top:
            return wanted + [single]
        if index in top:
            return wanted + [index] + sorted(name for name in top if shard.fullmatch(name))
    raise ModelError("the hub model has no model.safetensors or pytorch_model.bin weights")


def _from_hub(repo_id: str, revision: str | None, cache_dir: str | None) -> str:
    """Download (or find in the cache) the needed files of `repo_id`; returns the snapshot folder."""
    api = HfApi()
    try:
        info = api.model_info(repo_id, revision=revision)
    except (OfflineModeIsEnabled, httpx2.TransportError) as error:
        return _from_cache(repo_id, revision, cache_dir, error)
    except GatedRepoError:
        raise ModelError(
            "gated hub model: accept its terms on the hub and log in (hf auth login)", where=repo_id
        ) from None
    except RevisionNotFoundError:
        raise ModelError(f"revision {revision!r} not found on the hub", where=repo_id) from None
    except RepositoryNotFoundError:
        raise ModelError("no such folder or hub model", where=repo_id) from None
    except HfHubHTTPError as error:
        return _from_cache(repo_id, revision, cache_dir, error)

    try:
        files = needed_files([sibling.rfilename for sibling in info.siblings or []])
    except ModelError as error:
        raise ModelError(error.message, where=repo_id) from None
    try:
        # The branch name (not info.sha) keeps refs/<branch> in the cache up to date for later offline runs.
        return snapshot_download(repo_id, revision=revision, cache_dir=cache_dir, allow_patterns=files)
    except (OSError, httpx2.HTTPError) as error:
        raise ModelError(f"download failed: {_first_line(error)}", where=repo_id) from None


def _from_cache(repo_id: str, revision: str | None, cache_dir: str | None, error: Exception) -> str:
    """The cached snapshot of `repo_id` at `revision`, used when the hub cannot be asked (`error` says why)."""
    if isinstance(error, OfflineModeIsEnabled) or constants.is_offline_mode():
        why = "offline mode is on (HF_HUB_OFFLINE)"
    elif isinstance(error, HfHubHTTPError):
        why = f"the hub answered {_first_line(error)}"
    else:
        why = "the hub cannot be reached"
    at = f" at revision {revision!r}" if revision else ""
    try:
        listing = [entry.path for entry in get_cached_repo_tree(repo_id, revision=revision, cache_dir=cache_dir)]
        patterns = needed_files(listing)
    except (CachedRepoTreeNotFoundError, ModelError, OSError):
        patterns = None  # no listing cached: take the snapshot folder as it is
    try:
        return snapshot_download(
            repo_id, revision=revision, cache_dir=cache_dir, allow_patterns=patterns, local_files_only=True
        )
    except IncompleteSnapshotError:
        raise ModelError(f"the cached copy{at} is incomplete and {why}", where=repo_id) from None
    except (LocalEntryNotFoundError, RevisionResolutionError):
        raise ModelError(f"model{at} is not in the local cache and {why}", where=repo_id) from None


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]
