"""Malformed checkpoints, configs, weights, flags and inputs, driven through the CLI (`ved.cli.main`).

Each case of shared/notes/ux-probe.md's bad-input table is here, with its siblings (negative, zero, text, float,
true, null, huge): a bad model or option is exactly one `Error:` line naming the file and the field, exit code 2,
before any work and without a traceback; a bad input is an error row for that input (exit 1); an unexpected
exception is one line asking for a bug report, exit code 70.
"""

from __future__ import annotations

import io
import json
import math
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from vedcli import cli
from vedcli.cli import EXIT_CRASH, main

BASE_ENCODER_WIDTH = 48  # tests/checkpoints.py: ViT 48 wide, 4 heads, 32 px images in 8 px patches
VOCAB = 341  # the GPT-2 byte-level tokenizer tests/tiny_tokenizers.py writes


# --- helpers ---------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def base(tiny) -> Path:
    """A tiny ViT + GPT-2 checkpoint; cases work on copies of it."""
    return tiny("vit", "gpt2")


@pytest.fixture(scope="module")
def image(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("images") / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(path)
    return path


def copy(base: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    shutil.copytree(base, folder)
    return folder


def edit_json(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))  # NaN and Infinity as Python's json writes them, as transformers reads them


def setter(dotted: str, value):
    """change(data) that sets data[a][b] for "a.b" (the key is removed when value is DELETE)."""
    *parents, key = dotted.split(".")

    def change(data):
        for p in parents:
            data = data[p]
        if value is DELETE:
            data.pop(key)
        else:
            data[key] = value

    return change


DELETE = object()


def run(capsys, *args: str) -> tuple[int, str, str]:
    """ved ARGS in this process: (exit code, stdout, stderr). An exception escaping main fails the test."""
    code = main([*args])
    out, err = capsys.readouterr()
    return code, out, err


def assert_refused(code: int, err: str, *names: str, exit_code: int = 2) -> str:
    """Exit code 2 (by default), exactly one `Error:` line holding every one of `names`, no traceback; the line."""
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("Error:")]
    assert code == exit_code, err
    assert len(errors) == 1, err
    for name in names:
        assert name in errors[0], (name, errors[0])
    return errors[0]


# --- config.json: every field ved reads, typed and ranged ------------------------------------------------------------

