"""`ved compose`: a new image-to-text model from a vision encoder and a language model.

Each side is a preset (a published config from `configs/`, randomly initialised) or a pretrained checkpoint (hub id
or folder) of an encoder-only vision model or a language model. The result is a Hugging Face-format
VisionEncoderDecoder folder that ved and transformers both load:

    sides -> composite config.json -> ved model on the meta device -> HF-named tensors:
        pretrained tensors exactly as the sources hold them,
        new ones (cross-attention, enc_to_dec_proj, heads a source lacks, whole presets) initialised as the
        reference's `_init_weights` initialises them
    -> strict load (a wrong mapping fails loudly) -> atomic write with tokenizer, image processor, generation config

DistilBERT, which the reference cannot use as a decoder, is written as a BERT decoder (`distilbert_as_bert`): the
same weights under BERT's names, zero token-type embeddings, causal self-attention and new cross-attention.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import torch
from torch import Tensor

from ..checkpoints import presets
from ..checkpoints.builtin import is_builtin
from ..checkpoints.dtypes import stored_dtype
from ..checkpoints.files import load_state_dict, read_json
from ..checkpoints.hub import resolve_model
from ..checkpoints.init import init_tensor
from ..checkpoints.load import resolve_dtype
from ..checkpoints.safety import check_not_inside, check_replaceable
from ..checkpoints.save import atomic_folder, save_pretrained
from ..checkpoints.weights import LEGACY_SUFFIXES, to_hf
from ..config import ModelConfig
from ..errors import ModelError, OptionError, option
from ..generation.defaults import GenerationConfig
from ..model import VisionEncoderDecoder, model_config
from ..processing.byte_tokenizer import byte_tokenizer
from ..processing.image import (
    NESTED_PROCESSOR_FILE,
    PROCESSOR_FILE,
    ImageProcessor,
    ImageProcessorConfig,
    load_image_processor,
)
from ..processing.tokenizer import Tokenizer, load_tokenizer
from ..registry import DECODERS, ENCODERS, decoder_family, encoder_family, field_name

ARGUMENT = {"encoder": "ENCODER", "decoder": "DECODER"}  # the command-line argument each side comes from
OVERRIDES = {side: option(f"{side}_overrides") for side in ARGUMENT}  # the option of each side's config changes
REVISION = {side: option(f"revision_{side}") for side in ARGUMENT}


@dataclass
class ComposeOptions:
    """What `ved compose` was asked for."""

    encoder: str  # preset name, hub id or folder
    decoder: str
    output: str | Path
    encoder_overrides: list[str] = field(default_factory=list)  # KEY=VALUE, as --encoder-config gives them
    decoder_overrides: list[str] = field(default_factory=list)
    tokenizer: str | None = None  # hub id or folder whose tokenizer the model gets
    revision_encoder: str | None = None
    revision_decoder: str | None = None
    seed: int = 0  # for the new tensors
    dtype: str | None = None  # fp32 | fp16 | bf16; None: the pretrained parts' dtype, else fp32
    force: bool = False  # replace an existing output folder


@dataclass
class Part:
    """One side of the composite: its HF config dict and, when pretrained, its tensors by side-relative HF name
    (`embeddings.cls_token`, `bert.encoder.layer.0...`: the names inside a VisionEncoderDecoder after `encoder.` /
    `decoder.`)."""

    side: str  # "encoder" | "decoder"
    name: str  # as the user gave it
    config: dict[str, Any]
    folder: Path | None = None  # the checkpoint folder; None for a preset
    state: dict[str, Tensor] = field(default_factory=dict, repr=False)
    source_type: str | None = None  # the model_type the source had (distilbert before it became bert)
    notes: list[str] = field(default_factory=list)

    @property
    def pretrained(self) -> bool:
        return self.folder is not None

    @property
    def kind(self) -> str:
        return self.config["model_type"]

    def describe(self) -> str:
        """ "vit-base preset (vit, random init)", "./my-bert (bert, pretrained)"."""
        kind = self.kind if self.source_type in (None, self.kind) else f"{self.source_type} as {self.kind}"
        if self.pretrained:
            return f"{self.name} ({kind}, pretrained)"
        return f"{presets.get_preset(self.name, self.side).name} preset ({kind}, random init)"  # type: ignore[arg-type]


@dataclass
class TokenIds:
    """The special tokens that join encoder and decoder: where decoding starts, where it ends, what pads."""

    start: int
    eos: int
    pad: int
    bos: int | None = None


@dataclass
class Composition:
    """What `compose` wrote, for the command's summary."""

    folder: Path
    encoder: str  # Part.describe()
    decoder: str
    parameters: int
    dtype: torch.dtype
    tokens: TokenIds
    token_text: dict[str, str]  # start / eos / pad -> token text
    vocab_size: int
    new: list[str]  # the new tensors, grouped for people ("decoder cross-attention (12 layers)")
    new_keys: list[str]  # their HF names, as written
    notes: list[str]  # left-out source tensors, conversions, hints
    files: list[str]


