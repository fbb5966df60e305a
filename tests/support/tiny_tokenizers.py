"""Tiny tokenizers of every published layout, written into a folder for tests.

Each `write_*` function trains a tokenizer of a few hundred entries on `TEXT`, writes the files the way published
vision-encoder-decoder checkpoints lay them out, and returns the vocabulary size (like `len(tokenizer)`), so a test
can size a tiny decoder to match. `WRITERS` maps a short name to each function.

Layouts copied from the hub:
- gpt2-bpe      nlpconnect/vit-gpt2-image-captioning: vocab.json + merges.txt, GPT2Tokenizer, `<|endoftext|>` last
- roberta-bpe   microsoft/trocr-base-*: vocab.json + merges.txt, RobertaTokenizer, `<s> <pad> </s> <unk>` first
- wordpiece     BERT decoders: vocab.txt, BertTokenizer
- sentencepiece microsoft/trocr-small-*: sentencepiece.bpe.model, XLMRobertaTokenizer
- tokenizer.json  a bare `tokenizers` file with tokenizer_class PreTrainedTokenizerFast

The configs are written in the legacy (transformers 4) form the hub checkpoints still carry: special_tokens_map.json
next to a tokenizer_config.json without `added_tokens_decoder`. Only `tokenizers` and `sentencepiece` are used here,
so writing a folder is cheap; tests that want the transformers 5 layout re-save one with `save_pretrained`.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path

from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

# A small built-in corpus: enough repetitions for a hundred or so merges, some accents, digits and punctuation.
TEXT = [
    "A man riding a wave on top of a surfboard.",
    "Two dogs are playing with a red ball in the park.",
    "A plate of food with broccoli, rice and a fork.",
    "The quick brown fox jumps over the lazy dog!",
    "It's a sunny day; people walk along the beach at 10:30.",
    "Don't forget the café in Zürich, it's naïve but charming.",
    "Invoice No. 2024-117: total $45.90 (tax included).",
    "She wrote 'hello world' on the whiteboard, then erased it.",
    "A cat sitting on a laptop keyboard next to a cup of coffee.",
    "Handwritten notes: meeting at 9am, call Peter, buy milk & eggs.",
    "A group of people standing around a table with pizza.",
    "The train is arriving at platform 3 in 5 minutes.",
]


def _corpus(repeat: int = 3) -> list[str]:
    return TEXT * repeat


def _write_json(path: Path, obj: object) -> None:
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _train_byte_level_bpe(vocab_size: int) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """A byte-level BPE with all 256 byte symbols plus merges learnt on `TEXT`."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(), trainer=trainer)
    model = json.loads(tok.to_str())["model"]
    vocab = sorted(model["vocab"].items(), key=lambda kv: kv[1])
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    return {token: i for i, (token, _) in enumerate(vocab)}, merges


