"""vedcli.training.data: every source layout, every bad-row kind with its line number, splits, targets against
transformers' tokenizers (the reference recipe `tokenizer(text).input_ids`), pixel values against transformers' image
processor, and batching."""

from __future__ import annotations

import json
import os
import pickle
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from support.tiny_tokenizers import write_gpt2_bpe, write_roberta_bpe, write_sentencepiece, write_wordpiece
from vedcli.errors import InputError, ModelError, OptionError
from vedcli.processing.image import ImageProcessor, ImageProcessorConfig, open_image
from vedcli.processing.tokenizer import load_tokenizer
from vedcli.training.data import (
    IGNORE_INDEX,
    BadRow,
    Example,
    ImageTextDataset,
    collate,
    read_examples,
    split_examples,
    target_ids,
)

warnings.filterwarnings("ignore", message=".*torchvision.*")
transformers = pytest.importorskip("transformers")  # the reference, tests only


def write_image(path: Path, seed: int = 0, size: tuple[int, int] = (9, 7), mode: str = "RGB") -> Path:
    """A small random image (width x height) in `mode`, saved as PNG (or whatever the suffix says)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    channels = {"RGB": 3, "RGBA": 4, "L": 1}[mode]
    array = rng.integers(0, 256, (size[1], size[0], channels), dtype=np.uint8)
    Image.fromarray(array.squeeze(-1) if channels == 1 else array, mode).save(path)
    return path


def write_jsonl(folder: Path, rows: list[object | str]) -> Path:
    """metadata.jsonl with one line per row: a dict or list is dumped, a str is written as it is."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = [row if isinstance(row, str) else json.dumps(row, ensure_ascii=False) for row in rows]
    path = folder / "metadata.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def pairs(examples: list[Example]) -> list[tuple[Path, str, int]]:
    return [(e.image, e.text, e.line) for e in examples]


# --- layouts ----------------------------------------------------------------------------------------------------


def test_jsonl_folder_with_subfolders_absolute_paths_and_duplicates(tmp_path):
    data = tmp_path / "data"
    a = write_image(data / "a.png", 1)
    b = write_image(data / "sub" / "deeper" / "b.jpg", 2)
    outside = write_image(tmp_path / "elsewhere" / "c.png", 3)
    write_jsonl(
        data,
        [
            {"file_name": "a.png", "text": "  two  inner   spaces kept\n"},  # trailing newline dropped
            "",  # blank lines are skipped but still counted
            {"file_name": "sub/deeper/b.jpg", "text": "B", "extra": 1},  # other columns are ignored
            {"file_name": str(outside), "text": "absolute"},
            {"file_name": "./a.png", "text": "again"},  # duplicates are allowed
        ],
    )
    examples, bad = read_examples(data)
    assert bad == []
    assert pairs(examples) == [
        (a, "  two  inner   spaces kept", 1),
        (b, "B", 3),
        (outside, "absolute", 4),
        (a, "again", 5),
    ]
    assert all(e.image.is_absolute() for e in examples)
    # the metadata file itself names the same data
    assert read_examples(data / "metadata.jsonl") == (examples, [])


def test_relative_source_gives_absolute_image_paths(tmp_path, monkeypatch):
    write_image(tmp_path / "d" / "x.png")
    write_jsonl(tmp_path / "d", [{"file_name": "x.png", "text": "x"}])
    monkeypatch.chdir(tmp_path)
    examples, _ = read_examples("d")
    assert examples[0].image == tmp_path / "d" / "x.png"


