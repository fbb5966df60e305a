"""Training data: (image, text) pairs read from a folder or a list file, checked, split and batched.

Two layouts (`read_examples`):

    folder/metadata.jsonl   one JSON object a line: {"file_name": "img/001.png", "text": "..."}   (Hugging Face
    folder/metadata.csv     a header row naming file_name and text, then one row an image          imagefolder)
    list.tsv                one `path<TAB>text` a line

Image paths are relative to the metadata / list file's folder (subfolders welcome) or absolute. A metadata file can
also be given directly (a `.jsonl` or `.csv` file); any other file is read as a list file. Rows that cannot be used
(unparsable, no file name, empty text, missing or unreadable image) come back as `BadRow`s with their 1-based line
number, so the caller can list them all before training starts; a source that cannot be read at all is an
`InputError`.

Targets follow the reference fine-tuning recipe, `labels = tokenizer(text).input_ids` (with the tokenizer's own
special tokens: `[CLS] x [SEP]` for BERT, `<s> x </s>` for RoBERTa / TrOCR, nothing for GPT-2), plus the eos token
appended when the decoder family needs it to learn where text stops (`target_ids`). Batches pad labels with -100,
the index the loss ignores (`collate`).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import random
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from vedcli.errors import InputError, ModelError, OptionError, option
from vedcli.processing.image import ImageProcessor, open_image
from vedcli.processing.tokenizer import Tokenizer

METADATA_FILES = ("metadata.jsonl", "metadata.csv")  # what a data folder holds, as Hugging Face's imagefolder
FILE_COLUMN, TEXT_COLUMN = "file_name", "text"
IGNORE_INDEX = -100  # label value the cross-entropy loss skips (padding)
MAX_IMAGE_THREADS = 16  # decoding releases the GIL: threads check many images at once


@dataclass(frozen=True)
class Example:
    """One usable training pair."""

    image: Path  # absolute path of the image
    text: str  # the target text, as written (a trailing newline removed)
    line: int  # 1-based line (row) in the metadata / list file, for messages


@dataclass(frozen=True)
class BadRow:
    """A row that cannot be trained on, and why."""

    line: int  # 1-based line in the metadata / list file (a CSV row's first physical line)
    file: str | None  # the image path as written in the file; None when the row could not be parsed that far
    reason: str  # "missing image", "empty text", "not valid JSON: ...", ...

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}" + (f" ({self.file})" if self.file is not None else "")


@dataclass(frozen=True)
class _Row:
    """A parsed row before its image is checked: an example to be, or (reason set) a bad row already."""

    line: int
    file: str | None
    text: str = ""
    reason: str | None = None


# --- reading ----------------------------------------------------------------------------------------------------


def read_examples(source: str | Path, check_images: bool = True) -> tuple[list[Example], list[BadRow]]:
    """The usable examples and the bad rows of a data folder or list file, both in the file's order.

    Every row's image must exist as a file; `check_images` also decodes each one fully (with `open_image`, in a
    thread pool) so unreadable images are found before training rather than in the middle of it."""
    path = Path(source)
    if not path.exists():
        raise InputError("no such data folder or list file", where=str(source))
    if path.is_dir():
        found = [path / name for name in METADATA_FILES if (path / name).is_file()]
        if not found:
            raise InputError(f"data folder has no {' or '.join(METADATA_FILES)}", where=str(source))
        if len(found) > 1:
            raise InputError(f"data folder has both {' and '.join(METADATA_FILES)}; keep one", where=str(source))
        path = found[0]
    elif not path.is_file():
        raise InputError("not a regular file or folder", where=str(source))

    text = _read_text(path)
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        rows = list(_jsonl_rows(text))
    elif suffix == ".csv":
        rows = list(_csv_rows(text, path))
    else:
        rows = list(_list_rows(text))
    return _check_rows(rows, Path(os.path.abspath(path.parent)), check_images)


def _read_text(path: Path) -> str:
    """The file as UTF-8 text (a byte order mark is dropped); anything else is an InputError naming the line."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise InputError(f"cannot read file: {e.strerror or e}", where=str(path)) from e
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise InputError(f"not UTF-8 text: byte 0x{data[e.start]:02x} on line {line}", where=str(path)) from e


def _lines(text: str) -> Iterator[tuple[int, str]]:
    """(1-based number, line without its end-of-line) for each line; only \\n ends a line (\\r\\n too)."""
    for number, line in enumerate(text.split("\n"), start=1):
        yield number, line.removesuffix("\r")


def _clean_text(text: str) -> str:
    """A target text as written, less a trailing newline; inner and leading spaces are kept."""
    return text.rstrip("\r\n")


