"""`ved info`: what a checkpoint is and what ved will do with it, without running it.

`describe` returns plain data (sections of key -> value) so it prints as text or JSON. A part that fails to load is
reported in its section instead of stopping the report: the point is to help with broken checkpoints too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..checkpoints.files import PICKLE, PICKLE_INDEX, SAFETENSORS, SAFETENSORS_INDEX, load_state_dict, read_json
from ..checkpoints.hub import resolve_model
from ..checkpoints.weights import ignored_keys, non_finite
from ..config import DecoderConfig, EncoderConfig
from ..errors import VedError
from ..generation.decoding import DecodingOptions
from ..generation.defaults import GenerationConfig
from ..model import VisionEncoderDecoder, model_config
from ..processing.image import RESAMPLE_NAMES, load_image_processor
from ..processing.tokenizer import load_tokenizer

Report = dict[str, dict[str, Any]]


def describe(name_or_path: str, revision: str | None = None) -> Report:
    """Sections: model, encoder, decoder, parameters, special tokens, generation, preprocessing, tokenizer, weights."""
    folder = resolve_model(name_or_path, revision)
    config_file = folder / "config.json"
    cfg = model_config(read_json(config_file), str(config_file))  # a bad field: one error naming it
    with torch.device("meta"):
        model = VisionEncoderDecoder(cfg)
    report: Report = {
        "model": {"source": name_or_path, "revision": revision, "folder": str(folder)},
        "encoder": _encoder(cfg.encoder, model),
        "decoder": _decoder(cfg.decoder),
        "parameters": _parameters(model),
    }
    tokenizer = _attempt(lambda: load_tokenizer(folder))
    report["special tokens"] = _attempt(lambda: _special_tokens(folder, tokenizer, cfg.decoder))
    report["generation"] = _attempt(lambda: _generation(folder, cfg.decoder))
    report["preprocessing"] = _attempt(lambda: _preprocessing(folder, cfg.encoder))
    report["tokenizer"] = (
        {"error": tokenizer["error"]}
        if isinstance(tokenizer, dict)
        else {"format": tokenizer.format, "tokens": tokenizer.vocab_size, "model vocab": cfg.decoder.vocab_size}
    )
    report["weights"] = _attempt(lambda: _weights(folder, model))
    return report


def _attempt(fn):
    try:
        return fn()
    except VedError as error:
        return {"error": str(error)}


def _encoder(enc: EncoderConfig, model: VisionEncoderDecoder) -> dict[str, Any]:
    pixels = torch.empty(1, enc.num_channels, *enc.image_size, device="meta")
    try:
        tokens = model.encoder.forward_features(pixels).shape[1]  # shapes only: the model lives on the meta device
    except VedError as error:  # a Swin window larger than its feature map, say
        tokens = f"none: {error}"
    return {
        "type": enc.hf.get("model_type", enc.family),
        "layers": enc.num_layers,
        "width": enc.hidden_size,
        "heads": enc.num_heads,
        "mlp": enc.intermediate_size,
        "image size": "x".join(map(str, enc.image_size)),
        "patch size": "x".join(map(str, enc.patch_size)),
        "tokens out": tokens,
    }


def _decoder(dec: DecoderConfig) -> dict[str, Any]:
    return {
        "type": dec.hf.get("model_type", dec.family),
        "layers": dec.num_layers,
        "width": dec.hidden_size,
        "heads": dec.num_heads,
        "mlp": dec.intermediate_size,
        "vocabulary": dec.vocab_size,
        "positions": f"{dec.positions}, {dec.max_positions}"
        + (f" (offset {dec.position_offset})" if dec.position_offset else ""),
        "norm": "pre-norm" if dec.pre_norm else "post-norm",
        "activation": dec.activation,
        "cross-attention reads": dec.cross_attention_size,
        "tied output": dec.tie_embeddings,
    }


def _parameters(model: VisionEncoderDecoder) -> dict[str, Any]:
    def count(module) -> int:
        return sum(p.numel() for p in module.parameters()) if module is not None else 0

    def show(n: int) -> str:
        return f"{n:,} ({n / 1e6:.1f}M)"

    out = {"total": show(count(model)), "encoder": show(count(model.encoder)), "decoder": show(count(model.decoder))}
    if model.enc_to_dec_proj is not None:
        p = model.enc_to_dec_proj
        out["enc_to_dec_proj"] = f"{p.in_features} -> {p.out_features}"
    return out


def _generation_config(folder: Path, dec: DecoderConfig) -> GenerationConfig:
    return GenerationConfig.from_folder(folder, dec.vocab_size, dec.max_length)


def _special_tokens(folder: Path, tokenizer, dec: DecoderConfig) -> dict[str, Any]:
    gen = _generation_config(folder, dec)

    def show(i):
        if i is None:
            return None
        text = tokenizer.backend.id_to_token(i) if not isinstance(tokenizer, dict) else None
        return f"{i} {text!r}" if text is not None else str(i)

    return {
        "decoder start": show(gen.start_token_id),
        "end of sequence": ", ".join(show(i) for i in gen.eos_token_ids) or None,
        "padding": show(gen.pad_token_id),
    }


def _generation(folder: Path, dec: DecoderConfig) -> dict[str, Any]:
    """What decoding does when no option is given: the checkpoint's settings over transformers' defaults."""
    source = "generation_config.json" if (folder / "generation_config.json").is_file() else "config.json"
    resolved = DecodingOptions().resolve(_generation_config(folder, dec))
    shown = (
        "max_new_tokens",
        "min_new_tokens",
        "num_beams",
        "do_sample",
        "length_penalty",
        "early_stopping",
        "no_repeat_ngram_size",
        "repetition_penalty",
        "num_return_sequences",
    )
    return {"defaults from": source, **{k: getattr(resolved, k) for k in shown}}


def _preprocessing(folder: Path, enc: EncoderConfig) -> dict[str, Any]:
    c = load_image_processor(folder, image_size=enc.image_size).config
    out = {"processor": c.processor_type}
    if c.do_resize:
        out["resize"] = f"{_size(c.size)} {RESAMPLE_NAMES[c.resample]}"
    if c.do_center_crop:
        out["center crop"] = _size(c.crop_size)
    if c.do_rescale:
        out["rescale"] = round(c.rescale_factor, 6)
    if c.do_normalize:
        out["normalize"] = f"mean {list(c.image_mean)} std {list(c.image_std)}"
    return out


def _size(size) -> str:
    if isinstance(size, dict):
        if "height" in size and "width" in size:
            return f"{size['height']}x{size['width']}"
        return ", ".join(f"{k} {v}" for k, v in size.items())
    return str(size)


def _weights(folder: Path, model: VisionEncoderDecoder) -> dict[str, Any]:
    files = [name for name in (SAFETENSORS, SAFETENSORS_INDEX, PICKLE, PICKLE_INDEX) if (folder / name).is_file()]
    state = load_state_dict(folder)
    dtypes = sorted({str(t.dtype).removeprefix("torch.") for t in state.values()})
    table = model.weight_table()
    ignored = ignored_keys(state, model.weight_rules(table), table)
    out = {"file": files[0] if files else None, "tensors": len(state), "dtypes": ", ".join(dtypes)}
    out["ignored"] = len(ignored)
    if ignored:
        out["ignored keys"] = ignored
    if table.tied:
        out["tied"] = ", ".join(f"{k} = {v}" for k, v in table.tied.items())
    bad = non_finite(state)
    if bad:
        out["non-finite"] = f"{len(bad)} tensors hold NaN or inf values (e.g. {bad[0]}): results will be meaningless"
    try:
        model.load_hf_state_dict(state, str(folder))
        out["status"] = "loads"
    except VedError as error:
        out["status"] = f"does not load: {error}"
    return out


def render(report: Report) -> str:
    """Aligned plain text, one section after another."""
    lines = []
    for section, values in report.items():
        lines.append(section)
        width = max((len(k) for k in values), default=0)
        for key, value in values.items():
            if isinstance(value, list):
                value = ", ".join(map(str, value)) if len(value) <= 6 else f"{', '.join(map(str, value[:6]))}, ..."
            lines.append(f"  {key.ljust(width)}  {value}")
    return "\n".join(lines)
