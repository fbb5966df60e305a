"""Tokenizers of published vision-encoder-decoder checkpoints, built with the `tokenizers` library alone.

A checkpoint folder carries its tokenizer in one of these layouts (`Tokenizer.format`):

    tokenizer.json               a serialized `tokenizers.Tokenizer` (may sit next to the files below)
    gpt2-bpe                     vocab.json + merges.txt, byte-level BPE, nothing added   (nlpconnect/vit-gpt2)
    roberta-bpe                  vocab.json + merges.txt, byte-level BPE, <s> x </s>      (microsoft/trocr-base-*)
    wordpiece                    vocab.txt, BERT WordPiece, [CLS] x [SEP]
    sentencepiece                sentencepiece.bpe.model, XLM-R layout, <s> x </s>        (microsoft/trocr-small-*)

plus tokenizer_config.json, special_tokens_map.json and added_tokens.json for the special and added tokens.

The result encodes and decodes exactly as transformers 5's `AutoTokenizer.from_pretrained(folder)`, which rebuilds
every tokenizer through a class picked by `tokenizer_class` (GPT2Tokenizer, RobertaTokenizer, BertTokenizer,
XLMRobertaTokenizer, ...). Those classes fix the normalizer, pre-tokenizer, decoder and post-processor themselves and
take only the vocabulary from the files, even from a tokenizer.json; so does this module, family by family
(`FAMILIES`). A tokenizer.json whose class is not one of these families is used as it stands.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tokenizers
from tokenizers import AddedToken, decoders, models, normalizers, pre_tokenizers, processors

from vedcli.checkpoints.files import read_json
from vedcli.errors import ModelError
from vedcli.processing.sentencepiece import SPM_CONTROL, SPM_USER_DEFINED, SentencePieceModel, read_sentencepiece_model
from vedcli.processing.special_tokens import BERT, GPT2, ROBERTA

TOKENIZER_FILE = "tokenizer.json"
CONFIG_FILE = "tokenizer_config.json"
SPECIAL_TOKENS_FILE = "special_tokens_map.json"
ADDED_TOKENS_FILE = "added_tokens.json"
MODEL_CONFIG_FILE = "config.json"
BPE_VOCAB_FILE, BPE_MERGES_FILE = "vocab.json", "merges.txt"
WORDPIECE_VOCAB_FILE = "vocab.txt"
SPM_FILE = "sentencepiece.bpe.model"

# Named special tokens, in the order transformers registers them.
SPECIAL_TOKEN_NAMES = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")
ADDED_TOKEN_FIELDS = ("content", "single_word", "lstrip", "rstrip", "normalized", "special")
_CLEAN_UP_BPE = "clean_up_tokenization_spaces_for_bpe_even_though_it_will_corrupt_output"  # transformers' config key


# ------------------------------------------------------------------------------------------------------------------
# Settings: tokenizer_config.json, special_tokens_map.json, added_tokens.json, read the way transformers 5 reads them.
# ------------------------------------------------------------------------------------------------------------------


def _read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in `path` (read_json), or None if there is no such file."""
    return read_json(path) if path.is_file() else None


def _added_token(value: dict[str, Any], **overrides: Any) -> AddedToken:
    """An AddedToken from its JSON form (unknown keys such as `__type` or `id` are dropped)."""
    kwargs = {key: value[key] for key in ADDED_TOKEN_FIELDS if key in value}
    kwargs.update(overrides)
    if not isinstance(kwargs.get("content"), str):
        raise ValueError(f"added token without content: {value}")
    return AddedToken(**kwargs)


def _revive_added_tokens(obj: Any) -> Any:
    """Turn `{"__type": "AddedToken", ...}` dicts anywhere in a config into AddedToken objects."""
    if isinstance(obj, dict) and obj.get("__type") == "AddedToken":
        return _added_token(obj)
    if isinstance(obj, list):
        return [_revive_added_tokens(item) for item in obj]
    if isinstance(obj, dict):
        return {key: _revive_added_tokens(value) for key, value in obj.items()}
    return obj


