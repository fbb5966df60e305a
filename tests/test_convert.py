"""`ved convert`: round trips through transformers and ved, layouts, dtypes, atomic writes, the logit check."""

from __future__ import annotations

import json
import os

import pytest
import torch
import transformers as T
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

from support.checkpoints import fill_sinusoidal_table, reference, write_checkpoint
from support.legacy import as_v4
from vedcli.checkpoints import save as save_module
from vedcli.checkpoints.load import load_model
from vedcli.cli import app
from vedcli.commands.convert import convert, probe_image
from vedcli.errors import ModelError

runner = CliRunner()
PIXELS = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(11))
TEXTS = ["A cat on a mat.", "Zürich café 42 — ok?", "  spaces  ", ""]


def logits(model, vocab):
    ids = torch.arange(6).remainder(vocab)[None].expand(2, -1)
    with torch.no_grad():
        return model(pixel_values=PIXELS, decoder_input_ids=ids).logits


def assert_transformers_loads(folder):
    model, info = T.VisionEncoderDecoderModel.from_pretrained(folder, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    return fill_sinusoidal_table(model.eval())


@pytest.mark.parametrize(
    "encoder,decoder", [("vit", "gpt2"), ("deit", "trocr-sinusoidal"), ("beit", "bert"), ("swin", "bart")]
)
def test_pickle_to_safetensors_round_trip(tmp_path, encoder, decoder):
    source = write_checkpoint(tmp_path / "src", encoder, decoder, safe=False)
    assert (source / "pytorch_model.bin").exists()
    convert(str(source), tmp_path / "dst")
    dst = tmp_path / "dst"
    assert (dst / "model.safetensors").exists() and not (dst / "pytorch_model.bin").exists()
    vocab = load_model(source).config.decoder.vocab_size
    expected = logits(reference(source), vocab)
    assert torch.equal(logits(assert_transformers_loads(dst), vocab), expected)
    assert (logits(load_model(dst), vocab) - expected).abs().max() < 1e-4


@pytest.mark.parametrize("dtype,torch_dtype,tol", [("fp16", torch.float16, 2e-2), ("bf16", torch.bfloat16, 8e-2)])
def test_half_precision_output(tiny, tmp_path, dtype, torch_dtype, tol):
    source = tiny("vit", "roberta")
    done = convert(str(source), tmp_path / "dst", dtype=dtype)
    stored = load_file(tmp_path / "dst" / "model.safetensors")
    assert {t.dtype for t in stored.values()} == {torch_dtype}
    assert json.loads((tmp_path / "dst" / "config.json").read_text())["dtype"] == str(torch_dtype)[6:]
    assert done.max_diff <= 1e-5 * 10 and done.rounding > 0
    ref = assert_transformers_loads(tmp_path / "dst")
    assert ref.dtype == torch_dtype
    vocab = ref.config.decoder.vocab_size
    full = logits(reference(source), vocab)
    rounded = logits(load_model(tmp_path / "dst", dtype="fp32"), vocab)  # the stored weights, fp32 arithmetic
    assert (rounded - full).abs().max() < tol * full.abs().max()
    assert torch.isfinite(logits(load_model(tmp_path / "dst"), vocab)).all()  # and it runs in its own dtype


def test_sharded_output(tiny, tmp_path):
    source = tiny("vit", "gpt2")
    done = convert(str(source), tmp_path / "dst", max_shard_size=30_000)
    shards = sorted(p.name for p in (tmp_path / "dst").glob("model-*.safetensors"))
    assert len(shards) > 1 and done.files[: len(shards)] == shards
    index = json.loads((tmp_path / "dst" / "model.safetensors.index.json").read_text())
    assert set(index["weight_map"].values()) == set(shards)
    for shard in shards:  # within the limit, unless one tensor alone is larger
        tensors = load_file(tmp_path / "dst" / shard)
        size = sum(t.numel() * t.element_size() for t in tensors.values())
        assert size <= 30_000 or len(tensors) == 1
    vocab = load_model(source).config.decoder.vocab_size
    assert torch.equal(logits(assert_transformers_loads(tmp_path / "dst"), vocab), logits(reference(source), vocab))


@pytest.mark.parametrize("decoder", ["gpt2", "bert", "roberta", "trocr-sinusoidal"])
def test_every_tokenizer_format_becomes_tokenizer_json(tiny, tmp_path, decoder):
    source = tiny("vit", decoder)
    convert(str(source), tmp_path / "dst")
    dst = tmp_path / "dst"
    assert (dst / "tokenizer.json").exists()
    for old in ("vocab.json", "merges.txt", "vocab.txt", "sentencepiece.bpe.model"):
        assert not (dst / old).exists()
    before, after = T.AutoTokenizer.from_pretrained(source), T.AutoTokenizer.from_pretrained(dst)
    for text in TEXTS:
        assert after(text).input_ids == before(text).input_ids
        ids = before(text).input_ids
        assert after.decode(ids, skip_special_tokens=True) == before.decode(ids, skip_special_tokens=True)


def test_processor_and_generation_config_are_current_and_resolved(tmp_path):
    source = write_checkpoint(tmp_path / "src", "vit", "trocr")
    as_v4(source, dict(num_beams=3, max_length=9, no_repeat_ngram_size=2))  # legacy: settings inside config.json
    convert(str(source), tmp_path / "dst")
    dst = tmp_path / "dst"
    gen = json.loads((dst / "generation_config.json").read_text())
    assert gen["num_beams"] == 3 and gen["no_repeat_ngram_size"] == 2
    ref_src = reference(source)
    assert gen["decoder_start_token_id"] == ref_src.generation_config.decoder_start_token_id
    assert gen["pad_token_id"] == ref_src.generation_config.pad_token_id
    ref_dst = assert_transformers_loads(dst)
    assert torch.equal(ref_dst.generate(PIXELS), ref_src.generate(PIXELS))
    image = probe_image(50, 70)
    a = T.AutoImageProcessor.from_pretrained(source)(images=image, return_tensors="pt").pixel_values
    b = T.AutoImageProcessor.from_pretrained(dst)(images=image, return_tensors="pt").pixel_values
    assert torch.equal(a, b)


def test_refuses_to_overwrite_without_force(tiny, tmp_path):
    dst = tmp_path / "dst"
    dst.mkdir()
    (dst / "keep.txt").write_text("mine")
    for force in ([], ["--force"]):  # a folder ved did not write is never replaced (tests/test_no_overwrite.py)
        result = runner.invoke(app, ["convert", str(tiny("vit", "gpt2")), "-o", str(dst), *force])
        assert result.exit_code == 2
        assert result.output.strip() == (
            f"Error: already exists and holds keep.txt, which ved did not write; ved will not replace it ({dst})"
        )
        assert [p.name for p in dst.iterdir()] == ["keep.txt"]
    dst = tmp_path / "ved-wrote-it"
    assert runner.invoke(app, ["convert", str(tiny("vit", "gpt2")), "-o", str(dst)]).exit_code == 0
    result = runner.invoke(app, ["convert", str(tiny("vit", "gpt2")), "-o", str(dst)])
    assert result.exit_code == 2
    assert result.output.strip() == f"Error: already exists; --force replaces it ({dst})"
    result = runner.invoke(app, ["convert", str(tiny("vit", "gpt2")), "-o", str(dst), "--force"])
    assert result.exit_code == 0, result.output
    assert (dst / "model.safetensors").exists()
    assert result.output.startswith(f"wrote {dst}: 1 weight file (")
    assert "checked: reloaded, it gives the source's logits on a probe image (largest difference 0)" in result.output


@pytest.mark.parametrize("failure", [RuntimeError("disk full"), KeyboardInterrupt()])
def test_interrupted_convert_leaves_nothing(tiny, tmp_path, monkeypatch, failure):
    real = save_module.write_weights

    def write_then_fail(folder, state, max_shard_size=None):
        real(folder, state, max_shard_size)
        raise failure

    monkeypatch.setattr(save_module, "write_weights", write_then_fail)
    with pytest.raises(type(failure)):
        convert(str(tiny("vit", "gpt2")), tmp_path / "dst")
    assert list(tmp_path.iterdir()) == []


def test_existing_target_survives_a_failed_forced_convert(tiny, tmp_path, monkeypatch):
    dst = tmp_path / "dst"
    convert(str(tiny("vit", "gpt2")), dst)
    before = sorted(p.name for p in dst.iterdir())
    monkeypatch.setattr(save_module, "write_weights", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("boom")))
    with pytest.raises(RuntimeError):
        convert(str(tiny("vit", "gpt2")), dst, force=True)
    assert sorted(p.name for p in dst.iterdir()) == before
    assert [p.name for p in tmp_path.iterdir()] == ["dst"]