def compose(options: ComposeOptions) -> Composition:
    """Build the model `options` describe and write it to `options.output` (atomically)."""
    target = Path(options.output)
    check_replaceable(target, options.force)  # before anything is loaded or downloaded
    sources = [
        (f"the {side}", name)
        for side, name in (
            ("encoder", options.encoder),
            ("decoder", options.decoder),
            ("tokenizer source", options.tokenizer),
        )
    ]
    check_not_inside(target, [(what, name) for what, name in sources if name and is_checkpoint_name(name)])
    out_dtype = resolve_dtype(options.dtype) if options.dtype is not None else None
    enc = load_part(options.encoder, "encoder", options.encoder_overrides, options.revision_encoder)
    dec = load_part(options.decoder, "decoder", options.decoder_overrides, options.revision_decoder)
    notes = enc.notes + dec.notes

    dec_given = _override_keys(options.decoder_overrides, dec.source_type)
    enc_given = _override_keys(options.encoder_overrides, enc.source_type)
    tokenizer = _tokenizer(options.tokenizer, dec)
    _fit_vocab(dec, tokenizer, options.tokenizer is not None, dec_given)
    ids, text = special_tokens(dec.kind, tokenizer, dec.config, dec_given)
    if not dec.pretrained:  # a random decoder's own ids follow its tokenizer (RoBERTa's positions start after pad)
        wanted = {"bos_token_id": ids.bos, "eos_token_id": ids.eos, "pad_token_id": ids.pad,
                  "decoder_start_token_id": ids.start}  # fmt: skip
        dec.config.update({k: v for k, v in wanted.items() if k not in dec_given})
    _match_cross_attention(enc, dec, notes)
    _size_bart_cache(dec, notes)

    cfg = model_config(composite_config(enc.config, dec.config, ids), "composed config")
    with torch.device("meta"):
        model = VisionEncoderDecoder(cfg)
    generator = torch.Generator().manual_seed(options.seed)
    state, extra, new_keys = assemble(model, enc, dec, generator, notes)
    model.load_hf_state_dict(state, "composed model")

    dtype = out_dtype or _common_dtype([enc, dec])
    processor = image_processor(enc, cfg, enc_given)
    generation = GenerationConfig(decoder_start_token_id=ids.start, bos_token_id=ids.bos, eos_token_id=ids.eos,
                                  pad_token_id=ids.pad)  # fmt: skip
    with atomic_folder(target, options.force) as tmp:
        files = save_pretrained(model, tmp, tokenizer=tokenizer, processor=processor, generation=generation,
                                extra=extra, dtype=dtype)  # fmt: skip
    parameters = sum(p.numel() for p in model.parameters())
    return Composition(
        folder=target,
        encoder=enc.describe(),
        decoder=dec.describe(),
        parameters=parameters,
        dtype=dtype,
        tokens=ids,
        token_text=text,
        vocab_size=cfg.decoder.vocab_size,
        new=describe_new(new_keys, [*state, *extra]),
        new_keys=new_keys,
        notes=notes,
        files=files,
    )