def _as_special(token: Any) -> Any:
    """A special-token entry as transformers keeps it: str, or AddedToken for a dict."""
    if isinstance(token, dict):
        return _added_token(token, special=True)
    return token


@dataclass
class TokenizerSettings:
    """What the config files say, merged in the order and with the quirks of transformers' `from_pretrained`."""

    options: dict[str, Any] = field(default_factory=dict)  # the other tokenizer_config.json entries
    special_tokens: dict[str, Any] = field(default_factory=dict)  # name -> str | AddedToken, as the files give them
    model_specific_tokens: dict[str, Any] = field(default_factory=dict)  # other `*_token` names (e.g. `sep2_token`)
    extra_special_tokens: list[Any] | None = None  # config's extra (or additional) special tokens; None if unset
    additional_special_tokens: list[Any] | None = None  # special_tokens_map.json's, used when the above is None
    added_tokens: dict[int, AddedToken] = field(default_factory=dict)  # id -> token, registered before the specials
    tokenizer_class: str | None = None  # without a "Fast" suffix

    @classmethod
    def from_folder(cls, folder: Path, tokenizer_json: dict[str, Any] | None) -> TokenizerSettings:
        config = _read_json(folder / CONFIG_FILE) or {}
        try:
            return cls._merge(folder, dict(config), tokenizer_json)
        except (TypeError, ValueError, AttributeError, KeyError) as err:
            raise ModelError(f"bad special or added tokens: {err}", where=str(folder)) from err

    @classmethod
    def _merge(cls, folder: Path, init: dict[str, Any], tokenizer_json: dict[str, Any] | None) -> TokenizerSettings:
        settings = cls()
        name = init.pop("tokenizer_class", None)
        settings.tokenizer_class = name.removesuffix("Fast") if isinstance(name, str) else None
        if tokenizer_json is not None:  # a tokenizer.json's own post-processor decides bos/eos
            init.pop("add_bos_token", None)
            init.pop("add_eos_token", None)
        if "additional_special_tokens" in init and not init.get("extra_special_tokens"):
            init["extra_special_tokens"] = init.pop("additional_special_tokens")
        if isinstance(init.get("extra_special_tokens"), dict):
            settings.model_specific_tokens.update(init.pop("extra_special_tokens"))

        if "added_tokens_decoder" in init:  # transformers >= 4.34 layout: the config says it all
            for index, token in (init.pop("added_tokens_decoder") or {}).items():
                token = _added_token(token) if isinstance(token, dict) else token
                if not isinstance(token, AddedToken):
                    raise TypeError(f"added_tokens_decoder[{index}] is not a token")
                settings.added_tokens[int(index)] = token
        else:  # legacy layout: special_tokens_map.json, added_tokens.json and tokenizer.json's added_tokens
            cls._merge_legacy(folder, init, tokenizer_json, settings)

        init = _revive_added_tokens(init)
        for key in list(init):
            value = init[key]
            if key in SPECIAL_TOKEN_NAMES:
                settings.special_tokens[key] = _as_special(init.pop(key))
            elif key.endswith("_token") and isinstance(value, (str, AddedToken)):
                settings.model_specific_tokens[key] = init.pop(key)
        # a given list counts even when empty: it hides the fallbacks
        for key in ("extra_special_tokens", "additional_special_tokens"):
            tokens = init.pop(key, None)
            if tokens is not None and not isinstance(tokens, list):
                raise TypeError(f"{key} is not a list")
            setattr(settings, key, None if tokens is None else [_as_special(tok) for tok in tokens])
        settings.options = init
        return settings

    @staticmethod
    def _merge_legacy(
        folder: Path, init: dict[str, Any], tokenizer_json: dict[str, Any] | None, settings: TokenizerSettings
    ) -> None:
        special_map = _read_json(folder / SPECIAL_TOKENS_FILE) or {}
        for key, value in special_map.items():
            if key == "extra_special_tokens" and isinstance(value, list):
                existing = list(init.get(key) or [])
                existing += [tok for tok in map(_as_special, value) if tok not in existing]
                init[key] = existing
            elif isinstance(value, dict) and key != "extra_special_tokens":
                init[key] = _added_token(value, special=True)
            else:  # note: an `additional_special_tokens` list stays apart (it is not special for added_tokens.json)
                init[key] = value
        if isinstance(init.get("extra_special_tokens"), dict):
            settings.model_specific_tokens.update(init.pop("extra_special_tokens"))
        named = {str(init[key]) for key in SPECIAL_TOKEN_NAMES if init.get(key)}
        named |= {str(tok) for tok in init.get("extra_special_tokens") or []}
        for content, index in (_read_json(folder / ADDED_TOKENS_FILE) or {}).items():
            special = content in named
            settings.added_tokens[int(index)] = AddedToken(
                content, rstrip=False, lstrip=False, normalized=not special, special=special
            )
        for entry in (tokenizer_json or {}).get("added_tokens") or []:
            settings.added_tokens[int(entry["id"])] = _added_token(entry)


