"""Model presets: the published `config.json` of well-known encoders and decoders, by short name.

`ved compose vit-base gpt2` builds a randomly initialised model from two of these. Each preset is one JSON file in
the top-level `configs/encoders/` or `configs/decoders/` folder (shipped inside the package as
`vedcli/presets_data/`), holding the Hugging Face config dict of the model it is named after, plus two keys that
describe the preset rather than the model: `_ved_preset_of` (the hub id it was copied from) and `_ved_aliases`
(short names, e.g. `vit` for `vit-base`). `load_preset` returns the config dict without them.

`--encoder-config KEY=VALUE` / `--decoder-config KEY=VALUE` change single fields (`apply_overrides`).
"""

from __future__ import annotations

import copy
import difflib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..config import field_name, resolve_aliases
from ..errors import OptionError

Side = Literal["encoder", "decoder"]
SIDES: tuple[Side, ...] = ("encoder", "decoder")
ARGUMENTS = {"encoder": "ENCODER", "decoder": "DECODER"}  # the `ved compose` argument each side is named by
_A = {"encoder": "an encoder", "decoder": "a decoder"}
META = "_ved_"  # prefix of the keys that describe the preset, not the model


@dataclass(frozen=True)
class Preset:
    """One preset file: a canonical name, its aliases, and the published config it holds."""

    name: str  # file name without .json, e.g. "vit-base"
    side: Side
    source: str  # hub id of the published model whose config.json this is
    aliases: tuple[str, ...] = ()
    hf: dict[str, Any] = field(default_factory=dict, repr=False)  # the config dict, without the _ved_ keys

    def config(self) -> dict[str, Any]:
        """A fresh copy of the config dict, safe to change."""
        return copy.deepcopy(self.hf)


def data_dir() -> Path:
    """The preset folder: `vedcli/presets_data` in an installed wheel, `configs/` in a checkout."""
    here = Path(__file__).resolve().parents[1]  # vedcli/
    for folder in (here / "presets_data", here.parent / "configs"):
        if (folder / "encoders").is_dir():
            return folder
    raise FileNotFoundError(f"no preset folder next to {here} (looked for presets_data/ and ../configs/)")


def _discover(folder: Path) -> dict[str, dict[str, Preset]]:
    """side -> canonical name -> Preset, from `<folder>/encoders/*.json` and `<folder>/decoders/*.json`."""
    found: dict[str, dict[str, Preset]] = {}
    for side in SIDES:
        found[side] = {}
        for path in sorted((folder / f"{side}s").glob("*.json")):
            raw = json.loads(path.read_text(encoding="utf-8"))
            hf = {k: v for k, v in raw.items() if not k.startswith(META)}
            source = raw.get(META + "preset_of", "")
            found[side][path.stem] = Preset(path.stem, side, source, tuple(raw.get(META + "aliases", ())), hf)
    return found


PRESETS: dict[str, dict[str, Preset]] = _discover(data_dir())
# every name a user may type (canonical names and aliases) -> (side, canonical name)
_NAMES: dict[str, tuple[Side, str]] = {
    alias: (side, p.name) for side in SIDES for p in PRESETS[side].values() for alias in (p.name, *p.aliases)
}


def preset_names(side: Side, aliases: bool = False) -> list[str]:
    """Canonical preset names of one side, sorted; with `aliases`, the short names too."""
    _check_side(side)
    if aliases:
        return sorted(name for name, (s, _) in _NAMES.items() if s == side)
    return sorted(PRESETS[side])


def is_preset(name: str, side: Side | None = None) -> bool:
    """Whether `name` (or an alias) names a preset, of `side` when given."""
    hit = _NAMES.get(name.strip().lower())
    return hit is not None and (side is None or hit[0] == side)


def get_preset(name: str, side: Side, where: str | None = None) -> Preset:
    """The preset called `name` (aliases resolved); OptionError naming `where` (default: the compose argument)."""
    _check_side(side)
    where = where or ARGUMENTS[side]
    hit = _NAMES.get(name.strip().lower())
    if hit is None:
        close = difflib.get_close_matches(name.strip().lower(), preset_names(side, aliases=True), n=3, cutoff=0.6)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise OptionError(f"unknown {side} preset '{name}'; {hint}{side} presets: {_listing(side)}", where)
    found_side, canonical = hit
    if found_side != side:
        raise OptionError(f"'{name}' is {_A[found_side]} preset, not {_A[side]} one", where)
    return PRESETS[side][canonical]