# ------------------------------------------------------------------------------------------------------------------
# Sides: a preset or a pretrained checkpoint, as a config dict and HF-named tensors.
# ------------------------------------------------------------------------------------------------------------------


def is_checkpoint_name(name: str) -> bool:
    """A built-in model, an existing folder, or a name with "/" (a hub id or a path) is a checkpoint; anything else
    a preset name."""
    return is_builtin(name) or Path(name).expanduser().is_dir() or "/" in name


def load_part(name: str, side: str, overrides: list[str], revision: str | None = None) -> Part:
    """The encoder or decoder `name` stands for, with `overrides` (KEY=VALUE) applied to its config."""
    where = OVERRIDES[side]
    if is_checkpoint_name(name):
        part = _pretrained_part(name, side, overrides, revision)
    else:
        if revision is not None:
            raise OptionError(f"{REVISION[side]} applies to hub models, not to the preset '{name}'", REVISION[side])
        config = presets.apply_overrides(presets.load_preset(name, side), overrides, where)  # type: ignore[arg-type]
        part = Part(side, name, config)
    part.source_type = part.kind
    record = decoder_family(part.kind) if side == "decoder" else None
    if record is not None and record.as_decoder is not None:  # DistilBERT: written as a BERT decoder
        part.config, part.state = record.as_decoder(part.config, part.state)
    if record is not None and record.note is not None:
        part.notes.append(record.note)
    _check_family(part)
    _check_config(part, overrides)
    return part


def _check_config(part: Part, overrides: list[str]) -> None:
    """Read the side's config as the model will (every field checked, its size against this machine's memory), so
    a bad value is refused before anything is built; one that --encoder-config / --decoder-config set names it."""
    from ..decoders import decoder_config, decoder_parameters
    from ..encoders import encoder_config, encoder_parameters
    from ..validate import ConfigFieldError, check_memory

    where = str(part.folder / "config.json") if part.pretrained else f"preset {part.name}"
    try:
        if part.side == "encoder":
            check_memory(encoder_parameters(encoder_config(part.config, where)), 4, where, "encoder")
        else:
            check_memory(decoder_parameters(decoder_config(part.config, where)), 4, where, "decoder")
    except ConfigFieldError as error:
        if overrides and (not error.keys or set(error.keys) & _override_keys(overrides, part.source_type)):
            raise OptionError(error.raw_message, OVERRIDES[part.side]) from None
        raise


def _pretrained_part(name: str, side: str, overrides: list[str], revision: str | None) -> Part:
    try:
        folder = resolve_model(name, revision)
    except OptionError as error:
        if error.option == "revision":  # the hub module's revision is this side's
            message = error.raw_message.replace(option("revision"), REVISION[side])
            raise OptionError(message, REVISION[side]) from None
        raise
    config = read_json(folder / "config.json")
    prefix = ""
    if config.get("model_type") == "vision-encoder-decoder":  # one half of a published composite
        if not isinstance(config.get(side), dict):
            raise ModelError(f"vision-encoder-decoder config without an {side} section", str(folder))
        config, prefix = dict(config[side]), side + "."
    if "model_type" not in config:
        raise ModelError("config.json names no model_type", str(folder / "config.json"))
    config = presets.apply_overrides(config, overrides, OVERRIDES[side])
    if side == "encoder":  # as the reference does: whatever the source was, it is an encoder now
        config.pop("is_decoder", None)
        config.pop("add_cross_attention", None)
    _check_family(Part(side, name, config))  # before reading its weights
    state = {_modern(k[len(prefix) :]): v for k, v in load_state_dict(folder).items() if k.startswith(prefix)}
    return Part(side, name, config, folder, state)


def _check_family(part: Part) -> None:
    if part.side == "encoder":
        families, what = ENCODERS, "an image encoder"
    else:
        families, what = DECODERS, "a language model ved can use as a decoder"
    kind = part.config.get("model_type")
    if kind not in families:
        supported = ", ".join(sorted(families))
        raise OptionError(f"'{part.name}' is a {kind} model, not {what} (supported: {supported})", ARGUMENT[part.side])