# (field in config.json, bad value, what the message says besides the field)
CONFIG_CASES = [
    # the note's cases
    ("encoder.hidden_size", "48", 'got "48"'),
    ("encoder.hidden_size", -48, "positive integer"),
    ("encoder.hidden_size", 10**9, "too large for this machine"),
    ("encoder.num_attention_heads", 0, "positive integer"),
    ("encoder.num_attention_heads", 5, "not divisible"),
    ("encoder.patch_size", 0, "positive integer"),
    ("encoder.hidden_size", 48.5, "got 48.5"),
    ("encoder", None, "JSON object, got null"),
    ("decoder_start_token_id", 5000, "not a token id"),
    ("decoder.layer_norm_epsilon", math.nan, "finite number > 0, got NaN"),
    # their siblings: zero, negative, text, float, true, null, huge, and the relations between fields
    ("encoder.hidden_size", 0, "positive integer"),
    ("encoder.hidden_size", True, "got true"),
    ("encoder.hidden_size", None, "got null"),
    ("encoder.num_attention_heads", -4, "positive integer"),
    ("encoder.num_attention_heads", "4", 'got "4"'),
    ("encoder.patch_size", 64, "larger than encoder.image_size"),
    ("encoder.patch_size", [8], "[height, width]"),
    ("encoder.patch_size", -8, "positive integer"),
    ("encoder.image_size", 0, "positive integer"),
    ("encoder.image_size", "32", 'got "32"'),
    ("encoder.num_hidden_layers", -1, "whole number >= 0"),
    ("encoder.num_hidden_layers", 10**6, "up to 1024"),
    ("encoder.intermediate_size", 0, "positive integer"),
    ("encoder.num_channels", 2.5, "positive integer"),
    ("encoder.layer_norm_eps", -1.0, "finite number > 0"),
    ("encoder.layer_norm_eps", 0, "finite number > 0"),
    ("encoder.layer_norm_eps", math.inf, "got Infinity"),
    ("encoder.layer_norm_eps", "1e-6", "finite number"),
    ("encoder.hidden_act", "swishy", "one of"),
    ("encoder.hidden_act", 3, "one of"),
    ("encoder.hidden_dropout_prob", 2.0, "between 0 and 1"),
    ("encoder.attention_probs_dropout_prob", -0.1, "between 0 and 1"),
    ("encoder.qkv_bias", "yes", "true or false"),
    ("encoder", [], "JSON object"),
    ("encoder.model_type", "convnext", "unsupported encoder model_type"),
    ("decoder", None, "JSON object, got null"),
    ("decoder.n_embd", "40", 'got "40"'),
    ("decoder.n_embd", -40, "positive integer"),
    ("decoder.n_head", 3, "decoder.n_embd 40 is not divisible by decoder.n_head 3"),
    ("decoder.n_head", 0, "positive integer"),
    ("decoder.n_layer", -2, "whole number >= 0"),
    ("decoder.n_inner", 0, "positive integer"),
    ("decoder.n_positions", -1, "positive integer"),
    ("decoder.n_positions", 0, "positive integer"),
    ("decoder.vocab_size", 0, "positive integer"),
    ("decoder.vocab_size", 10**12, "too large for this machine"),
    ("decoder.vocab_size", 100.0, "positive integer"),
    ("decoder.layer_norm_epsilon", math.inf, "got Infinity"),
    ("decoder.layer_norm_epsilon", 0.0, "finite number > 0"),
    ("decoder.activation_function", "gelu_newer", "one of"),
    ("decoder.resid_pdrop", 1.5, "between 0 and 1"),
    ("decoder.tie_word_embeddings", "true", "true or false"),
    ("decoder.pad_token_id", 5000, "not a token id"),
    ("decoder.pad_token_id", -1, "token id"),
    ("decoder.cross_attention_hidden_size", 7, "not the encoder's width 48"),
    ("decoder_start_token_id", -3, "token id"),
    ("decoder_start_token_id", "340", "token id"),
    ("decoder_start_token_id", 340.0, "token id"),
    ("eos_token_id", [0, 99999], "not a token id"),
    ("eos_token_id", [], "token id"),
    ("pad_token_id", 1.5, "token id"),
]


@pytest.mark.parametrize("field,value,says", CONFIG_CASES, ids=lambda v: repr(v)[:20])
def test_bad_config_field_is_one_line_naming_it(base, image, tmp_path, capsys, field, value, says):
    folder = copy(base, tmp_path)
    edit_json(folder / "config.json", setter(field, value))
    code, out, err = run(capsys, "caption", "--model", str(folder), str(image))
    line = assert_refused(code, err, says, "config.json")
    if "too large" not in says and "model_type" not in says:
        assert field.split(".")[0] in line
        assert field.rsplit(".", 1)[-1] in line
    assert out == ""
    # ved info says the same, instead of a traceback (counting 2 bytes a parameter: the least a model can take)
    code, out, err = run(capsys, "info", str(folder))
    info_line = assert_refused(code, err, says)
    assert info_line == line or "too large" in says


def test_config_without_encoder_says_so(base, image, tmp_path, capsys):
    folder = copy(base, tmp_path)
    edit_json(folder / "config.json", setter("encoder", DELETE))
    code, _out, err = run(capsys, "caption", "--model", str(folder), str(image))
    line = assert_refused(code, err, "no encoder section", "config.json")
    assert "not a vision-encoder-decoder" not in line


