"""The family records (vedcli/family.py) and their registry (vedcli/registry.py): one record for every model_type ved
supports, and each record's weight table checked against a transformers model of that family.

Each reference model is built from a tiny random config (tests/support/checkpoints.py) by the class transformers
uses inside a VisionEncoderDecoder (AutoModel for encoders, AutoModelForCausalLM for decoders); ved reads its config
through the registry, and the record's table must use every tensor (or know it as ignorable), fit every shape, cover
every ved parameter, and write back exactly the names and tensors transformers has.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import torch
import transformers as T
from safetensors.torch import load_file

from support.checkpoints import DECODERS as REFERENCE_TOKENS
from support.checkpoints import decoder_config, encoder_config, randomize
from vedcli import decoders, encoders, registry
from vedcli.checkpoints.init import INITS
from vedcli.checkpoints.weights import ignored_keys, to_hf, to_ved
from vedcli.decoders.stack import TextDecoder
from vedcli.family import DecoderFamily, EncoderFamily
from vedcli.processing.byte_tokenizer import byte_tokenizer

ENCODER_TYPES = {"vit", "deit", "beit", "data2vec-vision", "swin", "donut-swin"}
DECODER_TYPES = {"gpt2", "bert", "roberta", "xlm-roberta", "camembert", "electra", "bert-generation", "trocr",
                 "bart", "mbart"}  # fmt: skip
CONVERTED = {"distilbert"}  # decoders `ved compose` writes as another family's (DistilBERT -> BERT)
# model_type -> the tiny reference configs of tests/support/checkpoints.py that exercise its table
VARIANTS = {"beit": ["beit", "beit-shared"], "trocr": ["trocr", "trocr-sinusoidal"]}
CROSS_ATTENTION = re.compile(r"crossattention|encoder_attn")
VOCAB, PAD, BOS, EOS = 99, 1, 0, 2


def test_every_supported_model_type_has_one_record():
    assert set(registry.FAMILIES) == ENCODER_TYPES | DECODER_TYPES | CONVERTED
    assert set(encoders.FAMILIES) == set(registry.ENCODERS) == ENCODER_TYPES
    assert set(decoders.FAMILIES) == DECODER_TYPES  # what a checkpoint's decoder may be
    assert set(registry.DECODERS) == DECODER_TYPES | CONVERTED  # what `ved compose` takes as a decoder
    for kind, record in registry.FAMILIES.items():
        assert record.model_type == kind
        assert isinstance(record, EncoderFamily if kind in ENCODER_TYPES else DecoderFamily), kind
        assert (record.read is None) == (record.weights is None) == (kind in CONVERTED), kind
        for pattern, how in record.inits:  # the reference's own initialisations: known ones, for real names
            assert how in INITS and re.compile(pattern), (kind, how)
    assert registry.family("vision-encoder-decoder") is None and registry.family(["gpt2"]) is None


def test_each_family_file_ends_with_its_records():
    """Every module of encoders/ and decoders/ but the shared decoder stack serves at least one model_type: adding a
    family is adding one file, which its package finds."""
    for package in (encoders, decoders):
        for path in Path(package.__file__).parent.glob("*.py"):
            if path.stem not in ("__init__", "stack"):
                assert "\nRECORDS = (" in path.read_text(), path.name


def test_no_model_type_is_spelled_outside_the_family_files():
    """Code that depends on a family asks the registry: no model_type string outside encoders/ and decoders/, but
    the config defaults and the tokenizer families (named after the tokenizer classes' models)."""
    allowed = {
        "config.py": {"vit", "gpt2"},  # EncoderConfig / DecoderConfig defaults
        "processing/tokenizer.py": {"gpt2", "roberta", "bert", "xlm-roberta"},  # tokenizer families, not models
    }
    package = Path(registry.__file__).parent
    for path in package.rglob("*.py"):
        name = path.relative_to(package).as_posix()
        if name.startswith(("encoders/", "decoders/")):
            continue
        strings = {n.value for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Constant)}
        spelled = (strings & set(registry.FAMILIES)) - allowed.get(name, set())
        assert not spelled, (name, spelled)


@pytest.mark.parametrize("kind", sorted(set(REFERENCE_TOKENS) & DECODER_TYPES))
def test_special_tokens_are_those_of_the_reference_checkpoints(kind):
    """The record's start, end and pad tokens are those the tiny reference checkpoints of the family use (which
    follow the published ones: TrOCR starts with </s>, BERT with [CLS] and ends with [SEP], GPT-2 pads with
    <|endoftext|>)."""
    record = registry.decoder_family(kind)
    start, end, pad = REFERENCE_TOKENS[kind][1]
    assert (record.tokens.token(record.start), record.tokens.token(record.end), record.tokens.pad) == (start, end, pad)


