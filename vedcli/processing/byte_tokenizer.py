"""A tokenizer for a decoder trained from scratch: the 256 bytes (byte-level, no merges) plus the special tokens of
the decoder's family, where that family's tokenizers put them. `ved compose` gives it to preset decoders."""

from __future__ import annotations

from tokenizers import AddedToken, decoders, models, pre_tokenizers
from tokenizers import Tokenizer as Backend

from .tokenizer import Tokenizer


def _byte_symbols() -> list[str]:
    """The printable character byte-level BPE writes for each byte 0..255 (GPT-2's table): printable Latin-1
    characters stand for themselves, the others for characters from U+0100 on, in byte order."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    symbols, extra = [], 0
    for byte in range(256):
        if byte in printable:
            symbols.append(chr(byte))
        else:
            symbols.append(chr(256 + extra))
            extra += 1
    return symbols


_BERT_SPECIALS = {"pad_token": "[PAD]", "unk_token": "[UNK]", "cls_token": "[CLS]", "sep_token": "[SEP]",
                  "mask_token": "[MASK]"}  # fmt: skip
_ROBERTA_SPECIALS = {"bos_token": "<s>", "pad_token": "<pad>", "eos_token": "</s>", "unk_token": "<unk>",
                     "cls_token": "<s>", "sep_token": "</s>", "mask_token": "<mask>"}  # fmt: skip
_EOT = "<|endoftext|>"
# tokenizer layout per family: (special tokens before the 256 bytes, after them, named special tokens)
BYTE_LAYOUTS: dict[str, tuple[list[str], list[str], dict[str, str]]] = {
    "gpt2": ([], [_EOT], {"bos_token": _EOT, "eos_token": _EOT, "unk_token": _EOT, "pad_token": _EOT}),
    "bert": (["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"], [], _BERT_SPECIALS),
    "roberta": (["<s>", "<pad>", "</s>", "<unk>"], ["<mask>"], _ROBERTA_SPECIALS),
}
BYTE_LAYOUT_OF = {"gpt2": "gpt2", "bert": "bert", "electra": "bert"}  # every other family: "roberta"


def byte_tokenizer(kind: str) -> Tokenizer:
    """A tokenizer for a randomly initialised decoder of model_type `kind`: the 256 bytes (byte-level, no merges)
    plus the family's special tokens, where its tokenizers put them (BERT's [PAD] = 0, RoBERTa's <pad> = 1)."""
    before, after, named = BYTE_LAYOUTS[BYTE_LAYOUT_OF.get(kind, "roberta")]
    tokens = before + _byte_symbols() + after
    backend = Backend(models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=[], fuse_unk=False))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in before + after])
    return Tokenizer(backend=backend, format="tokenizer.json", special_tokens=dict(named), family="verbatim")
