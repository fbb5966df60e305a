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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..errors import OptionError
from ..family import Derived
from ..registry import family, field_name, resolve_aliases

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


SQUARE_OR_PAIR = {"image_size", "patch_size"}  # a number or [height, width]


def parse_value(text: str) -> Any:
    """A flag value: JSON when it parses (numbers, true/false, null, lists, quoted strings), else the text itself."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def apply_overrides(d: dict[str, Any], overrides: list[str], flag: str) -> dict[str, Any]:
    """A copy of config dict `d` with each `KEY=VALUE` of `flag` applied.

    A key must already be in `d` or be one its family's record lets an override add (`overridable`: those ved reads
    for its model_type, and the special token ids); model_type itself is fixed by the preset, and derived sizes
    (Swin's hidden_size) follow the fields they come from. A number cannot become text, nor true/false anything else.
    """
    out = resolve_aliases(copy.deepcopy(d))
    kind = d.get("model_type")
    record = family(kind)
    allowed = set(d) | (record.overridable if record is not None else frozenset())
    derived = record.derived if record is not None else Derived()
    for item in overrides:
        given, sep, text = item.partition("=")
        given = given.strip()
        if not sep or not given:
            raise OptionError(f"expected KEY=VALUE, got '{item}'", flag)
        key = field_name(kind, given)  # as transformers reads it: GPT-2's num_hidden_layers sets n_layer
        if key == "model_type":
            raise OptionError("model_type cannot be changed; choose another preset", flag)
        if key in derived.fields:
            named = given if given == key else f"{given} ({key})"
            raise OptionError(f"{kind} computes {named} from {derived.sources}; set those instead", flag)
        if key not in allowed:
            close = difflib.get_close_matches(given, sorted(allowed - {"model_type"}), n=3, cutoff=0.6)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise OptionError(f"unknown {kind} config key '{given}'{hint}", flag)
        value = parse_value(text.strip())
        out[key] = _checked(key, out.get(key), value, flag)
    if derived.recompute is not None and overrides:
        derived.recompute(out)
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