def _modern(key: str) -> str:
    """Old TF-converted checkpoints name LayerNorm parameters gamma/beta."""
    for old, new in LEGACY_SUFFIXES:
        if key.endswith(old):
            return key[: -len(old)] + new
    return key


def _override_keys(overrides: list[str], kind: str | None) -> set[str]:
    """The config fields `overrides` set (an alias counts as the field it names in a `kind` config)."""
    return {field_name(kind, item.partition("=")[0].strip()) for item in overrides}


def _common_dtype(parts: list[Part]) -> torch.dtype:
    """The pretrained parts' floating dtype when they agree on one ved writes, else float32."""
    return stored_dtype(t for p in parts for t in p.state.values())


# ------------------------------------------------------------------------------------------------------------------
# Tokenizer, special tokens, vocabulary size.
# ------------------------------------------------------------------------------------------------------------------

ROLES = ("start", "eos", "pad")
# where a role's id is looked for when the family's token is not in the vocabulary: tokenizer roles, config keys
TOKENIZER_ROLES = {"start": ("cls_token", "bos_token"), "eos": ("sep_token", "eos_token"), "pad": ("pad_token",)}
CONFIG_KEYS = {"start": ("decoder_start_token_id", "bos_token_id"), "eos": ("eos_token_id",), "pad": ("pad_token_id",)}


def _tokenizer(source: str | None, dec: Part) -> Tokenizer:
    """--tokenizer's, else the pretrained decoder's, else a byte-level one with the family's special tokens."""
    if source is not None:
        return load_tokenizer(resolve_model(source))
    if dec.pretrained:
        try:
            return load_tokenizer(dec.folder)  # type: ignore[arg-type]
        except ModelError as error:
            raise ModelError(f"{error.raw_message}; give one with {option('tokenizer')}", error.raw_where) from None
    return byte_tokenizer(decoder_family(dec.kind).tokens)  # type: ignore[union-attr]


def _fit_vocab(dec: Part, tokenizer: Tokenizer, given: bool, overridden: set[str]) -> None:
    """A preset decoder's vocabulary is its tokenizer's (unless --decoder-config sets it); none may be too small."""
    size = len(tokenizer)
    if not dec.pretrained and "vocab_size" not in overridden:
        dec.config["vocab_size"] = size
    vocab = dec.config.get("vocab_size")
    if isinstance(vocab, int) and vocab < size:
        source = option("tokenizer") if given else ARGUMENT["decoder"]
        where = OVERRIDES["decoder"] if "vocab_size" in overridden else source
        raise OptionError(f"the tokenizer has {size} tokens but the decoder's vocab_size is {vocab}", where)


def special_tokens(
    kind: str, tokenizer: Tokenizer, config: dict[str, Any], overridden: Collection[str] = ()
) -> tuple[TokenIds, dict[str, str]]:
    """Start, end and pad ids for a decoder of model_type `kind`: ids the user set with --decoder-config, else the
    family's tokens (its record's start, end and pad) looked up in the tokenizer, else the tokenizer's own roles,
    else the decoder config's ids. GPT-2 pads with its end-of-text token."""
    record = decoder_family(kind)
    tokens = record.tokens  # type: ignore[union-attr]
    family = (tokens.token(record.start), tokens.token(record.end), tokens.pad)  # type: ignore[union-attr]
    ids: dict[str, int | None] = {}
    for role, token in zip(ROLES, family, strict=True):
        keys = CONFIG_KEYS[role]
        ids[role] = next((config[k] for k in keys if k in overridden and config.get(k) is not None), None)
        if ids[role] is None:
            ids[role] = tokenizer.backend.token_to_id(token)
        if ids[role] is None:
            found = (tokenizer.token_id(r) for r in TOKENIZER_ROLES[role])
            ids[role] = next((i for i in found if i is not None), None)
        if ids[role] is None:
            ids[role] = next((config[k] for k in keys if isinstance(config.get(k), int)), None)
    if ids["pad"] is None:
        ids["pad"] = ids["eos"]
    missing = [role for role in ROLES if ids[role] is None]
    if missing:
        raise OptionError(f"cannot tell the decoder's {' and '.join(missing)} token: the tokenizer has no "
                          f"{' or '.join(family[ROLES.index(r)] for r in missing)}", option("tokenizer"))  # fmt: skip
    bos = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else ids["start"]
    result = TokenIds(ids["start"], ids["eos"], ids["pad"], bos)  # type: ignore[arg-type]
    text = {role: tokenizer.backend.id_to_token(getattr(result, role)) or "?" for role in ROLES}
    return result, text