# Other families: a config.json written by transformers for each pairing, with one field made bad. `ved info` reads
# the config before anything else, so a folder holding config.json alone shows the check.
FAMILY_CASES = [
    ("deit", "gpt2", "encoder.patch_size", 0, "encoder.patch_size"),
    ("beit", "trocr", "encoder.layer_scale_init_value", math.nan, "encoder.layer_scale_init_value"),
    ("beit", "trocr", "decoder.decoder_attention_heads", 5, "decoder.decoder_attention_heads 5"),
    ("beit", "trocr", "decoder.use_learned_position_embeddings", "no", "decoder.use_learned_position_embeddings"),
    ("swin", "bart", "encoder.num_heads", [2, 5], "encoder.num_heads"),
    ("swin", "bart", "encoder.depths", [2], "encoder.depths has 1 stages"),
    ("swin", "bart", "encoder.window_size", 0, "encoder.window_size"),
    ("swin", "bart", "encoder.embed_dim", -24, "encoder.embed_dim"),
    ("swin", "bart", "encoder.mlp_ratio", -1, "encoder.mlp_ratio"),
    ("swin", "bart", "decoder.decoder_ffn_dim", "44", "decoder.decoder_ffn_dim"),
    ("swin", "bart", "decoder.d_model", 25, "decoder.d_model 25 is not divisible"),
    ("donut-swin", "mbart", "decoder.vocab_size", 0, "decoder.vocab_size"),
    ("donut-swin", "mbart", "decoder.scale_embedding", 1, "decoder.scale_embedding"),
    ("vit", "bert", "decoder.type_vocab_size", 0, "decoder.type_vocab_size"),
    ("vit", "bert", "decoder.hidden_size", 35, "decoder.hidden_size 35 is not divisible"),
    ("vit", "bert", "decoder.max_position_embeddings", None, "decoder.max_position_embeddings"),
    ("vit", "roberta", "decoder.pad_token_id", 63, "leaves no room"),
    ("deit", "electra", "decoder.embedding_size", 0, "decoder.embedding_size"),
    ("vit", "bert-generation", "decoder.layer_norm_eps", 0, "decoder.layer_norm_eps"),
    ("vit", "xlm-roberta", "decoder.hidden_dropout_prob", 1.5, "decoder.hidden_dropout_prob"),
]


@pytest.mark.parametrize("encoder,decoder,field,value,says", FAMILY_CASES, ids=lambda v: repr(v)[:24])
def test_every_family_checks_its_fields(tmp_path, capsys, encoder, decoder, field, value, says):
    import transformers as T

    from support.checkpoints import decoder_config, encoder_config

    enc = encoder_config(encoder)
    width = enc.hidden_size if encoder not in ("swin", "donut-swin") else None
    dec = decoder_config(decoder, vocab_size=100, pad=1, bos=0, eos=2, enc_hidden=width or enc.hidden_size)
    config = T.VisionEncoderDecoderConfig.from_encoder_decoder_configs(enc, dec).to_dict()
    config.update(decoder_start_token_id=0, pad_token_id=1, eos_token_id=2)
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(config))
    code, _out, err = run(capsys, "info", str(folder))
    assert code == 0, err  # the config as transformers wrote it is fine (the folder only lacks its weights)
    setter(field, value)(config)
    (folder / "config.json").write_text(json.dumps(config))
    code, _out, err = run(capsys, "info", str(folder))
    assert_refused(code, err, says, "config.json")


# --- generation_config.json: named as the file and key, never as a flag nobody typed --------------------------------

GENERATION_CASES = [
    ("decoder_start_token_id", -3, "token id"),
    ("eos_token_id", [0, 99999], "not a token id"),
    ("max_length", -1, "max_length must be"),
    ("max_length", 1, "max_length must be"),
    ("num_beams", "x", 'got "x"'),
    ("num_beams", 0, "positive integer"),
    ("temperature", math.nan, "got NaN"),
    ("temperature", 0, "finite number > 0"),
    ("top_p", 2, "between 0 and 1"),
    ("top_k", -1, "whole number >= 0"),
    ("repetition_penalty", math.inf, "got Infinity"),
    ("length_penalty", "long", "finite number"),
    ("do_sample", "yes", "true or false"),
    ("early_stopping", "sometimes", "never"),
    ("num_return_sequences", 0, "positive integer"),
    ("no_repeat_ngram_size", 2.5, "whole number"),
    ("bad_words_ids", [[99999]], "not a token id"),
    ("bad_words_ids", [[]], "token-id lists"),
    ("pad_token_id", 100000, "not a token id"),
]


