"""Hugging Face weight names <-> ved names: one checked table per family, and a strict load.

A table is data: each `Rule` says which HF tensors make one ved tensor (several are concatenated along dim 0, e.g.
BERT's query/key/value -> ved's fused qkv; GPT-2's Conv1D weights are stored transposed). Loading uses every
checkpoint key or finds it in the table's ignorable patterns, and checks every shape; anything else is one error
that lists what is missing, unexpected or misshapen. The same table writes ved weights back under HF names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import torch
from torch import Tensor

from ..errors import ModelError


@dataclass(frozen=True)
class Rule:
    ved: str  # ved parameter name; "{i}" stands for the layer index
    hf: tuple[str, ...]  # HF names, concatenated along `dim` in this order
    transpose: bool = False  # HF stores this 2-D weight as (in, out) (GPT-2 Conv1D)
    layered: bool = False  # repeated for every layer
    dim: int = 0  # the dimension several HF tensors are concatenated along
    zero: tuple[str, ...] = ()  # names in `hf` no checkpoint holds (BEiT's key bias): zeros on load, not written


@dataclass
class WeightTable:
    rules: list[Rule] = field(default_factory=list)
    ignore: list[str] = field(default_factory=list)  # regexes of HF keys known to be unused (buffers, pooler, ...)
    tied: dict[str, str] = field(default_factory=dict)  # ved name -> ved name it shares storage with

    def __add__(self, other: WeightTable) -> WeightTable:
        return WeightTable(self.rules + other.rules, self.ignore + other.ignore, {**self.tied, **other.tied})

    def prefixed(self, ved: str, hf: str) -> WeightTable:
        """The same table for a submodule: ved names under `ved`, HF names under `hf`."""
        rules = [
            Rule(ved + r.ved, tuple(hf + h for h in r.hf), r.transpose, r.layered, r.dim, tuple(hf + h for h in r.zero))
            for r in self.rules
        ]
        ignore = [re.escape(hf) + p for p in self.ignore]
        tied = {ved + k: ved + v for k, v in self.tied.items()}
        return WeightTable(rules, ignore, tied)

    def expand(self, layers: int) -> list[Rule]:
        """Concrete rules, one per tensor, with layer indices filled in."""
        out = []
        for r in self.rules:
            for i in range(layers) if r.layered else [None]:
                fill = (lambda s, i=i: s.replace("{i}", str(i))) if i is not None else (lambda s: s)
                hf, zero = tuple(fill(h) for h in r.hf), tuple(fill(h) for h in r.zero)
                out.append(Rule(fill(r.ved), hf, r.transpose, dim=r.dim, zero=zero))
        return out


def param(ved: str, *hf: str, transpose: bool = False, dim: int = 0, zero: tuple[str, ...] = ()) -> list[Rule]:
    """One tensor (an embedding, a class token, a bias vector); `zero` names parts that are all zeros."""
    return [Rule(ved, hf, transpose, "{i}" in ved, dim, zero)]


def linear(ved: str, *hf: str, transpose: bool = False, bias: bool = True) -> list[Rule]:
    """A linear layer's weight and bias: `ved` and each `hf` name a module."""
    rules = param(f"{ved}.weight", *(f"{h}.weight" for h in hf), transpose=transpose)
    if bias:
        rules += param(f"{ved}.bias", *(f"{h}.bias" for h in hf))
    return rules


def norm(ved: str, hf: str) -> list[Rule]:
    return linear(ved, hf)


def output_head(tied: bool, hf: str) -> WeightTable:
    """The LM head's weight: shared with the token embedding when tied (a saved copy is then ignored)."""
    if tied:
        return WeightTable(ignore=[re.escape(hf)], tied={"head.weight": "embed.weight"})
    return WeightTable(param("head.weight", hf))


LEGACY_SUFFIXES = ((".gamma", ".weight"), (".beta", ".bias"))


def _modern(key: str) -> str:
    """Old TF-converted checkpoints name LayerNorm parameters gamma/beta."""
    for old, new in LEGACY_SUFFIXES:
        if key.endswith(old):
            return key[: -len(old)] + new
    return key