# ------------------------------------------------------------------------------------------------------------------
# The composite config.
# ------------------------------------------------------------------------------------------------------------------


def _match_cross_attention(enc: Part, dec: Part, notes: list[str]) -> None:
    """A decoder that declares the width its cross-attention reads (TrOCR) must read this encoder's. A TrOCR
    decoder that declares none reads the encoder's features directly too, as the published TrOCR models do,
    rather than through an added enc_to_dec_proj."""
    declared = dec.config.get("cross_attention_hidden_size")
    width = encoder_width(enc.config)
    reads_width = getattr(decoder_family(dec.kind), "reads_encoder_width", False)
    if declared is None and reads_width and dec.config.get("d_model") != width:
        dec.config["cross_attention_hidden_size"] = width
    elif declared is not None and declared != width:
        dec.config["cross_attention_hidden_size"] = width
        notes.append(f"cross_attention_hidden_size set to the encoder's width {width} (was {declared})")


def _size_bart_cache(dec: Part, notes: list[str]) -> None:
    """BART's num_hidden_layers means its encoder_layers, and transformers' generate sizes the decoder's cache by
    it: a BART-derived decoder needs at least as many (unused) encoder layers declared as it has decoder layers."""
    d = dec.config
    sized = getattr(decoder_family(dec.kind), "cache_by_encoder_layers", False)
    if sized and d.get("encoder_layers", 12) < d.get("decoder_layers", 12):
        d["encoder_layers"] = d["decoder_layers"]
        notes.append(f"encoder_layers raised to {d['decoder_layers']} so transformers' generate sizes its cache right")


def encoder_width(d: dict[str, Any]) -> int:
    """The width of the encoder's output features, as the reference reads it (`hidden_size`)."""
    return int(d.get("hidden_size", 768))


def composite_config(encoder: dict[str, Any], decoder: dict[str, Any], ids: TokenIds) -> dict[str, Any]:
    """config.json of the pair, as `VisionEncoderDecoderConfig.from_encoder_decoder_configs` makes it: the decoder
    becomes a decoder with cross-attention, input and output embeddings are not tied across the pair; plus the
    special tokens and the vocabulary size at the top level."""
    decoder = {**decoder, "is_decoder": True, "add_cross_attention": True}
    return {
        "architectures": ["VisionEncoderDecoderModel"],
        "model_type": "vision-encoder-decoder",
        "is_encoder_decoder": True,
        "tie_word_embeddings": False,
        "encoder": dict(encoder),
        "decoder": decoder,
        "decoder_start_token_id": ids.start,
        "eos_token_id": ids.eos,
        "pad_token_id": ids.pad,
        "vocab_size": decoder["vocab_size"],
    }


def image_processor(enc: Part, cfg: ModelConfig, overridden: set[str]) -> ImageProcessor:
    """The pretrained encoder's image processor; defaults for a preset (Donut's page processor for donut-swin,
    ViT's otherwise), at the encoder's image size. An overridden image_size keeps the source's family and
    normalisation but takes the new size."""
    size = cfg.encoder.image_size
    has_file = enc.pretrained and any((enc.folder / f).is_file() for f in (PROCESSOR_FILE, NESTED_PROCESSOR_FILE))
    if has_file:
        processor = load_image_processor(enc.folder, image_size=size)  # type: ignore[arg-type]
        if "image_size" not in overridden:
            return processor
        c = processor.config
        d = {"image_processor_type": c.processor_type, "image_mean": c.image_mean, "image_std": c.image_std}
        return ImageProcessor(ImageProcessorConfig.from_dict(d, image_size=size))
    family = encoder_family(enc.kind).image_processor  # type: ignore[union-attr]
    return ImageProcessor(ImageProcessorConfig.from_dict({"image_processor_type": family}, image_size=size))