def test_a_conversion_that_changes_the_logits_is_refused(tiny, tmp_path, monkeypatch):
    real = save_module.write_weights

    def corrupt(folder, state, max_shard_size=None):
        state = dict(state)
        name = next(k for k in state if k.endswith("ln_f.weight"))
        state[name] = state[name] * 1.5
        return real(folder, state, max_shard_size)

    monkeypatch.setattr(save_module, "write_weights", corrupt)
    with pytest.raises(ModelError, match="logits differ from the source's by .*nothing was written"):
        convert(str(tiny("vit", "gpt2")), tmp_path / "dst")
    assert not (tmp_path / "dst").exists()


def test_bad_flags_are_one_line_errors(tiny, tmp_path):
    result = runner.invoke(
        app, ["convert", str(tiny("vit", "gpt2")), "-o", str(tmp_path / "d"), "--max-shard-size", "lots"]
    )
    assert result.exit_code == 2
    assert result.output.strip() == "Error: cannot read size 'lots' (use e.g. 500MB or 2GB) (--max-shard-size)"
    result = runner.invoke(app, ["convert", str(tmp_path / "missing"), "-o", str(tmp_path / "d")])
    assert result.exit_code == 2 and result.output.startswith("Error: no such folder or hub model")
    assert not (tmp_path / "d").exists()


def test_donut_swin_buffers_survive_and_folder_is_ordinary(tmp_path):
    source = write_checkpoint(tmp_path / "src", "donut-swin", "mbart")
    saved = load_file(source / "model.safetensors")
    buffers = [k for k in saved if k.endswith("relative_position_index")]
    assert buffers  # transformers saves DonutSwin's index buffers and expects them back
    convert(str(source), tmp_path / "dst")
    written = load_file(tmp_path / "dst" / "model.safetensors")
    for key in buffers:
        assert torch.equal(written[key], saved[key])
    assert_transformers_loads(tmp_path / "dst")
    assert (tmp_path / "dst").stat().st_mode & 0o077 == (0o777 & ~_umask()) & 0o077
    # a source without them (ved does not need them) gets them computed, equal to what transformers saves
    save_file({k: v for k, v in saved.items() if k not in buffers}, source / "model.safetensors")
    convert(str(source), tmp_path / "dst2")
    rebuilt = load_file(tmp_path / "dst2" / "model.safetensors")
    for key in buffers:
        assert torch.equal(rebuilt[key], saved[key])


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
