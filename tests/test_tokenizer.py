"""vedcli.processing.tokenizer against transformers' AutoTokenizer on tiny tokenizers of every published layout.

Each folder is loaded by both; ids (with and without special tokens), decoded strings (skipping special tokens or
not), special ids and sizes must be identical. Layouts come as the hub has them (tests/tiny_tokenizers.py), re-saved
by transformers 5 (tokenizer.json + added_tokens_decoder), re-saved by `Tokenizer.save`, and in odd variants taken
from real checkpoints (a tokenizer.json that disagrees with its config, Donut-style added tokens, ...).
"""

from __future__ import annotations

import io
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from support.tiny_tokenizers import (
    TEXT,
    WRITERS,
    train_sentencepiece,
    write_gpt2_bpe,
    write_roberta_bpe,
    write_sentencepiece,
    write_wordpiece,
)
from vedcli.errors import ModelError
from vedcli.processing.sentencepiece import SPM_CONTROL, SPM_USER_DEFINED, parse_sentencepiece_model
from vedcli.processing.tokenizer import Tokenizer, load_tokenizer

transformers = pytest.importorskip("transformers")
AutoTokenizer = transformers.AutoTokenizer

STRINGS = [
    "",
    " ",
    "x",
    "A man riding a wave on top of a surfboard.",  # in the training text
    "Hello world",
    "  leading and trailing spaces  ",
    "a  b   c\tdone\nnext line",
    "café naïve Zürich Ångström crème brûlée",  # accents
    "漢字かな交じり文 and 中文",  # CJK (unknown to every tiny vocabulary)
    "emoji 😀🎉👍🏽 ok",
    "1234567 3.14159 -42 10:30 $45.90",
    "Don't stop! (really?) it's #1, isn't it... @home; a-b/c",
    "UPPER lower MiXeD CaSe",
    "ﬁ ① ǅ ＡＢＣ",  # NFKC-sensitive
    "Привет мир ελληνικά עברית",  # other scripts
    "\u200b\u00ad zero width \u0007 control",
    "<s> special </s> inside <pad> and <mask> here",
    "[CLS] bert [SEP] tokens [MASK] [UNK]",
    "<|endoftext|>after end of text",
]
SPECIAL_IDS = ("bos_token_id", "eos_token_id", "pad_token_id", "unk_token_id")


def _json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _write_json(path: Path, obj: object) -> None:
    path.write_text(json.dumps(obj, ensure_ascii=False), encoding="utf-8")


def mismatches(folder: Path, ref=None, ved: Tokenizer | None = None) -> list[str]:
    """Every difference between transformers and ved on `folder` (empty when they agree)."""
    ref = ref if ref is not None else AutoTokenizer.from_pretrained(folder)
    ved = ved if ved is not None else load_tokenizer(folder)
    found = []
    if ved.vocab_size != len(ref):
        found.append(f"vocab_size {ved.vocab_size} != {len(ref)}")
    for name in SPECIAL_IDS:
        if getattr(ved, name) != getattr(ref, name):
            found.append(f"{name} {getattr(ved, name)} != {getattr(ref, name)}")
    for text in STRINGS:
        for add in (True, False):
            want = ref(text, add_special_tokens=add)["input_ids"]
            got = ved.encode(text, add_special_tokens=add)
            if got != want:
                found.append(f"encode({text!r}, add_special_tokens={add}): {got} != {want}")
            for skip in (True, False):
                want_text = ref.decode(want, skip_special_tokens=skip)
                got_text = ved.decode(want, skip_special_tokens=skip)
                if got_text != want_text:
                    found.append(f"decode({want}, skip={skip}) of {text!r}: {got_text!r} != {want_text!r}")
    every_id = list(range(len(ref)))  # every token once, special and added ones included
    for skip in (True, False):
        if ved.decode(every_id, skip_special_tokens=skip) != ref.decode(every_id, skip_special_tokens=skip):
            found.append(f"decode(all ids, skip={skip}) differs")
    return found


# ------------------------------------------------------------------------------------------------------------------
# Folders: the published layouts and their re-saved forms, written once per module.
# ------------------------------------------------------------------------------------------------------------------