# ------------------------------------------------------------------------------------------------------------------
# Weights: the sources' tensors where they have them, the reference's initialisation elsewhere.
# ------------------------------------------------------------------------------------------------------------------

# A source's names may lack or carry prefixes beyond those inside a VisionEncoderDecoder (its record's `prefix`): a
# base-model checkpoint (ViTModel, BertModel, GPT2Model, BartModel) lacks `bert.`/`transformer.`/`model.`; a task
# model built on an encoder (ViTForImageClassification) carries `vit.`. It may hold a tensor under another name
# (the record's `copies`: BART's embeddings, shared with its encoder).
CROSS_ATTENTION = re.compile(r"crossattention|encoder_attn|ln_cross_attn|cross_attn")
BUFFERS = re.compile(r".*(position_ids|token_type_ids|relative_position_index|\.attn\.bias|\.attn\.masked_bias|"
                     r"crossattention\.bias|crossattention\.masked_bias|_float_tensor)$")  # fmt: skip


def candidates(name: str, side: str, kind: str) -> list[str]:
    """Source names that may hold the tensor called `name` inside a VisionEncoderDecoder's `side`."""
    record = encoder_family(kind) if side == "encoder" else decoder_family(kind)
    base = record.prefix if record is not None else ""
    if side == "encoder":
        return [name, base + name]
    out = [name] + ([name[len(base) :]] if base and name.startswith(base) else [])
    return out + list(getattr(record, "copies", {}).get(name, ()))


def assemble(
    model: VisionEncoderDecoder, enc: Part, dec: Part, generator: torch.Generator, notes: list[str]
) -> tuple[dict[str, Tensor], dict[str, Tensor], list[str]]:
    """HF-named tensors for every weight of `model` (still on the meta device), the reference-only extras, and the
    names of the tensors made here. Pretrained tensors are taken as they are; shapes must match, except for
    cross-attention, which is new when it does not fit."""
    expected = {k: tuple(v.shape) for k, v in to_hf(model.state_dict(), model.weight_rules()).items()}
    reference_only = model.reference_only()
    parts = {"encoder": enc, "decoder": dec}
    used: dict[str, set[str]] = {"encoder": set(), "decoder": set()}
    state: dict[str, Tensor] = {}
    extra: dict[str, Tensor] = {}
    new: list[str] = []
    wrong: dict[str, list[str]] = {"encoder": [], "decoder": []}
    refit: list[str] = []  # pretrained cross-attention that does not fit this encoder
    for full, shape in [*expected.items(), *reference_only.items()]:
        side, _, name = full.partition(".")
        out = extra if full in reference_only else state
        if side not in parts:  # enc_to_dec_proj: the composite's own, initialised from the decoder's config
            out[full] = init_tensor(full, shape, {"model_type": "vision-encoder-decoder",
                                                  "initializer_range": _proj_std(dec.config)}, generator)  # fmt: skip
            new.append(full)
            continue
        part = parts[side]
        found = next((c for c in candidates(name, side, part.kind) if c in part.state), None)
        if found is not None and tuple(part.state[found].shape) != shape:
            if not CROSS_ATTENTION.search(name):
                wrong[side].append(f"{found} {tuple(part.state[found].shape)} != {shape}")
                continue
            refit.append(found)
            found = None
        if found is not None:
            out[full] = part.state[found]
            used[side].add(found)
        else:
            out[full] = init_tensor(name, shape, part.config, generator)
            if not BUFFERS.match(name):  # derived buffers are computed, not initialised
                new.append(full)
    for side, problems in wrong.items():
        if problems:
            raise ModelError(f"its tensors do not fit the composed config (did {OVERRIDES[side]} change a "
                             f"size?): {_listing(problems)}", parts[side].name)  # fmt: skip
    if refit:
        notes.append(f"the source's cross-attention does not fit this encoder and starts anew: {_listing(refit)}")
    for side, part in parts.items():
        left = [k for k in part.state if k not in used[side] and not BUFFERS.match(k) and not _tied_copy(k, part)]
        if left:
            notes.append(f"left out of the {side} source: {', '.join(group_left_out(left))}")
        if part.pretrained:
            _check_final_logits_bias(part, notes)
    return state, extra, new