# ------------------------------------------------------------------------------------------------------------------
# Families: how each transformers tokenizer class assembles its `tokenizers.Tokenizer`.
# ------------------------------------------------------------------------------------------------------------------


@dataclass
class _Source:
    """Where a family takes its vocabulary from: a parsed tokenizer.json, or the folder's vocabulary files."""

    folder: Path
    tokenizer_json: dict[str, Any] | None = None
    _spm: SentencePieceModel | None = None

    def sentencepiece(self) -> SentencePieceModel:
        """The folder's SentencePiece model, read once."""
        if self._spm is None:
            (path,) = self.require(SPM_FILE)
            self._spm = read_sentencepiece_model(path)
        return self._spm

    def json_model(self, expected: str) -> dict[str, Any]:
        model = self.tokenizer_json["model"]  # type: ignore[index]
        if model.get("type", expected) != expected:
            raise ModelError(f"{TOKENIZER_FILE} holds a {model.get('type')} model, expected {expected}", self.where)
        return model

    @property
    def where(self) -> str:
        return str(self.folder / TOKENIZER_FILE) if self.tokenizer_json is not None else str(self.folder)

    def require(self, *names: str) -> list[Path]:
        paths = [self.folder / name for name in names]
        missing = [p.name for p in paths if not p.is_file()]
        if missing:
            raise ModelError(f"tokenizer files missing: {', '.join(missing)}", where=str(self.folder))
        return paths


def _bpe_model(source: _Source) -> models.BPE:
    """GPT-2 / RoBERTa byte-level BPE: no unk token, no dropout, unknown symbols dropped."""
    if source.tokenizer_json is not None:
        model = source.json_model("BPE")
        vocab = model["vocab"]
        if isinstance(vocab, list):
            vocab = {token[0] if isinstance(token, list) else token: i for i, token in enumerate(vocab)}
        merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model.get("merges") or []]
    else:
        vocab_path, merges_path = source.require(BPE_VOCAB_FILE, BPE_MERGES_FILE)
        vocab, merges = models.BPE.read_file(str(vocab_path), str(merges_path))
    return models.BPE(
        vocab=vocab, merges=merges, dropout=None, continuing_subword_prefix="", end_of_word_suffix="", fuse_unk=False
    )


def _build_byte_level_bpe(source: _Source, options: dict[str, Any], specials: dict[str, Any]) -> tokenizers.Tokenizer:
    """GPT2Tokenizer and RobertaTokenizer (they differ only in special tokens and post-processor)."""
    backend = tokenizers.Tokenizer(_bpe_model(source))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=bool(options.get("add_prefix_space", False)))
    backend.decoder = decoders.ByteLevel()
    return backend