def test_csv_folder_with_quotes_commas_and_newlines(tmp_path):
    data = tmp_path / "data"
    a = write_image(data / "imgs" / "a.png", 1)
    b = write_image(data / "b.png", 2)
    (data / "metadata.csv").write_text(
        "file_name,text,split\n"  # line 1
        'imgs/a.png,"hello, world",train\n'  # line 2
        "\n"  # line 3: blank
        'b.png,"a ""quoted"" word\n'  # line 4: a row over three lines
        "second line\n"
        'third",train\n'
        "b.png,plain text ,val\n",  # line 7: a trailing space is kept
        encoding="utf-8",
    )
    examples, bad = read_examples(data)
    assert bad == []
    assert pairs(examples) == [
        (a, "hello, world", 2),
        (b, 'a "quoted" word\nsecond line\nthird', 4),
        (b, "plain text ", 7),
    ]


def test_csv_with_bom_crlf_and_spaced_header(tmp_path):
    data = tmp_path / "data"
    a = write_image(data / "a.png")
    (data / "metadata.csv").write_bytes("\ufefftext, file_name\r\nfirst,a.png\r\n\r\nsecond,a.png\r\n".encode())
    examples, bad = read_examples(data)
    assert bad == []
    assert pairs(examples) == [(a, "first", 2), (a, "second", 4)]


def test_list_file(tmp_path):
    a = write_image(tmp_path / "imgs" / "a.png", 1)
    hashed = write_image(tmp_path / "#1.png", 2)  # `#` starts a path, it is not a comment
    outside = write_image(tmp_path / "other" / "c.png", 3)
    listing = tmp_path / "lists" / "train.tsv"
    listing.parent.mkdir()
    listing.write_text(
        "../imgs/a.png\tfirst line\r\n"  # 1: relative to the list file's folder; CRLF
        "\n"  # 2: skipped
        "   \n"  # 3: skipped
        "../#1.png\t# not a comment\n"  # 4
        f"{outside}\ttext\twith a tab\n"  # 5: the text is everything after the first TAB
        "../imgs/a.png\t  spaced  \n",  # 6
        encoding="utf-8",
    )
    examples, bad = read_examples(listing)
    assert bad == []
    assert pairs(examples) == [
        (a, "first line", 1),
        (hashed, "# not a comment", 4),
        (outside, "text\twith a tab", 5),
        (a, "  spaced  ", 6),
    ]


# --- bad rows ---------------------------------------------------------------------------------------------------