def _row(line: int, file: Any, text: Any) -> _Row:
    """Validate the two fields of one row."""
    if not isinstance(file, str):
        return _Row(line, None, reason=f"{FILE_COLUMN} is not a string")
    if not file.strip():
        return _Row(line, file, reason=f"empty {FILE_COLUMN}")
    if not isinstance(text, str):
        return _Row(line, file, reason=f"{TEXT_COLUMN} is not a string")
    text = _clean_text(text)
    if not text.strip():
        return _Row(line, file, reason="empty text")
    return _Row(line, file, text)


def _jsonl_rows(text: str) -> Iterator[_Row]:
    for number, line in _lines(text):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            yield _Row(number, None, reason=f"not valid JSON: {e.msg} at column {e.colno}")
            continue
        if not isinstance(obj, dict):
            yield _Row(number, None, reason="not a JSON object")
        elif FILE_COLUMN not in obj:
            yield _Row(number, None, reason=f"no {FILE_COLUMN} field")
        elif TEXT_COLUMN not in obj:
            file = obj[FILE_COLUMN]
            yield _Row(number, file if isinstance(file, str) else None, reason=f"no {TEXT_COLUMN} field")
        else:
            yield _row(number, obj[FILE_COLUMN], obj[TEXT_COLUMN])


def _csv_rows(text: str, path: Path) -> Iterator[_Row]:
    """Rows of a CSV file with a header; a quoted field may hold commas, quotes and newlines."""
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next((row for row in reader if row), None)
        if header is None:
            raise InputError("metadata file is empty: expected a header with file_name and text", where=str(path))
        columns = [name.strip() for name in header]
        missing = [name for name in (FILE_COLUMN, TEXT_COLUMN) if name not in columns]
        if missing:
            raise InputError(
                f"metadata header has no {' or '.join(missing)} column; its columns are: {', '.join(columns)}",
                where=str(path),
            )
        file_at, text_at = columns.index(FILE_COLUMN), columns.index(TEXT_COLUMN)
        while True:
            first_line = reader.line_num + 1  # the row about to be read starts on the next physical line
            row = next(reader, None)
            if row is None:
                return
            if not row or (len(row) == 1 and not row[0].strip()):
                continue  # blank line
            if len(row) != len(columns):
                hint = " (quote text that holds commas)" if len(row) > len(columns) else ""
                file = row[file_at] if file_at < len(row) else None
                yield _Row(first_line, file, reason=f"{len(row)} fields but the header has {len(columns)}{hint}")
                continue
            yield _row(first_line, row[file_at], row[text_at])
    except csv.Error as e:
        raise InputError(f"cannot parse CSV on line {reader.line_num}: {e}", where=str(path)) from e


def _list_rows(text: str) -> Iterator[_Row]:
    """`path<TAB>text` lines; the text is everything after the first TAB. `#` starts a path, not a comment."""
    for number, line in _lines(text):
        if not line.strip():
            continue
        file, tab, target = line.partition("\t")
        if not tab:
            yield _Row(number, None, reason="expected path<TAB>text")
            continue
        yield _row(number, file, target)


def _check_rows(rows: list[_Row], folder: Path, check_images: bool) -> tuple[list[Example], list[BadRow]]:
    """Resolve image paths and check each image (each distinct file once); split into examples and bad rows."""
    paths = {row.file: Path(os.path.abspath(folder / row.file)) for row in rows if row.reason is None}
    distinct = list(dict.fromkeys(paths.values()))
    problems = dict(zip(distinct, _image_problems(distinct, check_images), strict=True))
    examples: list[Example] = []
    bad: list[BadRow] = []
    for row in rows:
        reason = row.reason if row.reason is not None else problems[paths[row.file]]
        if reason is None:
            examples.append(Example(paths[row.file], row.text, row.line))
        else:
            bad.append(BadRow(row.line, row.file, reason))
    return examples, bad


def _image_problems(paths: list[Path], decode: bool) -> list[str | None]:
    """For each path (in order): None if usable, else why not."""
    problems = [_missing(path) for path in paths]
    if decode:
        todo = [i for i, problem in enumerate(problems) if problem is None]
        workers = max(1, min(MAX_IMAGE_THREADS, 2 * (os.cpu_count() or 1), len(todo)))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for i, problem in zip(todo, pool.map(_unreadable, [paths[i] for i in todo]), strict=True):
                problems[i] = problem
    return problems


def _missing(path: Path) -> str | None:
    if path.is_file():
        return None
    if path.is_dir():
        return "is a folder, not an image"
    return "missing image"


def _unreadable(path: Path) -> str | None:
    """open_image's message for an image that cannot be decoded, else None."""
    try:
        open_image(path).close()
    except InputError as e:
        return e.message
    return None


# --- splitting --------------------------------------------------------------------------------------------------


