"""Model presets (vedcli/checkpoints/presets.py, configs/): published configs, as transformers reads them, sized as
published.

Models are built on the meta device, so no weights are allocated and the whole file runs in seconds.
"""

from __future__ import annotations

import inspect
import json
import re
import runpy
import sys
from pathlib import Path

import pytest
import tomllib
import torch
import transformers as T

from vedcli import decoders, encoders, registry
from vedcli.checkpoints import presets
from vedcli.checkpoints.presets import apply_overrides, is_preset, load_preset, preset_names
from vedcli.config import ModelConfig
from vedcli.decoders.stack import TextDecoder
from vedcli.errors import OptionError
from vedcli.model import VisionEncoderDecoder
from vedcli.registry import resolve_aliases

ROOT = Path(__file__).resolve().parent.parent
ENCODER_PRESETS = preset_names("encoder")
DECODER_PRESETS = preset_names("decoder")
ALL = [("encoder", n) for n in ENCODER_PRESETS] + [("decoder", n) for n in DECODER_PRESETS]
COMPOSED = "distilbert"  # kept as DistilBERT's own config; compose turns it into a BERT-layout decoder


def count(module: torch.nn.Module, skip: str | None = None) -> int:
    """Parameters (shared ones once), leaving out those whose name matches `skip`."""
    return sum(p.numel() for n, p in module.named_parameters() if not (skip and re.search(skip, n)))


def hf_config(d: dict) -> T.PretrainedConfig:
    return T.AutoConfig.for_model(**d)


# --- the preset files ------------------------------------------------------------------------------------------------


def test_expected_presets_are_shipped():
    """The names `ved compose` documents, and one file per preset in configs/."""
    assert {
        "vit-base",
        "vit-large",
        "deit-tiny",
        "deit-small",
        "deit-base",
        "beit-base",
        "swin-tiny",
        "swin-base",
        "donut-swin",
    } <= set(ENCODER_PRESETS)
    assert {
        "bert-base",
        "bert-large",
        "roberta-base",
        "xlm-roberta-base",
        "gpt2",
        "gpt2-medium",
        "trocr-small",
        "trocr-base",
        "bart-base",
        "mbart",
        "electra-small",
        "electra-base",
        "distilbert",
    } <= set(DECODER_PRESETS)
    for side, names in (("encoder", ENCODER_PRESETS), ("decoder", DECODER_PRESETS)):
        assert sorted(p.stem for p in (ROOT / "configs" / f"{side}s").glob("*.json")) == names


@pytest.mark.parametrize("side,name", ALL)
def test_preset_file_describes_its_source(side, name):
    raw = json.loads((ROOT / "configs" / f"{side}s" / f"{name}.json").read_text())
    assert re.fullmatch(r"[\w.-]+/[\w.-]+", raw["_ved_preset_of"])  # a hub id
    d = load_preset(name, side)
    assert not any(k.startswith("_ved_") for k in d)
    assert {k: v for k, v in raw.items() if not k.startswith("_ved_")} == d
    if side == "decoder":  # compose decides these from the pairing
        assert not {"is_decoder", "add_cross_attention", "cross_attention_hidden_size"} & set(d)


@pytest.mark.parametrize("side,name", ALL)
def test_transformers_reads_every_field_back(side, name):
    """The reference builds a config from the dict and writes back every value the preset sets."""
    d = load_preset(name, side)
    written = hf_config(d).to_dict()
    assert {k: written.get(k, "<missing>") for k in d} == d


@pytest.mark.parametrize("side,name", ALL)
def test_ved_builds_a_config(side, name):
    d = load_preset(name, side)
    ref = hf_config(d)
    if side == "encoder":
        cfg = encoders.encoder_config(d)
        assert cfg.hidden_size == ref.hidden_size  # the width the decoder's cross-attention reads
    elif name == COMPOSED:
        assert d["model_type"] == "distilbert" and isinstance(ref, T.DistilBertConfig)
    else:
        cfg = decoders.decoder_config(d)
        assert (cfg.hidden_size, cfg.vocab_size) == (ref.hidden_size, ref.vocab_size)
        assert cfg.pad_token_id == ref.pad_token_id