def to_ved(
    hf_state: dict[str, Tensor], rules: list[Rule], table: WeightTable, shapes: dict[str, torch.Size], where: str
) -> dict[str, Tensor]:
    """Build ved tensors from HF ones. Strict: raises ModelError listing missing, unexpected and misshapen keys."""
    state = {_modern(k): v for k, v in hf_state.items()}
    out, used, missing, wrong = {}, set(), [], []
    for r in rules:
        absent = [h for h in r.hf if h not in state and h not in r.zero]
        if absent:
            missing += absent
            continue
        held = [h for h in r.hf if h not in r.zero]
        used.update(held)
        expected = shapes.get(r.ved)
        if expected is None:
            raise AssertionError(f"weight table names '{r.ved}', which the ved model does not have")
        # every part is checked before any is used: the parts of a fused tensor are equal in size along `dim`
        part_shape = _part_shape(tuple(expected), len(r.hf), r.dim)
        raw = {h: state[h] for h in held}
        misfits = [h for h, t in raw.items() if _stored_shape(t, r.transpose) != part_shape]
        if misfits:
            if len(r.hf) == 1:
                wrong.append(f"{r.hf[0]} {tuple(raw[r.hf[0]].shape)} != {_hf_shape(part_shape, r.transpose)}")
            else:
                wrong += [f"{h} {tuple(raw[h].shape)} != {_hf_shape(part_shape, r.transpose)} (part of "
                          f"{'+'.join(r.hf)})" for h in misfits]  # fmt: skip
            continue
        parts = [raw[held[0]].new_zeros(raw[held[0]].shape) if h in r.zero else raw[h] for h in r.hf]
        parts = [t.t() if r.transpose and t.dim() == 2 else t for t in parts]
        if len(parts) == 1:  # a stored (in, out) Conv1D weight stays a transposed view: no copy beside the file's
            out[r.ved] = parts[0] if r.transpose else parts[0].contiguous()
        else:
            out[r.ved] = torch.cat(parts, dim=r.dim)
    ignorable = re.compile("|".join(f"(?:{p})$" for p in table.ignore)) if table.ignore else None
    unexpected = sorted(k for k in state if k not in used and not (ignorable and ignorable.match(k)))
    problems = []
    if missing:
        problems.append(f"missing {_listing(missing)}")
    if unexpected:
        problems.append(f"unexpected {_listing(unexpected)}")
    if wrong:
        problems.append(f"wrong shape {_listing(wrong)}")
    if problems:
        raise ModelError("checkpoint does not match its config: " + "; ".join(problems), where)
    return out


def _part_shape(expected: tuple[int, ...], parts: int, dim: int) -> tuple[int, ...] | None:
    """The shape each of `parts` equal parts concatenated along `dim` into `expected` has (None: none fits)."""
    if parts == 1:
        return expected
    if len(expected) <= dim or expected[dim] % parts:
        return None
    return expected[:dim] + (expected[dim] // parts,) + expected[dim + 1 :]


def _stored_shape(tensor: Tensor, transpose: bool) -> tuple[int, ...]:
    """The shape of a checkpoint tensor as ved uses it (a Conv1D weight transposed)."""
    shape = tuple(tensor.shape)
    return shape[::-1] if transpose and len(shape) == 2 else shape


def _hf_shape(shape: tuple[int, ...] | None, transpose: bool) -> tuple[int, ...] | str:
    if shape is None:
        return "a shape that fits"
    return shape[::-1] if transpose and len(shape) == 2 else shape


def non_finite(state: dict[str, Tensor], sample: int = 256) -> list[str]:
    """Names of floating tensors holding NaN or inf, judged on an even sample of at most `sample` values each: a
    cheap check that catches a checkpoint whose weights are all (or largely) NaN or inf."""
    bad = []
    for name, tensor in state.items():
        if not tensor.is_floating_point() or tensor.numel() == 0 or tensor.device.type == "meta":
            continue
        flat = tensor.reshape(-1)
        step = max(1, flat.numel() // sample)
        if not bool(torch.isfinite(flat[::step]).all()):
            bad.append(name)
    return bad


def to_hf(ved_state: dict[str, Tensor], rules: list[Rule]) -> dict[str, Tensor]:
    """Write ved tensors back under HF names (the inverse of `to_ved`)."""
    out = {}
    for r in rules:
        parts = ved_state[r.ved].chunk(len(r.hf), dim=r.dim)
        for name, part in zip(r.hf, parts, strict=True):
            if name in r.zero:
                continue
            out[name] = (part.t() if r.transpose and part.dim() == 2 else part).contiguous()
    return out


def _listing(keys: list[str], limit: int = 6) -> str:
    shown = ", ".join(keys[:limit])
    return f"{shown}, ... ({len(keys)} in all)" if len(keys) > limit else shown


def ignored_keys(hf_keys, rules: list[Rule], table: WeightTable) -> list[str]:
    """The checkpoint keys a load skips on purpose (buffers, poolers, saved copies of tied weights)."""
    used = {h for r in rules for h in r.hf}
    ignorable = re.compile("|".join(f"(?:{p})$" for p in table.ignore)) if table.ignore else None
    return sorted(k for k in map(_modern, hf_keys) if k not in used and ignorable and ignorable.match(k))