def _build_bert(source: _Source, options: dict[str, Any], specials: dict[str, Any]) -> tokenizers.Tokenizer:
    if source.tokenizer_json is not None:
        vocab = source.json_model("WordPiece")["vocab"]
        if isinstance(vocab, list):
            vocab = {token[0] if isinstance(token, list) else token: i for i, token in enumerate(vocab)}
    else:
        (vocab_path,) = source.require(WORDPIECE_VOCAB_FILE)
        vocab = models.WordPiece.read_file(str(vocab_path))
    backend = tokenizers.Tokenizer(models.WordPiece(vocab, unk_token=str(specials["unk_token"])))
    backend.normalizer = normalizers.BertNormalizer(
        clean_text=True,
        handle_chinese_chars=options.get("tokenize_chinese_chars", True),
        strip_accents=options.get("strip_accents"),
        lowercase=options.get("do_lower_case", True),
    )
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.decoder = decoders.WordPiece(prefix="##")
    return backend


def _xlm_roberta_vocab(source: _Source, specials: dict[str, Any]) -> tuple[list[tuple[str, float]], bytes | None]:
    """Unigram (piece, score) list in the fairseq layout, and the SentencePiece normalizer's charsmap."""
    if source.tokenizer_json is not None:
        vocab = [tuple(entry) for entry in source.json_model("Unigram")["vocab"]]
        charsmap = None
        spec = source.tokenizer_json.get("normalizer") or {}
        steps = spec.get("normalizers", []) if spec.get("type") == "Sequence" else [spec]
        for step in steps:
            if step.get("type") == "Precompiled" and "precompiled_charsmap" in step:
                charsmap = base64.b64decode(step["precompiled_charsmap"])
                break
        return vocab, charsmap  # type: ignore[return-value]
    spm = source.sentencepiece()
    # fairseq ids (ROBERTA's layout): <s>=0 <pad>=1 </s>=2 <unk>=3, the spm pieces after its own <unk> <s> </s>, <mask>
    vocab = [(str(specials[f"{role}_token"]), 0.0) for role in ROBERTA.first]
    vocab += [(p.piece, p.score) for p in spm.pieces[3:]]
    vocab += [(str(specials[f"{role}_token"]), 0.0) for role in ROBERTA.last]
    return vocab, spm.precompiled_charsmap or None


def _build_xlm_roberta(source: _Source, options: dict[str, Any], specials: dict[str, Any]) -> tokenizers.Tokenizer:
    vocab, charsmap = _xlm_roberta_vocab(source, specials)
    backend = tokenizers.Tokenizer(models.Unigram(vocab, unk_id=3, byte_fallback=False))
    if charsmap:
        backend.normalizer = normalizers.Precompiled(charsmap)
    scheme = "always" if options.get("add_prefix_space", True) else "never"
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Metaspace(replacement="▁", prepend_scheme=scheme)]
    )
    backend.decoder = decoders.Metaspace(replacement="▁", prepend_scheme=scheme)
    return backend


def _build_verbatim(source: _Source, options: dict[str, Any], specials: dict[str, Any]) -> tokenizers.Tokenizer:
    return tokenizers.Tokenizer.from_str(json.dumps(source.tokenizer_json))


@dataclass(frozen=True)
class Family:
    """One transformers tokenizer class: its default special tokens, its pipeline and its post-processor."""

    name: str
    format: str  # Tokenizer.format when the folder has no tokenizer.json
    defaults: dict[str, str | None]  # the class's default special tokens
    build: Callable[[_Source, dict[str, Any], dict[str, Any]], tokenizers.Tokenizer]
    post_processor: str  # "template" (add_bos/eos_token), "roberta", "bert", "xlm-roberta" or "file" (keep)