def test_every_bad_jsonl_row_with_its_line(tmp_path):
    data = tmp_path / "data"
    write_image(data / "ok.png")
    (data / "folder.png").mkdir()
    (data / "text.png").write_text("not an image at all")
    png = (data / "ok.png").read_bytes()
    (data / "cut.png").write_bytes(png[: len(png) // 2])  # truncated
    (data / "empty.png").write_bytes(b"")
    write_jsonl(
        data,
        [
            {"file_name": "ok.png", "text": "fine"},  # 1
            "{not json",  # 2
            '["ok.png", "a list"]',  # 3
            {"text": "no file name"},  # 4
            {"file_name": "ok.png"},  # 5
            {"file_name": "ok.png", "text": ""},  # 6
            {"file_name": "ok.png", "text": " \n"},  # 7: only whitespace
            {"file_name": "ok.png", "text": 42},  # 8
            {"file_name": 7, "text": "x"},  # 9
            {"file_name": "", "text": "x"},  # 10
            {"file_name": "gone.png", "text": "x"},  # 11
            {"file_name": "folder.png", "text": "x"},  # 12
            {"file_name": "text.png", "text": "x"},  # 13
            {"file_name": "cut.png", "text": "x"},  # 14
            {"file_name": "empty.png", "text": "x"},  # 15
            {"file_name": "ok.png", "text": "fine again"},  # 16
        ],
    )

    def message(name: str) -> str:  # what open_image says about the file
        with pytest.raises(InputError) as caught:
            open_image(data / name)
        return caught.value.message

    examples, bad = read_examples(data)
    assert [(e.line, e.text) for e in examples] == [(1, "fine"), (16, "fine again")]
    got = [(row.line, row.file, row.reason) for row in bad]
    assert got[0][:2] == (2, None) and got[0][2].startswith("not valid JSON")
    assert got[1:] == [
        (3, None, "not a JSON object"),
        (4, None, "no file_name field"),
        (5, "ok.png", "no text field"),
        (6, "ok.png", "empty text"),
        (7, "ok.png", "empty text"),
        (8, "ok.png", "text is not a string"),
        (9, None, "file_name is not a string"),
        (10, "", "empty file_name"),
        (11, "gone.png", "missing image"),
        (12, "folder.png", "is a folder, not an image"),
        (13, "text.png", message("text.png")),
        (14, "cut.png", message("cut.png")),
        (15, "empty.png", message("empty.png")),
    ]
    assert "unknown format" in got[11][2] and "truncated" in got[12][2]
    assert str(bad[-4]) == "line 12: is a folder, not an image (folder.png)"

    # without decoding, only files that are not there (or not files) are bad
    examples, bad = read_examples(data, check_images=False)
    assert [e.line for e in examples] == [1, 13, 14, 15, 16]
    assert [row.line for row in bad] == list(range(2, 13))


def test_bad_csv_rows(tmp_path):
    data = tmp_path / "data"
    write_image(data / "a.png")
    (data / "metadata.csv").write_text(
        "file_name,text\n"
        "a.png,fine\n"  # 2
        "a.png,hello, world\n"  # 3: unquoted comma
        "a.png\n"  # 4: text missing
        "a.png,\n"  # 5: empty text
        "missing.png,x\n"  # 6
        ",x\n"  # 7
        'a.png,"multi\nline",extra\n'  # 8-9: too many fields, reported on its first line
        "a.png,last\n",  # 10
        encoding="utf-8",
    )
    examples, bad = read_examples(data)
    assert [(e.line, e.text) for e in examples] == [(2, "fine"), (10, "last")]
    assert [(row.line, row.file, row.reason) for row in bad] == [
        (3, "a.png", "3 fields but the header has 2 (quote text that holds commas)"),
        (4, "a.png", "1 fields but the header has 2"),
        (5, "a.png", "empty text"),
        (6, "missing.png", "missing image"),
        (7, "", "empty file_name"),
        (8, "a.png", "3 fields but the header has 2 (quote text that holds commas)"),
    ]


def test_bad_list_rows(tmp_path):
    write_image(tmp_path / "a.png")
    listing = tmp_path / "list.txt"
    listing.write_text("a.png only a path and spaces\n\na.png\t\na.png\tok\nb.png\tx\n\tno path\n", encoding="utf-8")
    examples, bad = read_examples(listing)
    assert [(e.line, e.text) for e in examples] == [(4, "ok")]
    assert [(row.line, row.file, row.reason) for row in bad] == [
        (1, None, "expected path<TAB>text"),
        (3, "a.png", "empty text"),
        (5, "b.png", "missing image"),
        (6, "", "empty file_name"),
    ]


def test_many_rows_keep_their_order(tmp_path):
    """Images are decoded in a thread pool; results must still follow the file's order, each file checked once."""
    data = tmp_path / "data"
    rows = []
    for i in range(300):
        if i % 7 == 3:
            (data / f"{i}.png").parent.mkdir(parents=True, exist_ok=True)
            (data / f"{i}.png").write_bytes(b"\x89PNG broken")
        else:
            write_image(data / f"{i}.png", i, size=(4, 3))
        rows.append({"file_name": f"{i}.png", "text": f"text {i}"})
    write_jsonl(data, rows * 10)  # 3000 rows
    start = time.perf_counter()
    examples, bad = read_examples(data)
    elapsed = time.perf_counter() - start
    good = [i for i in range(300) if i % 7 != 3]
    assert [e.text for e in examples] == [f"text {i}" for i in good] * 10
    assert [e.line for e in examples] == [k * 300 + i + 1 for k in range(10) for i in good]
    assert [row.line for row in bad] == [k * 300 + i + 1 for k in range(10) for i in range(300) if i % 7 == 3]
    assert elapsed < 10, f"reading 3000 rows took {elapsed:.1f}s"


def test_unreadable_sources_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="no such data folder") as caught:
        read_examples(tmp_path / "nope")
    assert caught.value.where == str(tmp_path / "nope")

    with pytest.raises(InputError, match="no metadata.jsonl or metadata.csv") as caught:
        read_examples(tmp_path)
    assert caught.value.where == str(tmp_path)

    (tmp_path / "metadata.jsonl").write_text("")
    (tmp_path / "metadata.csv").write_text("file_name,text\n")
    with pytest.raises(InputError, match="both"):
        read_examples(tmp_path)

    (tmp_path / "metadata.jsonl").unlink()
    (tmp_path / "metadata.csv").write_text("image,caption\na.png,x\n")
    with pytest.raises(InputError) as caught:
        read_examples(tmp_path)
    assert caught.value.where == str(tmp_path / "metadata.csv")
    assert caught.value.message == "metadata header has no file_name or text column; its columns are: image, caption"

    (tmp_path / "metadata.csv").write_text("file_name,caption\n")
    with pytest.raises(InputError, match="no text column; its columns are: file_name, caption"):
        read_examples(tmp_path)

    (tmp_path / "metadata.csv").write_text("\n\n")
    with pytest.raises(InputError, match="empty"):
        read_examples(tmp_path)

    (tmp_path / "metadata.csv").unlink()
    (tmp_path / "metadata.jsonl").write_bytes(b'{"file_name": "a.png", "text": "ok"}\n{"text": "caf\xe9"}\n')  # Latin-1
    with pytest.raises(InputError, match="not UTF-8 text: byte 0xe9 on line 2") as caught:
        read_examples(tmp_path)
    assert caught.value.where == str(tmp_path / "metadata.jsonl")

    listing = tmp_path / "list.txt"
    listing.write_bytes(b"a.png\t\xff\n")
    with pytest.raises(InputError, match="not UTF-8"):
        read_examples(listing)


def test_empty_metadata_gives_nothing(tmp_path):
    write_jsonl(tmp_path, [])
    assert read_examples(tmp_path) == ([], [])


# --- splitting --------------------------------------------------------------------------------------------------


def _examples(n: int) -> list[Example]:
    return [Example(Path(f"/data/{i}.png"), f"text {i}", i + 1) for i in range(n)]


@pytest.mark.parametrize(
    ("n", "fraction", "n_val"),
    [(100, 0.05, 5), (100, 0.07, 7), (101, 0.05, 6), (20, 0.5, 10), (2, 0.01, 1), (2, 0.99, 1), (10, 0.99, 9)],
)
def test_split_sizes(n, fraction, n_val):
    examples = _examples(n)
    train, val = split_examples(examples, fraction, seed=0)
    assert len(val) == n_val and len(train) == n - n_val
    assert sorted(train + val, key=lambda e: e.line) == examples  # disjoint, nothing lost
    assert train == sorted(train, key=lambda e: e.line) and val == sorted(val, key=lambda e: e.line)


def test_split_is_seeded():
    examples = _examples(60)
    first = split_examples(examples, 0.25, seed=3)
    assert split_examples(examples, 0.25, seed=3) == first
    assert split_examples(examples, 0.25, seed=4) != first
    assert first[1] != examples[:15]  # not just the head


@pytest.mark.parametrize("fraction", [0, 1, -0.1, 1.5, float("nan"), True, "0.1"])
def test_split_rejects_bad_fractions(fraction):
    with pytest.raises(OptionError) as caught:
        split_examples(_examples(10), fraction, seed=0)
    assert caught.value.option == "val_split"


@pytest.mark.parametrize("n", [0, 1])
def test_split_needs_two_examples(n):
    with pytest.raises(OptionError, match="at least 2") as caught:
        split_examples(_examples(n), 0.5, seed=0)
    assert caught.value.option == "val_split"


# --- targets ----------------------------------------------------------------------------------------------------

TEXTS = ["A man riding a wave.", "  two  spaces ", "café Zürich 10:30", "x"]


@pytest.fixture(scope="module")
def tokenizers(tmp_path_factory):
    """name -> (ved tokenizer, transformers tokenizer) for each published layout."""
    root = tmp_path_factory.mktemp("tok")
    writers = {
        "gpt2": write_gpt2_bpe,
        "bert": write_wordpiece,
        "roberta": write_roberta_bpe,
        "trocr-small": write_sentencepiece,
    }
    out = {}
    for name, write in writers.items():
        write(root / name)
        out[name] = (load_tokenizer(root / name), transformers.AutoTokenizer.from_pretrained(root / name))
    return out


@pytest.mark.parametrize("text", TEXTS)
def test_gpt2_targets_get_eos(tokenizers, text):
    ved, ref = tokenizers["gpt2"]
    eos = ref.eos_token_id
    expected = ref(text).input_ids + [eos]  # the tokenizer adds nothing: eos appended
    assert ref(text).input_ids[-1] != eos
    assert target_ids(ved, text, eos, append_eos=True) == expected
    assert target_ids(ved, text, eos, append_eos=False) == ref(text).input_ids


def test_eos_is_not_doubled(tokenizers):
    ved, ref = tokenizers["gpt2"]
    text = "ends with<|endoftext|>"
    assert ref(text).input_ids[-1] == ref.eos_token_id
    assert target_ids(ved, text, ref.eos_token_id, append_eos=True) == ref(text).input_ids


@pytest.mark.parametrize("name", ["bert", "roberta", "trocr-small"])
@pytest.mark.parametrize("text", TEXTS)
def test_targets_with_the_tokenizers_special_tokens(tokenizers, name, text):
    ved, ref = tokenizers[name]
    expected = ref(text).input_ids
    first, last = (ref.cls_token_id, ref.sep_token_id) if name == "bert" else (ref.bos_token_id, ref.eos_token_id)
    assert expected[0] == first and expected[-1] == last  # [CLS] x [SEP] / <s> x </s>
    end = ref.sep_token_id if name == "bert" else ref.eos_token_id
    assert target_ids(ved, text, end, append_eos=False) == expected
    assert target_ids(ved, text, end, append_eos=True) == expected  # already ends with it


def test_append_eos_needs_an_eos(tokenizers):
    with pytest.raises(ModelError, match="eos"):
        target_ids(tokenizers["gpt2"][0], "x", None, append_eos=True)


# --- dataset and batches ----------------------------------------------------------------------------------------


@pytest.fixture
def photo_data(tmp_path):
    modes = ["RGB", "RGBA", "L"]
    for i, mode in enumerate(modes):
        write_image(tmp_path / "img" / f"{i}.png", i, size=(11 + 3 * i, 8 + i), mode=mode)
    texts = ["A man riding a wave on top of a surfboard.", "Two dogs", "A cat sitting on a laptop keyboard."]
    write_jsonl(tmp_path, [{"file_name": f"img/{i}.png", "text": t} for i, t in enumerate(texts)])
    examples, bad = read_examples(tmp_path)
    assert bad == []
    return examples


def test_dataset_items_match_the_reference(photo_data, tokenizers):
    ved, ref_tok = tokenizers["gpt2"]
    eos = ref_tok.eos_token_id
    processor = ImageProcessor(ImageProcessorConfig(size={"height": 13, "width": 10}, resample=3))
    reference = transformers.ViTImageProcessorPil(size={"height": 13, "width": 10}, resample=3, do_convert_rgb=True)
    dataset = ImageTextDataset(photo_data, processor, ved, eos, append_eos=True)
    assert len(dataset) == 3
    for i, example in enumerate(photo_data):
        item = dataset[i]
        with Image.open(example.image) as image:  # the reference converts to RGB itself (alpha over white)
            expected = reference(image, return_tensors="pt")
        assert item["pixel_values"].dtype == torch.float32
        assert item["pixel_values"].shape == (3, 13, 10)
        assert (item["pixel_values"] - expected["pixel_values"][0]).abs().max() < 1e-5
        assert item["labels"] == ref_tok(example.text).input_ids + [eos]
        assert item["index"] == i


def test_max_target_length_keeps_the_eos(photo_data, tokenizers):
    processor = ImageProcessor(ImageProcessorConfig(size={"height": 5, "width": 6}))
    gpt2, ref = tokenizers["gpt2"]
    eos = ref.eos_token_id
    full, short = ref(photo_data[0].text).input_ids, ref(photo_data[1].text).input_ids
    assert len(short) + 1 <= 6 < len(full) + 1
    dataset = ImageTextDataset(photo_data, processor, gpt2, eos, append_eos=True, max_target_length=6)
    assert dataset[0]["labels"] == full[:5] + [eos]
    assert dataset[1]["labels"] == short + [eos]  # short enough: untouched

    bert, ref = tokenizers["bert"]
    dataset = ImageTextDataset(photo_data, processor, bert, ref.sep_token_id, append_eos=False, max_target_length=4)
    assert dataset[0]["labels"] == ref(photo_data[0].text).input_ids[:3] + [ref.sep_token_id]

    dataset = ImageTextDataset(photo_data, processor, gpt2, None, append_eos=False, max_target_length=4)
    assert dataset[0]["labels"] == full[:4]  # no eos to keep: a plain cut

    for bad in (0, -1, 2.5, True):
        with pytest.raises(OptionError) as caught:
            ImageTextDataset(photo_data, processor, gpt2, eos, append_eos=True, max_target_length=bad)
        assert caught.value.option == "max_target_length"


def test_collate_pads_labels_with_ignore_index(photo_data, tokenizers):
    ved, ref = tokenizers["roberta"]
    processor = ImageProcessor(ImageProcessorConfig(size={"height": 7, "width": 9}))
    dataset = ImageTextDataset(photo_data, processor, ved, ref.eos_token_id, append_eos=False)
    loader = torch.utils.data.DataLoader(dataset, batch_size=3, collate_fn=collate, shuffle=False)
    batch = next(iter(loader))
    assert IGNORE_INDEX == -100
    assert batch["pixel_values"].shape == (3, 3, 7, 9)
    assert torch.equal(batch["pixel_values"][1], dataset[1]["pixel_values"])
    assert batch["labels"].dtype == torch.int64 and batch["index"].tolist() == [0, 1, 2]
    lengths = [len(ref(e.text).input_ids) for e in photo_data]
    assert batch["labels"].shape == (3, max(lengths))
    for row, example, length in zip(batch["labels"], photo_data, lengths, strict=True):
        assert row[:length].tolist() == ref(example.text).input_ids
        assert (row[length:] == -100).all()
    assert collate([dataset[1]])["labels"].shape == (1, lengths[1])  # one item: no padding
    # DataLoader workers get the dataset by pickling (spawn): it must travel and give the same items
    copy = pickle.loads(pickle.dumps(dataset))
    assert torch.equal(copy[2]["pixel_values"], dataset[2]["pixel_values"])
    assert copy[2]["labels"] == dataset[2]["labels"]


def test_dataset_reports_an_image_gone_since_reading(photo_data, tokenizers):
    processor = ImageProcessor(ImageProcessorConfig(size={"height": 5, "width": 6}))
    dataset = ImageTextDataset(photo_data, processor, tokenizers["gpt2"][0], 0, append_eos=True)
    os.remove(photo_data[2].image)
    with pytest.raises(InputError) as caught:
        dataset[2]
    assert caught.value.where == str(photo_data[2].image)


def test_bad_row_str():
    assert str(BadRow(3, None, "expected path<TAB>text")) == "line 3: expected path<TAB>text"
    assert str(BadRow(4, "x.png", "missing image")) == "line 4: missing image (x.png)"