def split_examples(examples: list[Example], fraction: float, seed: int) -> tuple[list[Example], list[Example]]:
    """(train, validation): a seeded random `fraction` of the examples held out, both sides in the input's order.

    The validation side gets ceil(fraction * n) examples (as Hugging Face's `train_test_split`), clamped so that
    each side keeps at least one."""
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction < 1:
        raise OptionError(
            f"must be a fraction between 0 and 1 (exclusive), got {fraction!r}", where=option("val_split")
        )
    n = len(examples)
    if n < 2:
        raise OptionError(
            f"cannot split {n} example(s) into training and validation: need at least 2", where=option("val_split")
        )
    n_val = min(max(math.ceil(n * fraction - 1e-9), 1), n - 1)  # 1e-9: 0.07 * 100 is 7.000000000000001
    order = list(range(n))
    random.Random(seed).shuffle(order)
    held_out = set(order[:n_val])
    train = [e for i, e in enumerate(examples) if i not in held_out]
    validation = [e for i, e in enumerate(examples) if i in held_out]
    return train, validation


# --- targets and batches ----------------------------------------------------------------------------------------


def target_ids(tokenizer: Tokenizer, text: str, eos_token_id: int | None, append_eos: bool) -> list[int]:
    """The ids the decoder is trained to produce for `text`: the tokenizer's encoding with its special tokens (the
    reference recipe's `tokenizer(text).input_ids`), plus `eos_token_id` when `append_eos` and it is not already
    last (GPT-2's tokenizer adds nothing, so without it the model never learns to stop)."""
    ids = list(tokenizer.encode(text, add_special_tokens=True))
    if append_eos:
        if eos_token_id is None:
            raise ModelError("the decoder needs an eos token to end its targets, but the model has no eos_token_id")
        if not ids or ids[-1] != eos_token_id:
            ids.append(eos_token_id)
    return ids


def truncate_ids(ids: list[int], max_length: int, eos_token_id: int | None) -> list[int]:
    """At most `max_length` ids; a sequence that ended with eos still does."""
    if len(ids) <= max_length:
        return ids
    if eos_token_id is not None and ids[-1] == eos_token_id:
        return ids[: max_length - 1] + [eos_token_id]
    return ids[:max_length]


class ImageTextDataset(Dataset):
    """Examples as model inputs: pixel values from the model's image processor, target ids from its tokenizer.

    Targets are tokenized once, here (a text that gives no ids is an InputError naming its line); images are read
    on each `__getitem__`, so a DataLoader's worker processes share the decoding."""

    def __init__(
        self,
        examples: Sequence[Example],
        processor: ImageProcessor,
        tokenizer: Tokenizer,
        eos_token_id: int | None,
        append_eos: bool,
        max_target_length: int | None = None,
    ):
        if max_target_length is not None and (
            isinstance(max_target_length, bool) or not isinstance(max_target_length, int) or max_target_length < 1
        ):
            raise OptionError(
                f"must be a positive integer, got {max_target_length!r}", where=option("max_target_length")
            )
        self.examples = list(examples)
        self.processor = processor
        self.labels: list[list[int]] = []
        for example in self.examples:
            ids = target_ids(tokenizer, example.text, eos_token_id, append_eos)
            if max_target_length is not None:
                ids = truncate_ids(ids, max_target_length, eos_token_id)
            if not ids:
                raise InputError(f"line {example.line}: the text gives no tokens", where=str(example.image))
            self.labels.append(ids)

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int) -> dict[str, Any]:
        """{"pixel_values": (3, H, W) float32, "labels": list[int], "index": i}"""
        with open_image(self.examples[i].image) as image:
            pixels = self.processor.process(image)
        return {"pixel_values": pixels, "labels": list(self.labels[i]), "index": i}


def collate(batch: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Items -> {"pixel_values": (B, 3, H, W), "labels": (B, T) int64 padded with -100, "index": (B,) int64}."""
    if not batch:
        raise ValueError("cannot collate an empty batch")
    labels = [torch.as_tensor(item["labels"], dtype=torch.int64).reshape(-1) for item in batch]
    width = max(len(row) for row in labels)
    padded = torch.full((len(batch), width), IGNORE_INDEX, dtype=torch.int64)
    for b, row in enumerate(labels):
        padded[b, : len(row)] = row
    return {
        "pixel_values": torch.stack([item["pixel_values"] for item in batch]),
        "labels": padded,
        "index": torch.tensor([int(item["index"]) for item in batch], dtype=torch.int64),
    }


__all__ = [
    "BadRow",
    "Example",
    "IGNORE_INDEX",
    "ImageTextDataset",
    "collate",
    "read_examples",
    "split_examples",
    "target_ids",
    "truncate_ids",
]