def _tied_copy(key: str, part: Part) -> bool:
    """A saved copy of an LM head tied to the token embeddings (older transformers saved both)."""
    heads = {record.head for record in DECODERS.values()}
    return part.side == "decoder" and key in heads and part.config.get("tie_word_embeddings", True)


def _check_final_logits_bias(part: Part, notes: list[str]) -> None:
    bias = part.state.get("final_logits_bias")
    if bias is not None and bool(bias.ne(0).any()):
        notes.append("the source's final_logits_bias is not zero; a causal-LM decoder has none, so it is dropped")


def _proj_std(decoder: dict[str, Any]) -> float:
    """The reference initialises enc_to_dec_proj with its text config's initializer_range, else 0.02."""
    return float(decoder.get("initializer_range", 0.02))


def _listing(items: list[str], limit: int = 4) -> str:
    shown = ", ".join(items[:limit])
    return f"{shown}, ... ({len(items)} in all)" if len(items) > limit else shown


def group_left_out(keys: list[str]) -> list[str]:
    """Unused source tensors by their first two name parts: "classifier (2 tensors)", "model.encoder (98 tensors)"."""
    groups: dict[str, int] = {}
    for key in keys:
        parts = key.split(".")
        head = ".".join(parts[:2]) if len(parts) > 2 else parts[0]
        groups[head] = groups.get(head, 0) + 1
    return [f"{head} ({n} tensor{'s' if n > 1 else ''})" for head, n in groups.items()]


def describe_new(keys: list[str], everything: list[str]) -> list[str]:
    """New tensors grouped for people: a whole side, "decoder cross-attention (12 layers)", module paths."""
    out = []
    rest = list(keys)
    for side in ("encoder", "decoder"):
        mine = [k for k in keys if k.startswith(side + ".")]
        total = [k for k in everything if k.startswith(side + ".") and not BUFFERS.match(k)]
        if mine and len(mine) == len(total):
            out.append(f"the whole {side} ({len(mine)} tensors, random init)")
            rest = [k for k in rest if k not in mine]
    cross = [k for k in rest if CROSS_ATTENTION.search(k)]
    if cross:
        layers = {m.group(1) for k in cross if (m := re.search(r"\.(\d+)\.", k))}
        out.append(f"decoder cross-attention ({len(layers)} layer{'s' if len(layers) != 1 else ''})")
    modules: dict[str, set[str]] = {}
    for key in rest:
        if key in cross:
            continue
        module = key.rsplit(".", 1)[0]
        layer = re.search(r"\.(\d+)\.", module + ".")
        pattern = re.sub(r"\.\d+\.", ".*.", module + ".").rstrip(".")
        modules.setdefault(pattern, set()).add(layer.group(1) if layer else "")
    for pattern, layers in modules.items():
        out.append(f"{pattern} ({len(layers)} layer{'s' if len(layers) != 1 else ''})" if "*" in pattern else pattern)
    return out


def report(done: Composition, stdout: TextIO, stderr: TextIO) -> None:
    """What `ved compose` prints: the folder and its parts on stdout; what is new, and notes, on stderr."""
    print(f"wrote {done.folder}: {done.encoder} + {done.decoder}", file=stdout)
    print(
        f"{done.parameters:,} parameters ({str(done.dtype).removeprefix('torch.')}), vocabulary {done.vocab_size}"
        f", start {done.token_text['start']} ({done.tokens.start}), end {done.token_text['eos']} "
        f"({done.tokens.eos}), pad {done.token_text['pad']} ({done.tokens.pad})",
        file=stdout,
    )
    print(f"new: {', '.join(done.new) if done.new else 'nothing'}", file=stderr)
    for note in done.notes:
        print(f"note: {note}", file=stderr)