FAMILIES: dict[str, Family] = {
    "gpt2": Family(
        name="gpt2",
        format="gpt2-bpe",
        defaults=GPT2.named(),
        build=_build_byte_level_bpe,
        post_processor="template",
    ),
    "roberta": Family(
        name="roberta",
        format="roberta-bpe",
        defaults=ROBERTA.named(),
        build=_build_byte_level_bpe,
        post_processor="roberta",
    ),
    "bert": Family(
        name="bert",
        format="wordpiece",
        defaults=BERT.named(),
        build=_build_bert,
        post_processor="bert",
    ),
    "xlm-roberta": Family(
        name="xlm-roberta",
        format="sentencepiece",
        defaults=ROBERTA.named(),
        build=_build_xlm_roberta,
        post_processor="xlm-roberta",
    ),
    "verbatim": Family(
        name="verbatim",
        format=TOKENIZER_FILE,
        defaults={},
        build=_build_verbatim,
        post_processor="file",
    ),
}

# transformers class names (without "Fast") -> family.
CLASS_FAMILIES = {
    "GPT2Tokenizer": "gpt2",
    "RobertaTokenizer": "roberta",
    "BartTokenizer": "roberta",
    "BertTokenizer": "bert",
    "DistilBertTokenizer": "bert",
    "ElectraTokenizer": "bert",
    "XLMRobertaTokenizer": "xlm-roberta",
    "PreTrainedTokenizer": "verbatim",  # PreTrainedTokenizerFast, the generic tokenizer.json class
    "TokenizersBackend": "verbatim",  # its transformers 5 name
}


def _model_type(folder: Path) -> str | None:
    """The decoder's model_type from config.json (composite or bare decoder config), if any."""
    try:
        config = _read_json(folder / MODEL_CONFIG_FILE)
    except ModelError:
        return None
    if not isinstance(config, dict):
        return None
    decoder = config.get("decoder")
    model_type = decoder.get("model_type") if isinstance(decoder, dict) else config.get("model_type")
    return model_type if isinstance(model_type, str) else None


def _pick_family(folder: Path, class_name: str | None, has_json: bool) -> Family:
    """The family for a folder: its tokenizer_class, else the decoder's model type, else the files present."""
    if class_name is not None:
        if class_name in CLASS_FAMILIES:
            return FAMILIES[CLASS_FAMILIES[class_name]]
        if has_json:  # an unknown class: its tokenizer.json is the best description we have
            return FAMILIES["verbatim"]
        raise ModelError(f"unsupported tokenizer class {class_name} (and no {TOKENIZER_FILE})", where=str(folder))
    if has_json:
        return FAMILIES["verbatim"]
    if (folder / SPM_FILE).is_file():
        return FAMILIES["xlm-roberta"]
    if (folder / WORDPIECE_VOCAB_FILE).is_file():
        return FAMILIES["bert"]
    if (folder / BPE_VOCAB_FILE).is_file():
        from vedcli.registry import decoder_family  # on first use: the registry imports the models (and torch)

        named = getattr(decoder_family(_model_type(folder)), "tokenizer", None)  # the decoder record's family
        if named is not None:
            return FAMILIES[named]
        vocab = _read_json(folder / BPE_VOCAB_FILE) or {}
        return FAMILIES["roberta" if "<s>" in vocab and "</s>" in vocab else "gpt2"]
    raise ModelError(
        f"no tokenizer files ({TOKENIZER_FILE}, {BPE_VOCAB_FILE} + {BPE_MERGES_FILE}, {WORDPIECE_VOCAB_FILE} "
        f"or {SPM_FILE})",
        where=str(folder),
    )


def _file_post_processor(tokenizer_json: dict[str, Any]) -> Any:
    """The post-processor a tokenizer.json declares, read without building its (large) vocabulary."""
    if tokenizer_json.get("post_processor") is None:
        return None
    slim = dict(tokenizer_json, added_tokens=[])
    if slim["model"].get("type") not in (None, "Unigram"):
        slim["model"] = dict(slim["model"], vocab={})
        if "merges" in slim["model"]:
            slim["model"]["merges"] = []
    return tokenizers.Tokenizer.from_str(json.dumps(slim)).post_processor