def _write_vocab_merges(folder: Path, vocab: dict[str, int], merges: list[tuple[str, str]]) -> None:
    _write_json(folder / "vocab.json", vocab)
    lines = ["#version: 0.2"] + [f"{a} {b}" for a, b in merges]
    (folder / "merges.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_gpt2_bpe(folder: str | Path) -> int:
    """GPT-2 byte-level BPE as in nlpconnect/vit-gpt2-image-captioning (no bos on encode)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab, merges = _train_byte_level_bpe(vocab_size=340)
    vocab["<|endoftext|>"] = len(vocab)
    _write_vocab_merges(folder, vocab, merges)
    eot = "<|endoftext|>"
    _write_json(folder / "special_tokens_map.json", {"bos_token": eot, "eos_token": eot, "unk_token": eot})
    _write_json(
        folder / "tokenizer_config.json",
        {
            "unk_token": eot,
            "bos_token": eot,
            "eos_token": eot,
            "add_prefix_space": False,
            "model_max_length": 1024,
            "special_tokens_map_file": None,
            "name_or_path": "gpt2",
            "tokenizer_class": "GPT2Tokenizer",
        },
    )
    return len(vocab)


def _write_roberta_special_tokens(folder: Path) -> dict:
    """special_tokens_map.json of the RoBERTa / XLM-R layout; returns its mask token entry."""
    mask = {"content": "<mask>", "single_word": False, "lstrip": True, "rstrip": False, "normalized": False}
    specials = {
        "bos_token": "<s>",
        "eos_token": "</s>",
        "unk_token": "<unk>",
        "sep_token": "</s>",
        "pad_token": "<pad>",
        "cls_token": "<s>",
        "mask_token": mask,
    }
    _write_json(folder / "special_tokens_map.json", specials)
    return mask


def write_roberta_bpe(folder: str | Path) -> int:
    """RoBERTa byte-level BPE as in microsoft/trocr-base-handwritten (`<s> ... </s>` added on encode)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    trained, merges = _train_byte_level_bpe(vocab_size=330)
    specials = ["<s>", "<pad>", "</s>", "<unk>"]
    vocab = {token: i for i, token in enumerate(specials)}
    for token in trained:
        vocab[token] = len(vocab)
    vocab["<mask>"] = len(vocab)
    _write_vocab_merges(folder, vocab, merges)
    mask = _write_roberta_special_tokens(folder)
    _write_json(
        folder / "tokenizer_config.json",
        {
            "errors": "replace",
            "unk_token": "<unk>",
            "bos_token": "<s>",
            "eos_token": "</s>",
            "add_prefix_space": False,
            "sep_token": "</s>",
            "cls_token": "<s>",
            "pad_token": "<pad>",
            "mask_token": {**mask, "normalized": True, "__type": "AddedToken"},
            "trim_offsets": True,
            "model_max_length": 512,
            "special_tokens_map_file": None,
            "name_or_path": "roberta-large",
            "tokenizer_class": "RobertaTokenizer",
        },
    )
    return len(vocab)


def write_wordpiece(folder: str | Path, lowercase: bool = True) -> int:
    """BERT WordPiece (vocab.txt); `lowercase=False` gives a cased vocabulary with accents kept."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=lowercase, strip_accents=None if lowercase else False)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(vocab_size=260, min_frequency=2, special_tokens=specials, show_progress=False)
    tok.train_from_iterator(_corpus(), trainer=trainer)
    vocab = sorted(tok.get_vocab().items(), key=lambda kv: kv[1])
    (folder / "vocab.txt").write_text("".join(token + "\n" for token, _ in vocab), encoding="utf-8")
    _write_json(
        folder / "special_tokens_map.json",
        {name.lower().strip("[]") + "_token": name for name in specials},
    )
    _write_json(
        folder / "tokenizer_config.json",
        {
            "do_lower_case": lowercase,
            "unk_token": "[UNK]",
            "sep_token": "[SEP]",
            "pad_token": "[PAD]",
            "cls_token": "[CLS]",
            "mask_token": "[MASK]",
            "tokenize_chinese_chars": True,
            "strip_accents": None,
            "model_max_length": 512,
            "clean_up_tokenization_spaces": True,
            "tokenizer_class": "BertTokenizer",
        },
    )
    return len(vocab)


def train_sentencepiece(model_type: str, vocab_size: int, byte_fallback: bool = False) -> bytes:
    """The bytes of a SentencePiece model trained on `TEXT` (`model_type` "bpe" or "unigram")."""
    import sentencepiece as spm  # test-only dependency

    buffer = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(_corpus()),
        model_writer=buffer,
        model_type=model_type,
        vocab_size=vocab_size,
        character_coverage=1.0,
        bos_id=1,
        eos_id=2,
        unk_id=0,
        pad_id=-1,
        hard_vocab_limit=False,
        byte_fallback=byte_fallback,
        minloglevel=2,
    )
    return buffer.getvalue()


def write_sentencepiece(folder: str | Path, model_type: str = "bpe", byte_fallback: bool = False) -> int:
    """XLM-R SentencePiece as in microsoft/trocr-small-*: sentencepiece.bpe.model and legacy configs only.

    `byte_fallback` adds the 256 `<0xNN>` pieces (transformers' XLM-R tokenizer ignores them, maps to <unk>)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    size = 180 if model_type == "bpe" else 120
    data = train_sentencepiece(model_type, vocab_size=size + 256 * byte_fallback, byte_fallback=byte_fallback)
    (folder / "sentencepiece.bpe.model").write_bytes(data)
    mask = _write_roberta_special_tokens(folder)
    _write_json(
        folder / "tokenizer_config.json",
        {
            "bos_token": "<s>",
            "eos_token": "</s>",
            "sep_token": "</s>",
            "cls_token": "<s>",
            "unk_token": "<unk>",
            "pad_token": "<pad>",
            "mask_token": {**mask, "normalized": True, "__type": "AddedToken"},
            "sp_model_kwargs": {},
            "model_max_length": 512,
            "special_tokens_map_file": None,
            "name_or_path": "microsoft/trocr-small-handwritten",
            "tokenizer_class": "XLMRobertaTokenizer",
        },
    )
    return _spm_piece_count(data) + 2  # fairseq layout: <pad> and <mask> join the spm pieces


def _spm_piece_count(data: bytes) -> int:
    import sentencepiece as spm

    return spm.SentencePieceProcessor(model_proto=data).get_piece_size()


def write_tokenizer_json(folder: str | Path) -> int:
    """A bare tokenizer.json (no vocab files) loaded verbatim: NFKC, Metaspace, BPE, `<s> $A </s>` template."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    specials = ["<s>", "<pad>", "</s>", "<unk>"]
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    trainer = trainers.BpeTrainer(vocab_size=200, min_frequency=2, special_tokens=specials, show_progress=False)
    tok.train_from_iterator(_corpus(), trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", 0), ("</s>", 2)]
    )
    tok.add_tokens([AddedToken("<sep/>", normalized=False)])
    tok.save(str(folder / "tokenizer.json"))
    _write_json(
        folder / "special_tokens_map.json",
        {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>"},
    )
    _write_json(
        folder / "tokenizer_config.json",
        {"model_max_length": 256, "clean_up_tokenization_spaces": True, "tokenizer_class": "PreTrainedTokenizerFast"},
    )
    return tok.get_vocab_size(with_added_tokens=True)


WRITERS: dict[str, Callable[[str | Path], int]] = {
    "gpt2-bpe": write_gpt2_bpe,
    "roberta-bpe": write_roberta_bpe,
    "wordpiece": write_wordpiece,
    "sentencepiece": write_sentencepiece,
    "tokenizer.json": write_tokenizer_json,
}
