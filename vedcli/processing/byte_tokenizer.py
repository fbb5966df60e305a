"""A tokenizer for a decoder trained from scratch: the 256 bytes (byte-level, no merges) plus the special tokens of
the decoder's family, where that family's tokenizers put them. `ved compose` gives it to preset decoders."""

from __future__ import annotations

from tokenizers import AddedToken, decoders, models, pre_tokenizers
from tokenizers import Tokenizer as Backend

from .special_tokens import TokenSet
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


def byte_tokenizer(tokens: TokenSet) -> Tokenizer:
    """A tokenizer for a randomly initialised decoder whose family uses `tokens` (its record's): the 256 bytes
    (byte-level, no merges) plus those special tokens, where its tokenizers put them (BERT's [PAD] = 0, RoBERTa's
    <pad> = 1)."""
    before, after = tokens.layout()
    vocab = before + _byte_symbols() + after
    backend = Backend(models.BPE(vocab={t: i for i, t in enumerate(vocab)}, merges=[], fuse_unk=False))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in before + after])
    return Tokenizer(backend=backend, format="tokenizer.json", special_tokens=tokens.named(), family="verbatim")