def load_preset(name: str, side: Side, where: str | None = None) -> dict[str, Any]:
    """The Hugging Face config dict of preset `name` (aliases resolved), as a fresh copy."""
    return get_preset(name, side, where).config()


def _listing(side: Side) -> str:
    """Every canonical name of a side with its aliases: `beit-base (beit), deit-base (deit), ...`."""
    named = sorted(PRESETS[side].items())
    return ", ".join(p.name + (f" ({', '.join(p.aliases)})" if p.aliases else "") for _, p in named)


def _check_side(side: str) -> None:
    if side not in SIDES:
        raise ValueError(f"side must be one of {SIDES}, not {side!r}")


# Config fields `--encoder-config` / `--decoder-config` may add when the preset does not set them already: those
# ved reads for each model_type (the families' `config_from_hf`), and the special token ids. Not offered:
# cross_attention_hidden_size outside TrOCR (the only family whose cross-attention it sizes), and
# position_embedding_type (ved reads it only to refuse anything but "absolute").
_IDS = ("bos_token_id", "eos_token_id", "pad_token_id")
_DROP = ("hidden_dropout_prob", "attention_probs_dropout_prob")  # training only, as are those below
_VIT = (
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "hidden_act",
    "layer_norm_eps",
    "image_size",
    "patch_size",
    "num_channels",
    *_DROP,
)
_BEIT = (
    *_VIT,
    "use_absolute_position_embeddings",
    "use_relative_position_bias",
    "use_shared_relative_position_bias",
    "layer_scale_init_value",
    "use_mean_pooling",
    "drop_path_rate",
)
_SWIN = (
    "embed_dim",
    "depths",
    "num_heads",
    "window_size",
    "mlp_ratio",
    "hidden_act",
    "layer_norm_eps",
    "image_size",
    "patch_size",
    "num_channels",
    "qkv_bias",
    "use_absolute_embeddings",
    "drop_path_rate",
    *_DROP,
)
_BERT = (
    "vocab_size",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "hidden_act",
    "layer_norm_eps",
    "max_position_embeddings",
    "tie_word_embeddings",
    *_IDS,
    *_DROP,
)
_FAIRSEQ = (
    "vocab_size",
    "d_model",
    "decoder_layers",
    "decoder_attention_heads",
    "decoder_ffn_dim",
    "activation_function",
    "max_position_embeddings",
    "scale_embedding",
    "tie_word_embeddings",
    *_IDS,
    "decoder_start_token_id",
    "dropout",
    "attention_dropout",
    "activation_dropout",
)
KNOWN_FIELDS: dict[str, frozenset[str]] = {
    kind: frozenset(keys)
    for kinds, keys in [
        (("vit", "deit"), (*_VIT, "qkv_bias")),
        (("beit", "data2vec-vision"), _BEIT),
        (("swin", "donut-swin"), _SWIN),
        (
            ("gpt2",),
            (
                "vocab_size",
                "n_embd",
                "n_layer",
                "n_head",
                "n_inner",
                "activation_function",
                "layer_norm_epsilon",
                "n_positions",
                "scale_attn_by_inverse_layer_idx",
                "tie_word_embeddings",
                *_IDS,
                "attn_pdrop",
                "embd_pdrop",
                "resid_pdrop",
            ),
        ),
        (("bert", "roberta", "xlm-roberta", "camembert"), (*_BERT, "type_vocab_size")),
        (("electra",), (*_BERT, "type_vocab_size", "embedding_size")),
        (("bert-generation",), _BERT),
        (
            ("trocr",),
            (*_FAIRSEQ, "use_learned_position_embeddings", "layernorm_embedding", "cross_attention_hidden_size"),
        ),
        (("bart", "mbart"), _FAIRSEQ),
        (
            ("distilbert",),
            (
                "vocab_size",
                "dim",
                "n_layers",
                "n_heads",
                "hidden_dim",
                "activation",
                "max_position_embeddings",
                "sinusoidal_pos_embds",
                "tie_word_embeddings",
                *_IDS,
                "dropout",
                "attention_dropout",
            ),
        ),
    ]
    for kind in kinds
}