@pytest.mark.parametrize("key,value,says", GENERATION_CASES, ids=lambda v: repr(v)[:20])
def test_bad_generation_config_names_the_file_not_a_flag(base, image, tmp_path, capsys, key, value, says):
    folder = copy(base, tmp_path)
    edit_json(folder / "generation_config.json", setter(key, value))
    code, out, err = run(capsys, "caption", "--model", str(folder), str(image))
    line = assert_refused(code, err, key, says, "generation_config.json")
    assert "--" not in line.replace(str(folder), "")  # no flag is blamed
    assert out == ""
    code, out, err = run(capsys, "info", str(folder))  # info reports it in its sections and goes on
    assert code == 0 and "Traceback" not in err
    assert "generation_config.json" in out and "error" in out


def test_legacy_generation_fields_in_config_json_are_named_too(base, image, tmp_path, capsys):
    folder = copy(base, tmp_path)
    (folder / "generation_config.json").unlink()
    edit_json(folder / "config.json", setter("decoder.max_length", -1))
    code, _out, err = run(capsys, "caption", "--model", str(folder), str(image))
    assert_refused(code, err, "decoder.max_length", "config.json")


def test_checkpoint_max_length_past_the_positions_is_capped(base, image, tmp_path, capsys):
    """A checkpoint default the decoder cannot reach generates up to its positions, as far as the reference gets
    before it fails, instead of failing on an index."""
    folder = copy(base, tmp_path)
    edit_json(folder / "config.json", setter("decoder.n_positions", 6))  # GPT-2 with 6 positions: 5 new tokens
    _edit_weights(
        folder,
        lambda state: state.update(
            {"decoder.transformer.wpe.weight": state["decoder.transformer.wpe.weight"][:6].clone()}
        ),
    )
    edit_json(
        folder / "generation_config.json", lambda d: d.update(max_length=500, eos_token_id=None, pad_token_id=None)
    )
    code, out, err = run(capsys, "caption", "--model", str(folder), str(image), "--format", "jsonl")
    assert code == 0, err
    assert json.loads(out)["text"]
    code, out, err = run(capsys, "caption", "--model", str(folder), str(image), "--max-new-tokens", "6")
    assert_refused(code, err, "--max-new-tokens 6 goes past the decoder's 6 positions")


# --- processor config ------------------------------------------------------------------------------------------------


def test_processor_size_beyond_memory_is_refused(base, image, tmp_path, capsys):
    folder = copy(base, tmp_path)
    edit_json(folder / "preprocessor_config.json", setter("size", {"height": 100000, "width": 100000}))
    code, _out, err = run(capsys, "caption", "--model", str(folder), str(image))
    assert_refused(code, err, "size 100000x100000", "too large", "preprocessor_config.json")


# --- weights ---------------------------------------------------------------------------------------------------------


def _edit_weights(folder: Path, change) -> None:
    state = load_file(folder / "model.safetensors")
    change(state)
    save_file(state, folder / "model.safetensors")


@pytest.mark.parametrize(
    "key,shape",
    [
        ("decoder.transformer.h.0.attn.c_attn.weight", (48, 120)),  # the note's case: one tensor of another width
        ("encoder.encoder.layer.0.attention.attention.query.weight", (40, 48)),  # one part of a fused tensor
        ("encoder.embeddings.cls_token", (1, 1, 40)),  # a part concatenated along dim 1
        ("decoder.transformer.ln_f.weight", (40, 1)),  # another number of dimensions
    ],
)
def test_misshapen_tensor_is_named_before_use(base, image, tmp_path, capsys, key, shape):
    folder = copy(base, tmp_path)
    _edit_weights(folder, lambda state: state.__setitem__(key, torch.zeros(shape)))
    code, _out, err = run(capsys, "caption", "--model", str(folder), str(image))
    assert_refused(code, err, "wrong shape", key)
    code, out, err = run(capsys, "info", str(folder))  # ved info reports the broken checkpoint
    assert code == 0 and "Traceback" not in err, err
    assert "does not load" in out and key in out


