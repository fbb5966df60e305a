"""What ved may replace or write over, and what it never touches.

ved replaces an existing path (`--force`) only when losing it loses nothing of the user's: an empty folder, or a
folder ved wrote itself and that holds nothing else. Every folder ved writes carries a small marker file, `.ved`
(JSON: who wrote it, what kind of folder, which version); a folder without it, a file, a link, or a marked folder that
also holds a file ved does not write (a photo, notes, a data folder) is refused, naming the path. An output that is
one of the inputs, or a folder that holds them, is refused before any work.

Files and folders ved writes get the permissions the umask gives ordinary files (`follow_umask`): safetensors would
otherwise create weights readable by their owner only.
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Iterable
from pathlib import Path

from ..errors import OptionError, option

MARKER = ".ved"
KINDS = ("model", "run")
# What ved writes into a model folder (save.py, training/state.py) and a run folder (training/setup.py, log.py).
MODEL_FILES = frozenset(
    {
        "config.json",
        "generation_config.json",
        "preprocessor_config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "model.safetensors",
        "model.safetensors.index.json",
        "training_state.pt",
        MARKER,
    }
)
SHARD = re.compile(r"model-\d{5}-of-\d{5}\.safetensors")
RUN_FILES = frozenset({"train_args.json", "metrics.jsonl", MARKER})
RUN_FOLDERS = frozenset({"best", "last"})
# atomic_folder's temporary and replaced folders, left behind only if ved was killed (SIGKILL, power cut)
LEFTOVER = re.compile(r"\.(best|last)\.(.+\.partial|old-\d+)")
SHOWN = 3  # foreign names listed in a message


def write_marker(folder: str | Path, kind: str) -> None:
    """Mark `folder` as written by ved (`kind`: model or run)."""
    from .. import __version__

    text = json.dumps({"written_by": "ved", "kind": kind, "version": __version__}) + "\n"
    (Path(folder) / MARKER).write_text(text, encoding="utf-8")


def marked_kind(folder: str | Path) -> str | None:
    """The kind `folder`'s marker names ("model", "run"), or None when it has no readable marker. A run folder
    written before markers existed is recognised by the ved version its train_args.json records."""
    folder = Path(folder)
    try:
        data = json.loads((folder / MARKER).read_text(encoding="utf-8"))
        kind = data.get("kind") if isinstance(data, dict) and data.get("written_by") == "ved" else None
        return kind if kind in KINDS else None
    except FileNotFoundError:
        pass
    except (OSError, ValueError):
        return None
    try:
        args = json.loads((folder / "train_args.json").read_text(encoding="utf-8"))
        return "run" if isinstance(args, dict) and "ved_version" in args.get("run", {}) else None
    except (OSError, ValueError, AttributeError, TypeError):
        return None


def replace_problem(path: str | Path) -> str | None:
    """Why replacing `path` could lose something of the user's (to follow "already exists and ..."), or None when
    it does not exist, is an empty folder, or is a folder ved wrote that holds only what ved writes."""
    path = Path(path)
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return None
    except OSError as error:
        return f"cannot be examined ({(error.strerror or str(error)).lower()})"
    if stat.S_ISLNK(mode):
        return "is a symbolic link, not a folder ved wrote"
    if not stat.S_ISDIR(mode):
        return "is a file, not a folder ved wrote" if stat.S_ISREG(mode) else "is not a folder ved wrote"
    try:
        if not any(os.scandir(path)):
            return None
    except OSError as error:
        return f"cannot be read ({(error.strerror or str(error)).lower()})"
    kind = marked_kind(path)
    if kind is None and path.name in RUN_FOLDERS and marked_kind(path.parent) == "run":
        kind = "model"  # a run's best/ or last/ (written unmarked before markers existed)
    foreign = _foreign(path, kind) if kind is not None else _entries(path)
    if not foreign:
        return None
    if len(foreign) == 1:
        return f"holds {foreign[0]}, which ved did not write"
    shown = ", ".join(foreign[:SHOWN])
    more = f" and {len(foreign) - SHOWN} more" if len(foreign) > SHOWN else ""
    return f"holds {shown}{more}, which ved did not write"


def check_replaceable(
    path: str | Path,
    force: bool,
    exists_message: str = f"already exists; {option('force')} replaces it",
) -> None:
    """Refuse (OptionError naming `path`) to write `path` unless that loses nothing: it does not exist or is an
    empty folder; or, with `force`, it is a folder ved wrote holding only what ved writes. `exists_message` is the
    refusal when `force` would help."""
    path = Path(path)
    problem = replace_problem(path)
    if problem is not None:
        raise OptionError(f"already exists and {problem}; ved will not replace it", str(path))
    if force or not path.exists() or not any(path.iterdir()):
        return
    raise OptionError(exists_message, str(path))


def check_not_inside(output: str | Path, sources: Iterable[tuple[str, str | Path | None]]) -> None:
    """Refuse an output folder that is, or holds, one of `sources` ((what it is, path) pairs, e.g. ("the source
    model", "m/")), or the current folder: replacing the output would lose it. Paths are compared resolved (links
    followed), so another name for the same folder is caught too."""
    out = Path(os.path.realpath(output))
    for label, source in [*sources, ("the current folder", os.getcwd())]:
        if source is None or not os.path.exists(os.path.expanduser(source)):
            continue
        inner = Path(os.path.realpath(os.path.expanduser(source)))
        if inner == out:
            raise OptionError(f"the output is {label}; ved never writes over it", str(output))
        if out in inner.parents:
            raise OptionError(f"the output holds {label} ({source}); ved never writes over it", str(output))


def check_output_not_input(output: str | None, inputs: Iterable[str]) -> None:
    """Refuse an output file that is one of the inputs (the same path, another link to it, or a hard link)."""
    if output is None or output == "-":
        return
    target = os.path.abspath(output)
    try:
        st = os.stat(output)
        identity = (st.st_dev, st.st_ino) if stat.S_ISREG(st.st_mode) else None
    except OSError:  # missing (nothing to lose) or unreachable: only the name can match
        identity = None
    for path in inputs:
        same = os.path.abspath(path) == target
        if not same and identity is not None:
            try:
                st = os.stat(path)
                same = (st.st_dev, st.st_ino) == identity
            except OSError:
                pass
        if same:
            raise OptionError(f"the output file is the input {path}; ved never writes over an input", option("output"))


def umask() -> int:
    """The process's umask (os.umask can only be read by setting it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def follow_umask(path: str | Path) -> None:
    """Give `path` (and, for a folder, everything in it) the permissions a plain open()/mkdir() would have given:
    0o666 & ~umask for files, 0o777 & ~umask for folders."""
    mask = umask()
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        path.chmod(0o777 & ~mask)
        for parent, folders, files in os.walk(path):
            for name in folders:
                os.chmod(os.path.join(parent, name), 0o777 & ~mask, follow_symlinks=False)
            for name in files:
                os.chmod(os.path.join(parent, name), 0o666 & ~mask)
    else:
        path.chmod(0o666 & ~mask)


def _entries(folder: Path) -> list[str]:
    return sorted(entry.name for entry in os.scandir(folder))


def _foreign(folder: Path, kind: str, prefix: str = "") -> list[str]:
    """Entries of `folder` that a ved folder of `kind` does not hold (in a run folder, looking into best/ and
    last/), named relative to the folder checked first."""
    foreign = []
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        name = entry.name
        if kind == "model":
            ours = entry.is_file(follow_symlinks=False) and (name in MODEL_FILES or SHARD.fullmatch(name))
        elif entry.is_dir(follow_symlinks=False) and (name in RUN_FOLDERS or LEFTOVER.fullmatch(name)):
            inner = _foreign(Path(entry.path), "model", f"{prefix}{name}/")
            foreign += inner
            continue
        else:
            ours = entry.is_file(follow_symlinks=False) and name in RUN_FILES
        if not ours:
            foreign.append(prefix + name)
    return foreign