def _swin_sizes(d: dict[str, Any]) -> None:
    """Swin stores its output width and stage count besides the fields they follow from; transformers trusts them."""
    depths = d.get("depths", [2, 2, 6, 2])
    d["num_layers"] = len(depths)
    d["hidden_size"] = int(d.get("embed_dim", 96) * 2 ** (len(depths) - 1))


# model_type -> (fields computed from others, the fields they come from, how to recompute them after an override)
DERIVED: dict[str, tuple[tuple[str, ...], str, Callable[[dict[str, Any]], None]]] = {
    "swin": (("hidden_size", "num_layers"), "embed_dim and depths", _swin_sizes),
    "donut-swin": (("hidden_size", "num_layers"), "embed_dim and depths", _swin_sizes),
}
SQUARE_OR_PAIR = {"image_size", "patch_size"}  # a number or [height, width]


def parse_value(text: str) -> Any:
    """A flag value: JSON when it parses (numbers, true/false, null, lists, quoted strings), else the text itself."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def apply_overrides(d: dict[str, Any], overrides: list[str], flag: str) -> dict[str, Any]:
    """A copy of config dict `d` with each `KEY=VALUE` of `flag` applied.

    A key must already be in `d` or be a field ved reads for its model_type (KNOWN_FIELDS); model_type itself is
    fixed by the preset, and derived sizes (Swin's hidden_size) follow the fields they come from. A number cannot
    become text, nor true/false anything else.
    """
    out = resolve_aliases(copy.deepcopy(d))
    kind = d.get("model_type")
    allowed = set(d) | KNOWN_FIELDS.get(kind, frozenset())
    derived, sources, recompute = DERIVED.get(kind, ((), "", None))
    for item in overrides:
        given, sep, text = item.partition("=")
        given = given.strip()
        if not sep or not given:
            raise OptionError(f"expected KEY=VALUE, got '{item}'", flag)
        key = field_name(kind, given)  # as transformers reads it: GPT-2's num_hidden_layers sets n_layer
        if key == "model_type":
            raise OptionError("model_type cannot be changed; choose another preset", flag)
        if key in derived:
            named = given if given == key else f"{given} ({key})"
            raise OptionError(f"{kind} computes {named} from {sources}; set those instead", flag)
        if key not in allowed:
            close = difflib.get_close_matches(given, sorted(allowed - {"model_type"}), n=3, cutoff=0.6)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise OptionError(f"unknown {kind} config key '{given}'{hint}", flag)
        value = parse_value(text.strip())
        out[key] = _checked(key, out.get(key), value, flag)
    if recompute is not None and overrides:
        recompute(out)
    return out


def _checked(key: str, old: Any, new: Any, flag: str) -> Any:
    """`new`, checked against the value it replaces: text where a number, true/false or a list was is a typo that
    would only fail later; 768.0 where a whole number was becomes 768."""
    number = isinstance(new, (int, float)) and not isinstance(new, bool)
    pair = key in SQUARE_OR_PAIR
    if isinstance(old, bool):
        if not isinstance(new, bool):
            raise OptionError(f"{key} takes true or false, not {json.dumps(new)}", flag)
    elif isinstance(old, (int, float)) and not (
        number or (pair and isinstance(new, list)) or (new is None and key.endswith("_token_id"))
    ):
        raise OptionError(f"{key} takes a number, not {json.dumps(new)}", flag)
    elif isinstance(old, int) and isinstance(new, float):
        if not new.is_integer():
            raise OptionError(f"{key} takes a whole number, not {json.dumps(new)}", flag)
        return int(new)
    elif isinstance(old, list) and not (isinstance(new, list) or (number and pair)):
        raise OptionError(f"{key} takes a list like {json.dumps(old)}, not {json.dumps(new)}", flag)
    return new