# Presets whose sizes transformers' config defaults describe (its docstrings name these same published models), and
# the fields where they agree; for the others the defaults are a different model (BartConfig() is bart-large).
DEFAULTS = [
    (
        "encoder",
        "vit-base",
        T.ViTConfig,
        [
            "hidden_size",
            "num_hidden_layers",
            "num_attention_heads",
            "intermediate_size",
            "image_size",
            "patch_size",
            "layer_norm_eps",
        ],
    ),
    (
        "encoder",
        "deit-base",
        T.DeiTConfig,
        ["hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "image_size", "patch_size"],
    ),
    (
        "encoder",
        "beit-base",
        T.BeitConfig,
        [
            "hidden_size",
            "num_hidden_layers",
            "num_attention_heads",
            "intermediate_size",
            "vocab_size",
            "layer_scale_init_value",
        ],
    ),
    (
        "encoder",
        "swin-tiny",
        T.SwinConfig,
        ["embed_dim", "depths", "num_heads", "window_size", "hidden_size", "patch_size", "mlp_ratio"],
    ),
    (
        "decoder",
        "bert-base",
        T.BertConfig,
        [
            "hidden_size",
            "num_hidden_layers",
            "num_attention_heads",
            "intermediate_size",
            "vocab_size",
            "max_position_embeddings",
        ],
    ),
    (
        "decoder",
        "roberta-base",
        T.RobertaConfig,
        ["hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "vocab_size", "pad_token_id"],
    ),
    (
        "decoder",
        "xlm-roberta-base",
        T.XLMRobertaConfig,
        ["hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "pad_token_id"],
    ),
    ("decoder", "gpt2", T.GPT2Config, ["n_embd", "n_layer", "n_head", "vocab_size", "n_positions", "bos_token_id"]),
    (
        "decoder",
        "trocr-base",
        T.TrOCRConfig,
        [
            "d_model",
            "decoder_layers",
            "decoder_attention_heads",
            "decoder_ffn_dim",
            "vocab_size",
            "max_position_embeddings",
        ],
    ),
    ("decoder", "bart-base", T.BartConfig, ["vocab_size", "max_position_embeddings", "pad_token_id", "eos_token_id"]),
    (
        "decoder",
        "electra-small",
        T.ElectraConfig,
        [
            "hidden_size",
            "embedding_size",
            "num_hidden_layers",
            "num_attention_heads",
            "intermediate_size",
            "vocab_size",
        ],
    ),
    ("decoder", "distilbert", T.DistilBertConfig, ["dim", "n_layers", "n_heads", "hidden_dim", "vocab_size"]),
]


@pytest.mark.parametrize("side,name,klass,fields", DEFAULTS, ids=[row[1] for row in DEFAULTS])
def test_sizes_match_the_reference_defaults(side, name, klass, fields):
    d, default = load_preset(name, side), klass().to_dict()
    assert {f: d[f] for f in fields} == {f: default[f] for f in fields}


# --- parameter counts on the meta device ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ENCODER_PRESETS)
def test_encoder_parameters_equal_the_reference(name):
    d = load_preset(name, "encoder")
    with torch.device("meta"):
        cfg = encoders.encoder_config(d)
        ours = encoders.build_encoder(cfg)
        ref = T.AutoModel.from_config(hf_config(d), add_pooling_layer=False)  # ved has no pooler
    # BEiT's key projection has no bias; ved's fused q/k/v bias keeps that third as zeros, one vector per layer
    zeros = cfg.num_layers * cfg.hidden_size if d["model_type"] == "beit" else 0
    assert count(ours) == count(ref) + zeros


@pytest.mark.parametrize("name", [n for n in DECODER_PRESETS if n != COMPOSED])
def test_decoder_parameters_equal_the_reference(name):
    """The decoder with cross-attention, as the reference builds it inside a VisionEncoderDecoder."""
    d = load_preset(name, "decoder")
    with torch.device("meta"):
        ours = TextDecoder(decoders.decoder_config(d))
        ref = T.AutoModelForCausalLM.from_config(hf_config({**d, "is_decoder": True, "add_cross_attention": True}))
    assert count(ours) == count(ref)


# preset -> its published size (model cards and papers), which counts neither cross-attention nor poolers
PUBLISHED = {
    ("encoder", "vit-base"): 86e6,  # ViT-B/16
    ("encoder", "beit-base"): 86e6,
    ("decoder", "gpt2"): 124e6,
    ("decoder", "gpt2-medium"): 355e6,
    ("decoder", "bert-base"): 110e6,
    ("decoder", "roberta-base"): 125e6,
    ("decoder", "electra-base"): 110e6,
}


@pytest.mark.parametrize("side,name", list(PUBLISHED), ids=[n for _, n in PUBLISHED])
def test_parameters_match_the_published_figure(side, name):
    d = load_preset(name, side)
    with torch.device("meta"):
        if side == "encoder":
            n = count(encoders.build_encoder(encoders.encoder_config(d)))
        else:
            n = count(TextDecoder(decoders.decoder_config(d)), skip=r"cross_attn|ln_cross")
    assert n == pytest.approx(PUBLISHED[side, name], rel=0.01)


# Whole published models, as compose would pair the presets: (encoder, overrides, decoder, overrides, size).
# TrOCR reads 384-pixel images (trocr-base: a ViT without q/k/v biases) and sizes its cross-attention by the encoder.
COMPOSITES = {
    "trocr-small": ("deit-small", ["image_size=384"], "trocr-small", ["cross_attention_hidden_size=384"], 62e6),
    "trocr-base": ("vit", ["image_size=384", "qkv_bias=false"], "trocr", ["cross_attention_hidden_size=768"], 334e6),
    "donut-base": ("donut-swin", [], "mbart", [], 202e6),
}


@pytest.mark.parametrize("model", list(COMPOSITES))
def test_composed_models_match_the_published_size(model):
    """TrOCR paper: 62M / 334M; naver-clova-ix/donut-base: 202M. Sizes that check vocabularies and tied heads too."""
    enc, enc_over, dec, dec_over, size = COMPOSITES[model]
    e = apply_overrides(load_preset(enc, "encoder"), enc_over, "--encoder-config")
    d = apply_overrides(load_preset(dec, "decoder"), dec_over, "--decoder-config")
    with torch.device("meta"):
        cfg = ModelConfig(encoders.encoder_config(e), decoders.decoder_config(d))
        n = count(VisionEncoderDecoder(cfg))
    assert not cfg.projection
    assert n == pytest.approx(size, rel=0.01)


# --- names -----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "alias,side,canonical",
    [
        ("vit", "encoder", "vit-base"),
        ("deit", "encoder", "deit-base"),
        ("swin", "encoder", "swin-tiny"),
        ("bert", "decoder", "bert-base"),
        ("roberta", "decoder", "roberta-base"),
        ("trocr", "decoder", "trocr-base"),
        ("bart", "decoder", "bart-base"),
        ("VIT", "encoder", "vit-base"),
    ],
)
def test_aliases(alias, side, canonical):
    assert is_preset(alias) and is_preset(alias, side)
    assert load_preset(alias, side) == load_preset(canonical, side)


def test_gpt2_is_the_124m_model():
    d = load_preset("gpt2", "decoder")
    assert (d["n_embd"], d["n_layer"], d["n_head"]) == (768, 12, 12)


def test_names_are_unique_across_sides():
    seen: list[str] = []
    for side in presets.SIDES:
        for p in presets.PRESETS[side].values():
            seen += [p.name, *p.aliases]
    assert len(seen) == len(set(seen))
    assert not is_preset("vit", "decoder") and not is_preset("gpt2", "encoder") and not is_preset("resnet")


def test_load_preset_gives_a_fresh_copy():
    d = load_preset("swin-tiny", "encoder")
    d["depths"].append(9)
    d["embed_dim"] = 1
    assert load_preset("swin-tiny", "encoder")["depths"] == [2, 2, 6, 2]
    assert load_preset("swin-tiny", "encoder")["embed_dim"] == 96


def test_unknown_name_lists_close_matches_and_all_names():
    with pytest.raises(OptionError) as err:
        load_preset("vit-bsae", "encoder")
    assert err.value.where == "ENCODER"
    assert "did you mean vit-base" in err.value.message
    assert all(name in err.value.message for name in ENCODER_PRESETS)
    with pytest.raises(OptionError) as err:
        load_preset("gtp2", "decoder", where="--decoder")
    assert err.value.where == "--decoder" and "gpt2" in err.value.message


def test_preset_of_the_other_side_says_so():
    with pytest.raises(OptionError, match="'bert' is a decoder preset, not an encoder one") as err:
        load_preset("bert", "encoder")
    assert err.value.where == "ENCODER"
    with pytest.raises(OptionError, match="'vit' is an encoder preset, not a decoder one") as err:
        load_preset("vit", "decoder")
    assert err.value.where == "DECODER"


# --- overrides -------------------------------------------------------------------------------------------------------


def test_overrides_parse_json_values():
    base = load_preset("vit", "encoder")
    d = apply_overrides(
        base,
        [
            "hidden_size=384",
            "layer_norm_eps=1e-6",
            "qkv_bias=false",
            "image_size=[384, 512]",
            "hidden_act=gelu_new",
            "num_channels = 1",
            "patch_size=32.0",
        ],
        "--encoder-config",
    )
    assert d["hidden_size"] == 384 and d["layer_norm_eps"] == 1e-6 and d["qkv_bias"] is False
    assert d["image_size"] == [384, 512] and d["hidden_act"] == "gelu_new" and d["num_channels"] == 1
    assert d["patch_size"] == 32 and isinstance(d["patch_size"], int)
    assert base == load_preset("vit", "encoder")  # the input is left alone
    cfg = encoders.encoder_config(d)
    assert (cfg.hidden_size, cfg.image_size, cfg.patch_size, cfg.qkv_bias) == (384, (384, 512), (32, 32), False)


def test_overrides_may_add_fields_ved_reads():
    d = apply_overrides(load_preset("gpt2", "decoder"), ["n_inner=1000", "pad_token_id=50256"], "--decoder-config")
    assert decoders.decoder_config(d).intermediate_size == 1000 and d["pad_token_id"] == 50256
    d = apply_overrides(load_preset("trocr-small", "decoder"), ["eos_token_id=null"], "--decoder-config")
    assert d["eos_token_id"] is None


@pytest.mark.parametrize(
    "item,words",
    [
        ("hidden_sise=3", ["hidden_sise", "did you mean hidden_size"]),
        ("pooler_act=relu", ["unknown vit config key"]),
        ("hidden_size", ["KEY=VALUE"]),
        ("=3", ["KEY=VALUE"]),
        ("model_type=deit", ["model_type"]),
        ("hidden_size=big", ["hidden_size takes a number"]),
        ("qkv_bias=1", ["qkv_bias takes true or false"]),
        ("num_hidden_layers=2.5", ["whole number"]),
        ("layer_norm_eps=null", ["takes a number"]),
    ],
)
def test_bad_overrides_name_the_flag(item, words):
    with pytest.raises(OptionError) as err:
        apply_overrides(load_preset("vit", "encoder"), [item], "--encoder-config")
    assert err.value.where == "--encoder-config"
    assert all(w in err.value.message for w in words), err.value.message


@pytest.mark.parametrize("name", ["swin-tiny", "donut-swin"])
def test_swin_sizes_follow_their_sources(name):
    """Swin stores hidden_size and num_layers besides embed_dim and depths; they stay in step, as the reference
    computes them (and a stale stored value would win over its computation)."""
    over = ["embed_dim=48", "depths=[2, 2, 4]", "num_heads=[2, 4, 8]"]
    d = apply_overrides(load_preset(name, "encoder"), over, "--encoder-config")
    klass = T.SwinConfig if name == "swin-tiny" else T.DonutSwinConfig
    ref = klass(embed_dim=48, depths=[2, 2, 4], num_heads=[2, 4, 8])
    assert (d["hidden_size"], d["num_layers"]) == (ref.hidden_size, ref.num_layers) == (192, 3)
    assert encoders.encoder_config(d).hidden_size == 192
    with pytest.raises(OptionError, match="embed_dim and depths") as err:
        apply_overrides(load_preset(name, "encoder"), ["hidden_size=512"], "--encoder-config")
    assert err.value.where == "--encoder-config"
    with pytest.raises(OptionError, match="takes a list"):
        apply_overrides(load_preset(name, "encoder"), ["depths=4"], "--encoder-config")


# keys ved's families read that the allow-list leaves out on purpose (see each record's `overridable`)
NOT_OFFERED = {"model_type", "position_embedding_type", "cross_attention_hidden_size"}


class Recording(dict):
    """A config dict that notes every key a config reader looks up in it."""

    def __init__(self, *args):
        super().__init__(*args)
        self.read: set[str] = set()

    def get(self, key, default=None):
        self.read.add(key)
        return super().get(key, default)

    def __getitem__(self, key):
        self.read.add(key)
        return super().__getitem__(key)

    def __contains__(self, key):
        self.read.add(key)
        return super().__contains__(key)


@pytest.mark.parametrize("kind", sorted(k for k, r in registry.FAMILIES.items() if r.read is not None))
def test_allow_list_covers_what_ved_reads(kind):
    """Every config key a family's config reader reads may be overridden (less the few left out on purpose), and
    every allowed key is a field transformers' config class for that model_type knows."""
    record = registry.family(kind)
    module = sys.modules[record.read.__module__]
    # a key is read as d.get("key") / d["key"], or through validate.Fields as f.count("key", ...), f.flag("key", ...)
    pattern = r"""\b(?:d(?:\.get\(|\[)|f\.\w+\()["'](\w+)["']"""
    read = set(re.findall(pattern, inspect.getsource(module)))
    if hasattr(module, "SwinSettings"):
        read |= set(re.findall(pattern, inspect.getsource(module.SwinSettings)))
    d = Recording({"model_type": kind})  # and what the reader looks up, shared helpers (family.read_sizes) included
    record.read(d, None, "decoder")
    read |= d.read
    allowed = record.overridable
    ref = T.AutoConfig.for_model(kind)
    wanted = {k for k in read if k not in ref.attribute_map} - NOT_OFFERED
    if kind == "trocr":
        wanted.add("cross_attention_hidden_size")
    assert wanted <= allowed, (kind, wanted - allowed)
    assert all(k in ref.to_dict() or hasattr(ref, k) for k in allowed), kind


def test_allow_list_has_every_supported_model_type():
    overridable = {kind for kind, record in registry.FAMILIES.items() if record.overridable}
    assert set(encoders.FAMILIES) | set(decoders.FAMILIES) | {"distilbert"} <= overridable


# --- packaging -------------------------------------------------------------------------------------------------------


def test_package_ships_the_presets():
    """The build finds every package folder under vedcli/ (setup.py) and maps configs/ into the package with its
    files (pyproject.toml)."""
    tool = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert "packages" not in tool  # found, not listed by hand
    assert tool["package-dir"] == {"vedcli.presets_data": "configs"}
    data = {
        "vedcli.presets_data" + "".join("." + part for part in p.relative_to(ROOT / "configs").parts)
        for p in (ROOT / "configs").rglob("*")
        if p.is_dir()
    } | {"vedcli.presets_data"}
    code = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "vedcli").rglob("__init__.py")}
    found = runpy.run_path(str(ROOT / "setup.py"), run_name="setup")["packages"]()
    assert set(found) == code | data

    def folder(package: str) -> Path:  # where setuptools takes a package from
        return ROOT.joinpath("configs", *package.split(".")[2:])

    shipped = {
        p
        for package, patterns in tool["package-data"].items()
        for pattern in patterns
        for p in folder(package).glob(pattern)
    }
    assert shipped == {p for p in (ROOT / "configs").rglob("*") if p.is_file()}
    assert presets.data_dir().resolve() == (ROOT / "configs").resolve()