LAYOUTS: dict[str, Callable[[Path], int]] = {
    **WRITERS,
    "sentencepiece-unigram": lambda folder: write_sentencepiece(folder, model_type="unigram"),
    "sentencepiece-bytes": lambda folder: write_sentencepiece(folder, byte_fallback=True),
    "wordpiece-cased": lambda folder: write_wordpiece(folder, lowercase=False),
}
FORMATS = {
    "gpt2-bpe": "gpt2-bpe",
    "roberta-bpe": "roberta-bpe",
    "wordpiece": "wordpiece",
    "wordpiece-cased": "wordpiece",
    "sentencepiece": "sentencepiece",
    "sentencepiece-unigram": "sentencepiece",
    "sentencepiece-bytes": "sentencepiece",
    "tokenizer.json": "tokenizer.json",
}


@pytest.fixture(scope="module")
def layout(tmp_path_factory):
    """layout(name) -> folder as published; layout(name, "resaved") -> re-saved by transformers' save_pretrained."""
    made: dict[tuple[str, str], Path] = {}

    def make(name: str, form: str = "published") -> Path:
        if (name, form) not in made:
            folder = tmp_path_factory.mktemp(f"{name}-{form}")
            if form == "published":
                LAYOUTS[name](folder)
            else:
                AutoTokenizer.from_pretrained(make(name)).save_pretrained(folder)
            made[name, form] = folder
        return made[name, form]

    return make


@pytest.mark.parametrize("name", list(LAYOUTS))
def test_published_layout_matches_transformers(layout, name):
    folder = layout(name)
    assert mismatches(folder) == []
    assert load_tokenizer(folder).format == FORMATS[name]


@pytest.mark.parametrize("name", list(LAYOUTS))
def test_layout_resaved_by_transformers_matches(layout, name):
    folder = layout(name, "resaved")
    assert (folder / "tokenizer.json").is_file()
    assert mismatches(folder) == []
    assert load_tokenizer(folder).format == "tokenizer.json"