def test_integer_weights_are_refused(base, image, tmp_path, capsys):
    folder = copy(base, tmp_path)
    key = "decoder.transformer.ln_f.weight"
    _edit_weights(folder, lambda state: state.__setitem__(key, state[key].long()))
    code, _out, err = run(capsys, "caption", "--model", str(folder), str(image))
    assert_refused(code, err, "not floating-point", key)


def test_nan_weights_warn_at_load_and_nan_logits_are_an_error(base, image, tmp_path, capsys):
    folder = copy(base, tmp_path)
    _edit_weights(folder, lambda state: state.update({k: torch.full_like(v, math.nan) for k, v in state.items()}))
    for flags in ([], ["--beams", "2"], ["--sample", "--seed", "1"]):
        code, out, err = run(capsys, "caption", "--model", str(folder), str(image), "--max-new-tokens", "2", *flags)
        assert out == ""  # never an empty or meaningless result with exit code 0
        assert_refused(code, err, "NaN")
        warnings = [line for line in err.splitlines() if line.startswith("Warning:")]
        assert len(warnings) == 1 and "NaN or inf" in warnings[0], err
    code, out, err = run(capsys, "info", str(folder))
    assert code == 0 and "NaN or inf" in out


@pytest.mark.parametrize(
    "shard", ["../outside.safetensors", "/tmp/outside.safetensors", "sub/../../x.safetensors", "", 3]
)
def test_shard_index_cannot_leave_the_model_folder(base, image, tmp_path, capsys, shard):
    folder = copy(base, tmp_path)
    state = load_file(folder / "model.safetensors")
    (folder / "model.safetensors").rename(tmp_path / "outside.safetensors")  # a real file the index could reach
    index = {"weight_map": {key: shard for key in state}}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    code, out, err = run(capsys, "caption", "--model", str(folder), str(image))
    assert_refused(code, err, "not a file in the model folder", "model.safetensors.index.json")
    assert out == ""


def test_unreadable_weights_are_not_called_missing(base, image, tmp_path, capsys, monkeypatch):
    """safetensors reports any file it cannot open as missing; ved finds out why (tests run as root, whom file modes
    do not stop, so the refusal is simulated where ved opens the file)."""
    import vedcli.checkpoints.files as checkpoint

    folder = copy(base, tmp_path)
    weights = folder / "model.safetensors"

    def load_file(path, device="cpu"):
        raise FileNotFoundError(f"No such file or directory: {str(path)!r}")

    def refusing_open(path, *args, **kwargs):
        if Path(path) == weights:
            raise PermissionError(13, "Permission denied", str(path))
        return open(path, *args, **kwargs)

    monkeypatch.setattr(checkpoint, "load_file", load_file)
    monkeypatch.setattr(checkpoint, "open", refusing_open, raising=False)
    code, _out, err = run(capsys, "caption", "--model", str(folder), str(image))
    line = assert_refused(code, err, "cannot read weights file: permission denied", "model.safetensors")
    assert "missing" not in line


def test_poisoned_training_state_is_refused_without_torch_advice(tmp_path):
    from vedcli.errors import ModelError
    from vedcli.training.state import STATE_FILE, TrainingState

    class Payload:
        def __reduce__(self):
            return (os.system, ("echo pwned > " + str(tmp_path / "ran"),))

    torch.save({"format": 1, "x": Payload()}, tmp_path / STATE_FILE)
    with pytest.raises(ModelError) as refused:
        TrainingState.load(tmp_path)
    assert not (tmp_path / "ran").exists()
    message = str(refused.value)
    assert "refusing to unpickle" in message and "system" in message
    assert "weights_only" not in message and "\n" not in message


# --- flags -----------------------------------------------------------------------------------------------------------