def _register_added_tokens(
    backend: tokenizers.Tokenizer, added: dict[int, AddedToken], named: dict[str, Any], extras: list[Any]
) -> None:
    """Add the config's added tokens, then every special token not yet there, in transformers' order."""
    to_add: list[Any] = [token for _, token in sorted(added.items(), key=lambda item: item[0])]
    existing = [token.content for _, token in sorted(backend.get_added_tokens_decoder().items())]
    seen = existing + [str(token) for token in to_add]
    for token in [*(v for v in named.values() if v is not None), *extras]:
        if str(token) not in seen and token not in to_add:
            to_add.append(token)
    named_contents = [str(value) for value in named.values() if value]
    final = []
    for token in to_add:
        if isinstance(token, str):
            token = AddedToken(token, special=True)
        elif not token.special and str(token) in named_contents:
            token.special = True
        final.append(token)
    if final:
        backend.add_tokens(final)


def _set_post_processor(
    backend: tokenizers.Tokenizer,
    family: Family,
    named: dict[str, Any],
    options: dict[str, Any],
    tokenizer_json: dict[str, Any] | None,
) -> None:
    """Install the post-processor the family's transformers class installs."""

    def ident(name: str) -> int | None:  # every named token is in the vocabulary by now
        value = named.get(name)
        return None if value is None else backend.token_to_id(str(value))

    kind = family.post_processor
    if kind == "file":  # the verbatim tokenizer.json already has its own
        return
    if kind == "template":
        from_file = _file_post_processor(tokenizer_json) if tokenizer_json is not None else None
        if from_file is not None:
            backend.post_processor = from_file
            return
        add_bos = bool(options.get("add_bos_token", False)) and named.get("bos_token") is not None
        add_eos = bool(options.get("add_eos_token", False)) and named.get("eos_token") is not None
        bos, eos = str(named.get("bos_token")), str(named.get("eos_token"))
        single = f"{bos + ':0 ' if add_bos else ''}$A:0{' ' + eos + ':0' if add_eos else ''}"
        pair = f"{single}{' ' + bos + ':1' if add_bos else ''} $B:1{' ' + eos + ':1' if add_eos else ''}"
        specials = ([(bos, ident("bos_token"))] if add_bos else []) + ([(eos, ident("eos_token"))] if add_eos else [])
        backend.post_processor = processors.TemplateProcessing(single=single, pair=pair, special_tokens=specials)
    elif kind == "roberta":
        sep, cls = str(named["sep_token"]), str(named["cls_token"])
        backend.post_processor = processors.RobertaProcessing(
            (sep, ident("sep_token")),
            (cls, ident("cls_token")),
            trim_offsets=bool(options.get("trim_offsets", True)),
            add_prefix_space=bool(options.get("add_prefix_space", False)),
        )
    elif kind == "bert":
        cls, sep = str(named.get("cls_token")), str(named.get("sep_token"))
        cls_id, sep_id = ident("cls_token"), ident("sep_token")
        backend.post_processor = processors.TemplateProcessing(
            single=f"{cls}:0 $A:0 {sep}:0",
            pair=f"{cls}:0 $A:0 {sep}:0 $B:1 {sep}:1",
            special_tokens=[(cls, 2 if cls_id is None else cls_id), (sep, 3 if sep_id is None else sep_id)],
        )
    elif kind == "xlm-roberta":
        bos, eos = str(named["bos_token"]), str(named["eos_token"])
        backend.post_processor = processors.TemplateProcessing(
            single=[bos, "$A", eos],
            pair=[bos, "$A", eos, eos, "$B", eos],
            special_tokens=[(bos, ident("bos_token")), (eos, ident("eos_token"))],
        )


def _spm_extra_tokens(spm: SentencePieceModel) -> list[AddedToken]:
    """Control and user-defined pieces of a SentencePiece model, which transformers registers as added tokens."""
    return [
        AddedToken(p.piece, normalized=False, special=p.type == SPM_CONTROL)
        for p in spm.pieces
        if p.type in (SPM_CONTROL, SPM_USER_DEFINED)
    ]


