"""The special tokens of each tokenizer family ved knows, as text, by role: the one table that the tokenizer loader
(a class's defaults), the byte-level tokenizer of a new decoder and `ved compose` (which tokens start, end and pad
a caption) read. Each decoder's record (vedcli/family.py) names the set its tokenizers use."""

from __future__ import annotations

from dataclasses import dataclass

ROLES = ("bos", "eos", "unk", "sep", "pad", "cls", "mask")  # transformers' order of the named special tokens


@dataclass(frozen=True)
class TokenSet:
    """One family's special tokens by role (None: the family has no such token), and where a vocabulary of the 256
    bytes made for it puts them, as its own vocabularies do (BERT's [PAD] = 0; RoBERTa's <s> <pad> </s> <unk> first
    and <mask> last)."""

    bos: str | None = None
    eos: str | None = None
    unk: str | None = None
    sep: str | None = None
    pad: str | None = None
    cls: str | None = None
    mask: str | None = None
    first: tuple[str, ...] = ()  # roles whose tokens come before the 256 bytes, in this order
    last: tuple[str, ...] = ()  # roles whose tokens come after them

    def token(self, role: str) -> str | None:
        """The token text of `role` ("bos", "sep", ...)."""
        if role not in ROLES:
            raise ValueError(f"no special-token role {role!r} (roles: {', '.join(ROLES)})")
        return getattr(self, role)

    def named(self) -> dict[str, str]:
        """The tokens as tokenizer_config.json names them ("bos_token": "<s>", ...), in transformers' order."""
        return {f"{role}_token": text for role in ROLES if (text := getattr(self, role)) is not None}

    def layout(self) -> tuple[list[str], list[str]]:
        """The token texts before and after the 256 bytes of a byte-level vocabulary, each once."""
        return [self.token(r) for r in self.first], [self.token(r) for r in self.last]  # type: ignore[misc]


EOT = "<|endoftext|>"
# GPT2Tokenizer: one end-of-text token for every role it has; it has no pad token
GPT2 = TokenSet(bos=EOT, eos=EOT, unk=EOT, last=("eos",))
# BertTokenizer (and DistilBERT's, ELECTRA's)
BERT = TokenSet(unk="[UNK]", sep="[SEP]", pad="[PAD]", cls="[CLS]", mask="[MASK]",
                first=("pad", "unk", "cls", "sep", "mask"))  # fmt: skip
# RobertaTokenizer, XLMRobertaTokenizer, BART's and TrOCR's: fairseq's dictionary layout
ROBERTA = TokenSet(bos="<s>", eos="</s>", unk="<unk>", sep="</s>", pad="<pad>", cls="<s>", mask="<mask>",
                   first=("bos", "pad", "eos", "unk"), last=("mask",))  # fmt: skip