FLAG_CASES = [
    (["--sample", "--seed", str(2**70)], "--seed", "at most"),
    (["--sample", "--seed", str(2**64)], "--seed", "at most"),
    (["--sample", "--seed", "-1"], "--seed", ">= 0"),
    (["--sample", "--temperature", "nan"], "--temperature", "finite"),
    (["--sample", "--temperature", "inf"], "--temperature", "finite"),
    (["--sample", "--temperature", "-inf"], "--temperature", "finite"),
    (["--sample", "--top-p", "nan"], "--top-p", "finite"),
    (["--repetition-penalty", "nan"], "--repetition-penalty", "finite"),
    (["--repetition-penalty", "inf"], "--repetition-penalty", "finite"),
    (["--beams", "2", "--length-penalty", "nan"], "--length-penalty", "finite"),
    (["--beams", "2", "--length-penalty", "-inf"], "--length-penalty", "finite"),
    (["--max-new-tokens", str(10**9)], "--max-new-tokens", "positions"),
    (["--max-new-tokens", "64"], "--max-new-tokens", "positions"),  # the start token takes one of the 64
    (["--max-new-tokens", "-3"], "--max-new-tokens", ">= 1"),
    (["--beams", "0"], "--beams", ">= 1"),
    (["--beams", str(10**9), "--max-new-tokens", "2"], "--beams", "more than the"),  # its cache, before allocating
    (["--sample", "--num-return-sequences", str(10**9)], "--num-return-sequences", "more than the"),
]


@pytest.mark.parametrize("flags,flag,says", FLAG_CASES, ids=lambda v: " ".join(v) if isinstance(v, list) else v)
def test_bad_flag_value_is_refused_naming_the_flag(base, image, capsys, flags, flag, says):
    code, out, err = run(capsys, "caption", "--model", str(base), str(image), *flags)
    assert_refused(code, err, flag, says)
    assert out == ""


def test_seed_at_the_top_of_its_range_works(base, image, capsys):
    code, out, err = run(
        capsys,
        "caption",
        "--model",
        str(base),
        str(image),
        "--sample",
        "--seed",
        str(2**64 - 1),
        "--max-new-tokens",
        "3",
    )
    assert code == 0 and out, err


# --- inputs ----------------------------------------------------------------------------------------------------------


def test_file_name_too_long_is_an_error_row(base, image, tmp_path, capsys):
    long = str(tmp_path / ("L" * 300 + ".png"))
    code, out, err = run(
        capsys, "caption", "--model", str(base), long, str(image), "--format", "jsonl", "--max-new-tokens", "2"
    )
    assert code == 1 and "Traceback" not in err, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert rows[0]["file"] == long and "too long" in rows[0]["error"]
    assert rows[1]["text"]


@pytest.mark.parametrize("errors", ["strict", "surrogateescape"])
def test_png_bytes_piped_to_stdin_are_error_rows(base, image, tmp_path, capsys, monkeypatch, errors):
    raw = image.read_bytes() + b"\n" + b"L" * 5000 + b"\n"
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(raw), encoding="utf-8", errors=errors))
    out_file = tmp_path / "rows.jsonl"
    code, _out, err = run(capsys, "caption", "--model", str(base), "-", "--format", "jsonl", "-o", str(out_file))
    assert code == 1 and "Traceback" not in err, err
    rows = [json.loads(line) for line in out_file.read_text(encoding="utf-8").splitlines()]
    assert rows and all("error" in row for row in rows)
    assert any("too long" in row["error"] for row in rows)


@pytest.mark.parametrize("fmt", ["csv", "tsv", "jsonl", "text"])
def test_non_utf8_file_name_is_written_escaped(base, image, tmp_path, capsys, fmt):
    name = os.fsdecode(os.fsencode(str(tmp_path)) + b"/caf\xe9.png")  # byte 0xE9 alone is not UTF-8
    shutil.copy(image, name)
    out_file = tmp_path / f"out.{fmt}"
    code, out, err = run(
        capsys,
        "caption",
        "--model",
        str(base),
        name,
        str(image),
        "--format",
        fmt,
        "-o",
        str(out_file),
        "--max-new-tokens",
        "2",
    )
    assert code == 0, err
    written = out_file.read_text(encoding="utf-8")  # valid UTF-8 throughout
    first = written.splitlines()[1 if fmt in ("csv", "tsv") else 0]
    if fmt == "jsonl":
        first = json.loads(first)["file"]
    elif fmt == "tsv":
        first = first.replace("\\\\", "\\")  # tsv escapes the backslash itself
    assert "caf\\xe9.png" in first