@pytest.mark.parametrize("name", list(LAYOUTS))
def test_save_round_trips_through_both_libraries(layout, name, tmp_path):
    """`Tokenizer.save` output loads into ved and transformers as the original tokenizer."""
    original = AutoTokenizer.from_pretrained(layout(name))
    load_tokenizer(layout(name)).save(tmp_path)
    written = {p.name for p in tmp_path.iterdir()}
    assert written >= {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"}
    reloaded = load_tokenizer(tmp_path)
    assert mismatches(tmp_path, ref=original, ved=reloaded) == []  # ved's copy behaves as the original
    assert mismatches(tmp_path) == []  # and transformers reads the copy as ved does


def test_vocab_size_is_what_the_writer_returns(tmp_path):
    for name, writer in LAYOUTS.items():
        size = writer(tmp_path / name)
        assert load_tokenizer(tmp_path / name).vocab_size == size == len(AutoTokenizer.from_pretrained(tmp_path / name))


def test_published_special_ids(layout):
    """The ids the decoders rely on, spelled out for the two common layouts (and checked against transformers)."""
    gpt2 = load_tokenizer(layout("gpt2-bpe"))
    eot = gpt2.backend.token_to_id("<|endoftext|>")
    assert (gpt2.bos_token_id, gpt2.eos_token_id, gpt2.unk_token_id, gpt2.pad_token_id) == (eot, eot, eot, None)
    assert eot == gpt2.vocab_size - 1
    spm = load_tokenizer(layout("sentencepiece"))
    assert (spm.bos_token_id, spm.pad_token_id, spm.eos_token_id, spm.unk_token_id) == (0, 1, 2, 3)
    assert spm.backend.token_to_id("<mask>") == spm.vocab_size - 1
    assert mismatches(layout("gpt2-bpe"), ved=gpt2) == mismatches(layout("sentencepiece"), ved=spm) == []


# ------------------------------------------------------------------------------------------------------------------
# Variants seen on the hub.
# ------------------------------------------------------------------------------------------------------------------


def test_class_pipeline_wins_over_a_disagreeing_tokenizer_json(layout, tmp_path):
    """transformers rebuilds GPT2Tokenizer from the config (add_prefix_space=False) and takes only the vocabulary
    and post-processor from tokenizer.json, whatever pre-tokenizer the file declares; add_bos_token is ignored."""
    shutil.copytree(layout("gpt2-bpe"), tmp_path, dirs_exist_ok=True)
    shutil.copy(layout("gpt2-bpe", "resaved") / "tokenizer.json", tmp_path / "tokenizer.json")
    config = _json(tmp_path / "tokenizer_config.json")
    _write_json(tmp_path / "tokenizer_config.json", {**config, "add_bos_token": True})
    data = _json(tmp_path / "tokenizer.json")
    data["pre_tokenizer"] = {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True}
    data["post_processor"] = None
    _write_json(tmp_path / "tokenizer.json", data)
    assert mismatches(tmp_path) == []
    assert load_tokenizer(tmp_path).encode("Hello") == load_tokenizer(layout("gpt2-bpe")).encode("Hello")


def test_transformers4_xlm_roberta_tokenizer_json_with_added_tokens(layout, tmp_path):
    """Donut-style folder: sentencepiece.bpe.model + a transformers 4 tokenizer.json (Precompiled + Replace
    normalizer, bare Metaspace) + added_tokens.json + additional_special_tokens in special_tokens_map.json."""
    shutil.copytree(layout("sentencepiece"), tmp_path, dirs_exist_ok=True)
    data = _json(layout("sentencepiece", "resaved") / "tokenizer.json")
    size = len(data["model"]["vocab"])
    data["normalizer"] = {
        "type": "Sequence",
        "normalizers": [data["normalizer"], {"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": "▁"}],
    }
    data["pre_tokenizer"] = {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": True}
    _write_json(tmp_path / "tokenizer.json", data)
    _write_json(tmp_path / "added_tokens.json", {"<s_docvqa>": size, "<s_question>": size + 1, "newword": size + 2})
    special_map = _json(tmp_path / "special_tokens_map.json")
    special_map["additional_special_tokens"] = ["<s_docvqa>", "<s_question>"]
    _write_json(tmp_path / "special_tokens_map.json", special_map)
    assert mismatches(tmp_path) == []
    ved = load_tokenizer(tmp_path)
    assert ved.vocab_size == size + 3 and ved.format == "tokenizer.json"
    assert ved.encode("<s_docvqa><s_question>what is it?", add_special_tokens=False)[:2] == [size, size + 1]


def test_added_tokens_json_and_additional_special_tokens(tmp_path):
    size = write_roberta_bpe(tmp_path)
    _write_json(tmp_path / "added_tokens.json", {"<s_cord>": size, "<sep/>": size + 1, "newword": size + 2})
    special_map = _json(tmp_path / "special_tokens_map.json")
    special_map["additional_special_tokens"] = ["<s_cord>", "<sep/>"]
    _write_json(tmp_path / "special_tokens_map.json", special_map)
    assert mismatches(tmp_path) == []
    assert load_tokenizer(tmp_path).vocab_size == size + 3


def test_gpt2_with_new_pad_token_and_bos_eos_added(tmp_path):
    """A pad token outside the vocabulary gets the next id; add_bos/eos_token without tokenizer.json take effect."""
    size = write_gpt2_bpe(tmp_path)
    config = _json(tmp_path / "tokenizer_config.json")
    config.update(pad_token="<pad>", add_bos_token=True, add_eos_token=True)
    _write_json(tmp_path / "tokenizer_config.json", config)
    assert mismatches(tmp_path) == []
    ved = load_tokenizer(tmp_path)
    assert ved.pad_token_id == size and ved.vocab_size == size + 1
    assert ved.encode("hi")[0] == ved.encode("hi")[-1] == ved.bos_token_id


def test_sentencepiece_with_user_defined_and_control_pieces(tmp_path):
    import sentencepiece as spm

    write_sentencepiece(tmp_path)
    buffer = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(TEXT * 3),
        model_writer=buffer,
        model_type="bpe",
        vocab_size=170,
        character_coverage=1.0,
        user_defined_symbols=["<sep/>", "@@"],
        control_symbols=["<ctl>"],
        minloglevel=2,
    )
    (tmp_path / "sentencepiece.bpe.model").write_bytes(buffer.getvalue())
    assert mismatches(tmp_path) == []
    ved, ref = load_tokenizer(tmp_path), AutoTokenizer.from_pretrained(tmp_path)
    text = "a <sep/> b <ctl> @@c"
    assert ved.encode(text) == ref(text)["input_ids"]
    assert ved.backend.token_to_id("<sep/>") in ved.encode(text)


def test_split_special_tokens(layout, tmp_path):
    """split_special_tokens=True: "<s>" typed in the text is ordinary text, not the special token."""
    shutil.copytree(layout("roberta-bpe"), tmp_path, dirs_exist_ok=True)
    config = _json(tmp_path / "tokenizer_config.json")
    _write_json(tmp_path / "tokenizer_config.json", {**config, "split_special_tokens": True})
    assert mismatches(tmp_path) == []
    ved = load_tokenizer(tmp_path)
    assert ved.bos_token_id not in ved.encode("<s>", add_special_tokens=False)


def test_config_added_tokens_decoder(tmp_path):
    size = write_wordpiece(tmp_path)
    config = _json(tmp_path / "tokenizer_config.json")
    flags = {"lstrip": False, "normalized": False, "rstrip": False, "single_word": False, "special": True}
    config["added_tokens_decoder"] = {
        "0": {"content": "[PAD]", **flags},
        str(size): {"content": "<new>", **flags, "lstrip": True, "normalized": True, "special": False},
    }
    _write_json(tmp_path / "tokenizer_config.json", config)
    assert mismatches(tmp_path) == []
    assert load_tokenizer(tmp_path).vocab_size == size + 1


@pytest.mark.parametrize("name", ["gpt2-bpe", "roberta-bpe", "wordpiece", "sentencepiece"])
def test_folder_without_tokenizer_class_uses_the_decoder_model_type(layout, tmp_path, name):
    """With no tokenizer_class, ved picks the family from config.json (transformers would need the class)."""
    shutil.copytree(layout(name), tmp_path, dirs_exist_ok=True)
    config = _json(tmp_path / "tokenizer_config.json")
    del config["tokenizer_class"]
    _write_json(tmp_path / "tokenizer_config.json", config)
    model_type = {"gpt2-bpe": "gpt2", "roberta-bpe": "roberta", "wordpiece": "bert", "sentencepiece": "trocr"}[name]
    model_config = {"model_type": "vision-encoder-decoder", "decoder": {"model_type": model_type}}
    _write_json(tmp_path / "config.json", model_config)
    reference = AutoTokenizer.from_pretrained(layout(name))  # the same files, with their class
    assert mismatches(tmp_path, ref=reference) == []


def test_checkpoint_folder_with_model_config(layout, tmp_path):
    """A complete checkpoint also holds config.json (vision-encoder-decoder); both still read the tokenizer."""
    shutil.copytree(layout("roberta-bpe"), tmp_path, dirs_exist_ok=True)
    config = transformers.VisionEncoderDecoderConfig.from_encoder_decoder_configs(
        transformers.ViTConfig(hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=8),
        transformers.TrOCRConfig(d_model=8, decoder_layers=1, decoder_attention_heads=2, decoder_ffn_dim=8),
    )
    config.save_pretrained(tmp_path)
    assert mismatches(tmp_path) == []


# ------------------------------------------------------------------------------------------------------------------
# decode inputs, SentencePiece reader, errors.
# ------------------------------------------------------------------------------------------------------------------


def test_decode_takes_tensors_and_batches(layout):
    folder = layout("roberta-bpe")
    ved, ref = load_tokenizer(folder), AutoTokenizer.from_pretrained(folder)
    rows = [ref(text)["input_ids"] for text in ("a man on a surfboard", "two dogs!")]
    width = max(map(len, rows))
    padded = torch.tensor([row + [ref.pad_token_id] * (width - len(row)) for row in rows])
    assert ved.decode(padded[0]) == ref.decode(padded[0], skip_special_tokens=True) == "a man on a surfboard"
    assert ved.batch_decode(padded) == ref.batch_decode(padded, skip_special_tokens=True)
    assert ved.batch_decode(padded, skip_special_tokens=False) == ref.batch_decode(padded)
    assert ved.decode(padded[1].numpy()) == "two dogs!"
    with pytest.raises(ValueError):
        ved.decode(padded)


def test_sentencepiece_reader_matches_protobuf():
    from sentencepiece import sentencepiece_model_pb2

    for model_type in ("bpe", "unigram"):
        data = train_sentencepiece(model_type, 180 if model_type == "bpe" else 120)
        proto = sentencepiece_model_pb2.ModelProto()
        proto.ParseFromString(data)
        proto.trainer_spec.pad_id = -1  # negative int32s are 10-byte varints
        proto.trainer_spec.unk_id = 0
        proto.pieces.add(piece="<ctl>", score=0.0, type=SPM_CONTROL)
        proto.pieces.add(piece="<user>", score=-1.5, type=SPM_USER_DEFINED)
        model = parse_sentencepiece_model(proto.SerializeToString())
        assert [(p.piece, p.score, p.type) for p in model.pieces] == [(p.piece, p.score, p.type) for p in proto.pieces]
        spec = proto.trainer_spec
        assert (model.model_type, model.unk_id, model.bos_id, model.eos_id, model.pad_id) == (
            spec.model_type, spec.unk_id, spec.bos_id, spec.eos_id, spec.pad_id,
        )  # fmt: skip
        assert model.precompiled_charsmap == proto.normalizer_spec.precompiled_charsmap != b""
        assert model.byte_fallback == spec.byte_fallback


def test_empty_or_missing_folder_is_a_model_error(tmp_path):
    with pytest.raises(ModelError) as err:
        load_tokenizer(tmp_path)
    assert err.value.where == str(tmp_path) and "no tokenizer files" in err.value.message
    with pytest.raises(ModelError) as err:
        load_tokenizer(tmp_path / "nowhere")
    assert err.value.where == str(tmp_path / "nowhere")


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty", "bad-utf8"])
def test_corrupt_sentencepiece_model_is_a_model_error(tmp_path, damage):
    write_sentencepiece(tmp_path)
    path = tmp_path / "sentencepiece.bpe.model"
    data = path.read_bytes()
    broken = {
        "truncated": data[: len(data) // 2],
        "garbage": b"this is not a sentencepiece model\xff\xff",
        "empty": b"",
        "bad-utf8": b"\x0a\x07\x0a\x03\xff\xfe\xfd\x15\x00",  # one piece whose text is not UTF-8
    }[damage]
    path.write_bytes(broken)
    with pytest.raises(ModelError) as err:
        load_tokenizer(tmp_path)
    assert err.value.where == str(path)


def test_bad_files_are_model_errors(tmp_path):
    write_gpt2_bpe(tmp_path / "json")
    (tmp_path / "json" / "tokenizer.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ModelError, match="invalid JSON") as err:
        load_tokenizer(tmp_path / "json")
    assert err.value.where == str(tmp_path / "json" / "tokenizer.json")

    write_gpt2_bpe(tmp_path / "merges")
    (tmp_path / "merges" / "merges.txt").unlink()
    with pytest.raises(ModelError, match="merges.txt"):
        load_tokenizer(tmp_path / "merges")

    write_wordpiece(tmp_path / "class")
    config = _json(tmp_path / "class" / "tokenizer_config.json")
    config["tokenizer_class"] = "BertJapaneseTokenizer"
    _write_json(tmp_path / "class" / "tokenizer_config.json", config)
    with pytest.raises(ModelError, match="unsupported tokenizer class BertJapaneseTokenizer"):
        load_tokenizer(tmp_path / "class")

    write_sentencepiece(tmp_path / "mismatch")
    (tmp_path / "mismatch" / "tokenizer.json").write_text(
        json.dumps({"model": {"type": "BPE", "vocab": {}, "merges": []}}), encoding="utf-8"
    )
    with pytest.raises(ModelError, match="holds a BPE model, expected Unigram"):
        load_tokenizer(tmp_path / "mismatch")