@pytest.mark.parametrize("kind", sorted(DECODER_TYPES))
def test_byte_tokenizer_places_the_familys_tokens(kind):
    """The vocabulary of a new decoder holds its family's special tokens around the 256 bytes, each once."""
    record = registry.decoder_family(kind)
    tokenizer = byte_tokenizer(record.tokens)
    before, after = record.tokens.layout()
    assert len(tokenizer) == len(before) + 256 + len(after)
    assert [tokenizer.backend.token_to_id(t) for t in before] == list(range(len(before)))
    assert [tokenizer.backend.token_to_id(t) for t in after] == list(range(len(before) + 256, len(tokenizer)))
    for role in ("start", "end"):
        assert tokenizer.backend.token_to_id(record.tokens.token(getattr(record, role))) is not None, role
    assert tokenizer.special_tokens == record.tokens.named()


def _saved(model: T.PreTrainedModel, folder: Path) -> dict[str, torch.Tensor]:
    """The tensors of `model` as transformers saves them (under the names of its checkpoints, tied copies left out):
    transformers 5 may name its modules otherwise in memory."""
    randomize(model)
    model.save_pretrained(folder)
    return load_file(folder / "model.safetensors")


def _reference_encoder(variant: str, folder: Path) -> tuple[dict, dict[str, torch.Tensor]]:
    cfg = encoder_config(variant)
    return cfg.to_dict(), _saved(T.AutoModel.from_config(cfg), folder)


def _reference_decoder(variant: str, folder: Path, tied: bool = True) -> tuple[dict, dict[str, torch.Tensor]]:
    if variant == "distilbert":
        cfg = T.DistilBertConfig(vocab_size=VOCAB, dim=32, n_layers=2, n_heads=4, hidden_dim=48, pad_token_id=PAD,
                                 max_position_embeddings=64, tie_word_embeddings=tied)  # fmt: skip
        model = T.DistilBertForMaskedLM(cfg)
    else:
        cfg = decoder_config(variant, VOCAB, PAD, BOS, EOS, enc_hidden=48, tie_word_embeddings=tied)
        model = T.AutoModelForCausalLM.from_config(cfg)
    return cfg.to_dict(), _saved(model, folder)


def _check_table(hf_state, cfg, module, table) -> set[str]:
    """Load `hf_state` strictly with `table` into `module`'s shapes, check that every ved tensor is covered and
    that writing back gives the same names and tensors; the HF names the table reads."""
    rules = table.expand(cfg.num_layers)
    shapes = {k: v.shape for k, v in module.state_dict().items()}
    ours = to_ved(hf_state, rules, table, shapes, "reference")
    assert set(shapes) - set(ours) - set(table.tied) == set()
    back = to_hf(ours, rules)
    skipped = ignored_keys(hf_state, rules, table)
    assert set(back) | set(skipped) == set(hf_state) and not set(back) & set(skipped)
    for name, tensor in back.items():
        assert torch.equal(tensor, hf_state[name]), name
    return set(back)


@pytest.mark.parametrize("variant", [v for kind in sorted(ENCODER_TYPES) for v in VARIANTS.get(kind, [kind])])
def test_encoder_record_weights_match_the_reference_model(variant, tmp_path):
    d, hf_state = _reference_encoder(variant, tmp_path)
    record = registry.encoder_family(d["model_type"])
    cfg = encoders.encoder_config(d, "reference")
    with torch.device("meta"):
        module = record.module(cfg)
    _check_table(hf_state, cfg, module, record.weights(cfg))
    for name, shape in record.reference_only(cfg).items():  # what ved writes beside its own tensors
        assert tuple(hf_state[name].shape) == shape, name


@pytest.mark.parametrize("tied", [True, False], ids=["tied", "untied"])
@pytest.mark.parametrize("variant", [v for kind in sorted(DECODER_TYPES) for v in VARIANTS.get(kind, [kind])])
def test_decoder_record_weights_match_the_reference_model(variant, tied, tmp_path):
    d, hf_state = _reference_decoder(variant, tmp_path, tied)
    record = registry.decoder_family(d["model_type"])
    cfg = decoders.decoder_config(d, "reference")
    with torch.device("meta"):
        module = TextDecoder(cfg)
    _check_table(hf_state, cfg, module, record.weights(cfg))
    assert (record.head in hf_state) == (not tied)  # the LM head's projection, saved when it is not the embeddings
    assert all(k.startswith(record.prefix) for k in hf_state if CROSS_ATTENTION.search(k))
    for name, copies in record.copies.items():
        assert name in hf_state and copies, name


def test_converted_decoder_weights_fit_the_family_they_become(tmp_path):
    """DistilBERT's tensors, renamed by its record, are a BERT decoder's but for the new cross-attention."""
    d, hf_state = _reference_decoder("distilbert", tmp_path, tied=False)
    record = registry.decoder_family("distilbert")
    assert record.head in hf_state
    converted, state = record.as_decoder(d, hf_state)
    target = registry.decoder_family(converted["model_type"])
    cfg = decoders.decoder_config({**converted, "is_decoder": True, "add_cross_attention": True}, "converted")
    with torch.device("meta"):
        module = TextDecoder(cfg)
    table = target.weights(cfg)
    rules = table.expand(cfg.num_layers)
    expected = {k: tuple(v.shape) for k, v in to_hf(module.state_dict(), rules).items()}
    skipped = set(ignored_keys(state, rules, table))
    assert {k: tuple(v.shape) for k, v in state.items() if k not in skipped} == {
        k: shape for k, shape in expected.items() if not CROSS_ATTENTION.search(k)
    }