# --- config aliases (transformers' attribute_map) ----------------------------------------------------------------

PRESET_OF_KIND = {"vit": "vit-base", "deit": "deit-base", "beit": "beit-base", "swin": "swin-base",
                  "donut-swin": "donut-swin", "gpt2": "gpt2-medium", "bert": "bert-base", "roberta": "roberta-base",
                  "xlm-roberta": "xlm-roberta-base", "electra": "electra-base", "trocr": "trocr-base",
                  "bart": "bart-base", "mbart": "mbart", "distilbert": "distilbert"}  # fmt: skip
ENCODER_KINDS = {"vit", "deit", "beit", "swin", "donut-swin"}


def test_aliases_are_the_reference_attribute_maps():
    """Every model_type ved reads takes exactly the aliases transformers' config class declares (and only those)."""
    kinds = set(encoders.FAMILIES) | set(decoders.FAMILIES) | {"distilbert"}
    for kind in sorted(kinds):
        assert dict(registry.family(kind).aliases) == dict(T.AutoConfig.for_model(kind).attribute_map), kind


@pytest.mark.parametrize(
    "kind, alias",
    [(kind, alias) for kind in PRESET_OF_KIND for alias in T.AutoConfig.for_model(kind).attribute_map],
)
def test_an_alias_override_sets_the_field_transformers_sets(kind, alias):
    side = "encoder" if kind in ENCODER_KINDS else "decoder"
    d = load_preset(PRESET_OF_KIND[kind], side)
    field = T.AutoConfig.for_model(kind).attribute_map[alias]
    value = [3] * len(d[field]) if isinstance(d.get(field), list) else 3  # Swin's num_heads: one per stage
    if field in registry.family(kind).derived.fields:  # Swin's layer count follows depths: refused, naming both
        with pytest.raises(OptionError, match=rf"{kind} computes {alias} \({field}\) from"):
            apply_overrides(d, [f"{alias}={json.dumps(value)}"], f"--{side}-config")
        return
    out = apply_overrides(d, [f"{alias}={json.dumps(value)}"], f"--{side}-config")
    ref = T.AutoConfig.for_model(kind, **{k: v for k, v in d.items() if k != "model_type"}, **{alias: value}).to_dict()
    assert out[field] == ref[field] == value and alias not in out
    assert {k: v for k, v in out.items() if k != field} == {k: v for k, v in d.items() if k != field}


def test_bart_num_hidden_layers_is_the_encoders():
    d = apply_overrides(load_preset("bart-base", "decoder"), ["num_hidden_layers=2"], "--decoder-config")
    assert d["encoder_layers"] == 2 and d["decoder_layers"] == load_preset("bart-base", "decoder")["decoder_layers"]


@pytest.mark.parametrize("kind", ["gpt2", "trocr", "distilbert"])
def test_a_config_file_with_an_alias_reads_as_transformers_reads_it(kind):
    """A hand-written config.json may give a field under its alias, even beside the field: the alias wins."""
    d = {**load_preset(PRESET_OF_KIND[kind], "decoder"), "num_hidden_layers": 3}
    ref = T.AutoConfig.for_model(kind, **{k: v for k, v in d.items() if k != "model_type"})
    if kind == "distilbert":
        from vedcli.decoders.distilbert import distilbert_as_bert

        d, _ = distilbert_as_bert(resolve_aliases(d), {})
    assert decoders.decoder_config(d).num_layers == ref.num_hidden_layers == 3