# ------------------------------------------------------------------------------------------------------------------
# The tokenizer.
# ------------------------------------------------------------------------------------------------------------------


def clean_up_tokenization(text: str) -> str:
    """transformers' `clean_up_tokenization`: drop the spaces WordPiece-style decoding leaves before punctuation."""
    for before, after in ((" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"),
                          (" 'm", "'m"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re")):  # fmt: skip
        text = text.replace(before, after)
    return text


def _as_id_list(ids: Any) -> list[int]:
    """A flat list of ints from a list, tuple, 1-D tensor or array."""
    if hasattr(ids, "tolist"):
        ids = ids.tolist()
    if isinstance(ids, int):
        return [ids]
    if any(isinstance(i, (list, tuple)) for i in ids):
        raise ValueError("decode takes one sequence of ids; use batch_decode for several")
    return [int(i) for i in ids]


@dataclass
class Tokenizer:
    """A `tokenizers.Tokenizer` plus the special-token facts transformers keeps beside it."""

    backend: tokenizers.Tokenizer = field(repr=False)  # its repr lists the whole vocabulary
    format: str  # "tokenizer.json" | "gpt2-bpe" | "roberta-bpe" | "wordpiece" | "sentencepiece"
    special_tokens: dict[str, str] = field(default_factory=dict)  # bos_token, eos_token, ... -> token text
    extra_special_tokens: list[str] = field(default_factory=list)  # additional special tokens, as text
    model_max_length: int | None = None  # tokenizer_config.json's limit, if it gives one
    clean_up_tokenization_spaces: bool = False  # as the config says; transformers skips it for BPE models ...
    clean_up_bpe: bool = False  # ... unless the config sets _CLEAN_UP_BPE
    family: str = "verbatim"  # the FAMILIES entry that built the backend

    def token_id(self, name: str) -> int | None:
        """Id of a named special token ("bos_token", "sep_token", ...), None if the tokenizer has none."""
        text = self.special_tokens.get(name)
        return None if text is None else self.backend.token_to_id(text)

    @property
    def bos_token_id(self) -> int | None:
        return self.token_id("bos_token")

    @property
    def eos_token_id(self) -> int | None:
        return self.token_id("eos_token")

    @property
    def pad_token_id(self) -> int | None:
        return self.token_id("pad_token")

    @property
    def unk_token_id(self) -> int | None:
        return self.token_id("unk_token")

    @property
    def vocab_size(self) -> int:
        """Number of ids, added tokens included (transformers' `len(tokenizer)`)."""
        return self.backend.get_vocab_size(with_added_tokens=True)

    def __len__(self) -> int:
        return self.vocab_size

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        """Token ids of `text`, with the family's special tokens around it unless told otherwise."""
        return self.backend.encode(text, add_special_tokens=add_special_tokens).ids

    def decode(self, ids: Sequence[int] | Any, skip_special_tokens: bool = True) -> str:
        """Text of one id sequence (list, tuple or 1-D tensor), exactly as transformers' `decode` gives it."""
        text = self.backend.decode(_as_id_list(ids), skip_special_tokens=skip_special_tokens)
        if self.clean_up_tokenization_spaces and (self.clean_up_bpe or type(self.backend.model).__name__ != "BPE"):
            text = clean_up_tokenization(text)
        return text

    def batch_decode(self, seqs: Sequence[Sequence[int]] | Any, skip_special_tokens: bool = True) -> list[str]:
        """`decode` for each row of a list of sequences or a 2-D tensor."""
        rows = seqs.tolist() if hasattr(seqs, "tolist") else seqs
        return [self.decode(row, skip_special_tokens=skip_special_tokens) for row in rows]

    def save(self, folder: str | Path) -> None:
        """Write tokenizer.json, tokenizer_config.json and special_tokens_map.json; ved and transformers both load
        the result verbatim (class PreTrainedTokenizerFast) and get this tokenizer back."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.backend.save(str(folder / TOKENIZER_FILE))
        added = {
            str(index): {
                "content": token.content,
                "lstrip": token.lstrip,
                "normalized": token.normalized,
                "rstrip": token.rstrip,
                "single_word": token.single_word,
                "special": token.special,
            }
            for index, token in sorted(self.backend.get_added_tokens_decoder().items())
        }
        config: dict[str, Any] = {
            "tokenizer_class": "PreTrainedTokenizerFast",
            "clean_up_tokenization_spaces": self.clean_up_tokenization_spaces,
            "added_tokens_decoder": added,
            **self.special_tokens,
        }
        if self.extra_special_tokens:
            config["extra_special_tokens"] = list(self.extra_special_tokens)
        if self.clean_up_bpe:
            config[_CLEAN_UP_BPE] = True
        if self.model_max_length is not None:
            config["model_max_length"] = self.model_max_length
        special_map: dict[str, Any] = dict(self.special_tokens)
        if self.extra_special_tokens:
            special_map["additional_special_tokens"] = list(self.extra_special_tokens)
        for name, obj in ((CONFIG_FILE, config), (SPECIAL_TOKENS_FILE, special_map)):
            (folder / name).write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _has_model(tokenizer_json: Any) -> bool:
    return isinstance(tokenizer_json, dict) and isinstance(tokenizer_json.get("model"), dict)


def load_tokenizer(folder: str | Path) -> Tokenizer:
    """Load the tokenizer of a checkpoint folder; raises ModelError (where=folder) when there is none or it is bad."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ModelError("tokenizer folder not found", where=str(folder))
    tokenizer_json = _read_json(folder / TOKENIZER_FILE)
    if tokenizer_json is not None and not _has_model(tokenizer_json):
        raise ModelError(f"{TOKENIZER_FILE} has no model", where=str(folder / TOKENIZER_FILE))
    settings = TokenizerSettings.from_folder(folder, tokenizer_json)
    family = _pick_family(folder, settings.tokenizer_class, tokenizer_json is not None)
    if family.name == "verbatim" and tokenizer_json is None:
        raise ModelError(f"tokenizer class {settings.tokenizer_class} needs a {TOKENIZER_FILE}", where=str(folder))

    named: dict[str, Any] = {}
    for name in SPECIAL_TOKEN_NAMES:
        value = settings.special_tokens.get(name, family.defaults.get(name))
        if value is not None:
            named[name] = value
    named.update(settings.model_specific_tokens)
    source = _Source(folder, tokenizer_json)
    extras = settings.extra_special_tokens
    if extras is None and family.name == "xlm-roberta" and tokenizer_json is None:
        extras = _spm_extra_tokens(source.sentencepiece())  # transformers puts these over the map's additional ones
    elif extras is None:
        extras = settings.additional_special_tokens
    try:
        backend = family.build(source, settings.options, {**family.defaults, **named})
        _register_added_tokens(backend, settings.added_tokens, named, list(extras or []))
        _set_post_processor(backend, family, named, settings.options, tokenizer_json)
        backend.no_padding()
        backend.no_truncation()
        backend.encode_special_tokens = bool(settings.options.get("split_special_tokens", False))
    except ModelError:
        raise
    except Exception as err:  # tokenizers raises plain Exception subclasses on bad vocabularies and JSON
        raise ModelError(f"cannot build the tokenizer: {err}", where=str(folder)) from err

    options = settings.options
    max_length = options.get("model_max_length", options.get("max_len"))
    return Tokenizer(
        backend=backend,
        format=TOKENIZER_FILE if tokenizer_json is not None else family.format,
        special_tokens={name: str(value) for name, value in named.items()},
        extra_special_tokens=[str(token) for token in extras or []],
        model_max_length=int(max_length) if isinstance(max_length, (int, float)) else None,
        clean_up_tokenization_spaces=bool(options.get("clean_up_tokenization_spaces", False)),
        clean_up_bpe=bool(options.get(_CLEAN_UP_BPE, False)),
        family=family.name,
    )