def test_escape_sequences_in_file_names_do_not_reach_the_terminal(base, image, tmp_path, capsys):
    red = tmp_path / "\x1b[31mred.png"
    shutil.copy(image, red)
    missing = tmp_path / "gone\x1b[2J.png"
    code, out, err = run(capsys, "caption", "--model", str(base), str(red), str(missing), "--max-new-tokens", "2")
    assert code == 1
    assert "\x1b" not in out and "\x1b" not in err
    assert "\\x1b[31mred.png" in out and "\\x1b[2J" in err


# --- ved compose -----------------------------------------------------------------------------------------------------

COMPOSE_CASES = [
    (["--encoder-config", "hidden_size=-1"], "--encoder-config", "encoder.hidden_size"),
    (["--decoder-config", "vocab_size=1000000000000"], "--decoder-config", "too large"),
    (["--encoder-config", "patch_size=0"], "--encoder-config", "encoder.patch_size"),
    (
        ["--encoder-config", "num_attention_heads=7", "--encoder-config", "hidden_size=192"],
        "--encoder-config",
        "encoder.hidden_size 192 is not divisible by encoder.num_attention_heads 7",
    ),
    (["--encoder-config", "hidden_size=100"], "--encoder-config", "not divisible"),
    (["--decoder-config", "num_attention_heads=5"], "--decoder-config", "decoder.num_attention_heads 5"),
    (["--decoder-config", "hidden_size=0"], "--decoder-config", "decoder.hidden_size"),
    (["--decoder-config", "layer_norm_eps=0"], "--decoder-config", "decoder.layer_norm_eps"),
    (["--encoder-config", "num_hidden_layers=100000"], "--encoder-config", "encoder.num_hidden_layers"),
    (["--encoder-config", "image_size=8", "--encoder-config", "patch_size=16"], "--encoder-config", "larger"),
    (["--encoder-config", "hidden_size=120000"], "--encoder-config", "too large"),  # 12 heads of 10000
]


@pytest.mark.parametrize("flags,flag,says", COMPOSE_CASES, ids=lambda v: " ".join(v) if isinstance(v, list) else v)
def test_compose_refuses_bad_sizes_naming_the_flag(tmp_path, capsys, flags, flag, says):
    target = tmp_path / "out"
    code, out, err = run(capsys, "compose", "vit", "bert", "-o", str(target), *flags)
    assert_refused(code, err, f"({flag})", says)
    assert not target.exists() and out == ""


# --- crashes ---------------------------------------------------------------------------------------------------------


def test_a_crash_has_its_own_exit_code_and_asks_for_a_report(base, capsys, monkeypatch):
    import vedcli.commands.info

    def boom(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(vedcli.commands.info, "describe", boom)
    code, _out, err = run(capsys, "info", str(base))
    line = assert_refused(code, err, "RuntimeError: boom", "bug", "VED_DEBUG=1", exit_code=EXIT_CRASH)
    assert EXIT_CRASH not in (0, 1, 2, 130)
    assert line.count("\n") == 0
    monkeypatch.setenv("VED_DEBUG", "1")  # the traceback, for the report
    with pytest.raises(RuntimeError, match="boom"):
        main(["info", str(base)])


def test_a_crash_outside_the_work_is_one_line_too(capsys, monkeypatch):
    """An exception before a command's work starts (parsing the command line, say) is reported the same way."""
    monkeypatch.setattr(cli.typer.main, "get_command", lambda app: _Raising())
    code, _out, err = run(capsys, "caption", "x.png")
    assert_refused(code, err, "ValueError: early", "VED_DEBUG=1", exit_code=EXIT_CRASH)


class _Raising:
    def main(self, **kwargs):
        raise ValueError("early")


def test_exit_codes_are_documented():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert f"`{EXIT_CRASH}`" in readme and "VED_DEBUG=1" in readme
    assert f"{EXIT_CRASH} ved crashed" in cli.__doc__
