"""`ved info`: the report against the reference's own view of the same checkpoint."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

from support.checkpoints import reference
from vedcli.cli import app
from vedcli.commands.info import describe

runner = CliRunner()


@pytest.mark.parametrize("encoder,decoder", [("vit", "gpt2"), ("deit", "trocr"), ("vit", "roberta")])
def test_report_matches_reference(tiny, encoder, decoder):
    folder = tiny(encoder, decoder)
    ref = reference(folder)
    report = describe(str(folder))
    enc, dec = ref.config.encoder, ref.config.decoder
    assert report["encoder"]["type"] == enc.model_type
    assert report["encoder"]["layers"] == enc.num_hidden_layers
    assert report["encoder"]["width"] == enc.hidden_size
    assert report["decoder"]["type"] == dec.model_type
    assert report["decoder"]["vocabulary"] == dec.vocab_size
    # ved drops the encoder's unused pooler; everything else is the same parameter set
    pooler = sum(p.numel() for n, p in ref.named_parameters() if n.startswith("encoder.pooler"))
    assert report["parameters"]["total"].startswith(f"{ref.num_parameters() - pooler:,} ")
    gen = ref.generation_config
    assert report["special tokens"]["decoder start"].startswith(f"{gen.decoder_start_token_id} ")
    assert report["special tokens"]["padding"].startswith(f"{gen.pad_token_id} ")
    assert report["generation"]["max_new_tokens"] == 20
    assert report["tokenizer"]["tokens"] == dec.vocab_size
    assert report["weights"]["status"] == "loads"
    assert "encoder.pooler.dense.weight" in report["weights"]["ignored keys"]


def test_cli_text_and_json(tiny):
    folder = tiny("vit", "gpt2")
    text = runner.invoke(app, ["info", str(folder)])
    assert text.exit_code == 0
    assert "\nencoder\n  type        vit\n" in text.output
    assert "  status        loads" in text.output
    as_json = runner.invoke(app, ["info", str(folder), "--format", "json"])
    assert as_json.exit_code == 0
    assert json.loads(as_json.output)["decoder"]["type"] == "gpt2"


def test_broken_weights_are_reported_not_fatal(tiny, tmp_path):
    folder = tmp_path / "broken"
    shutil.copytree(tiny("vit", "gpt2"), folder)
    state = load_file(folder / "model.safetensors")
    state.pop("decoder.transformer.ln_f.bias")
    save_file(state, folder / "model.safetensors")
    result = runner.invoke(app, ["info", str(folder)])
    assert result.exit_code == 0
    assert "does not load: checkpoint does not match its config: missing decoder.transformer.ln_f.bias" in result.output


def test_bad_model_is_one_line_exit_2(tiny, tmp_path):
    result = runner.invoke(app, ["info", str(tmp_path / "nothing")])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [f"Error: no such folder or hub model ({tmp_path / 'nothing'})"]
    folder = tmp_path / "other"
    shutil.copytree(tiny("vit", "gpt2"), folder)
    cfg = json.loads((folder / "config.json").read_text())
    cfg["encoder"]["model_type"] = "convnext"
    (folder / "config.json").write_text(json.dumps(cfg))
    result = runner.invoke(app, ["info", str(folder)])
    assert result.exit_code == 2
    assert "unsupported encoder model_type 'convnext' (supported: " in result.output
    assert "deit" in result.output and "vit" in result.output


@pytest.mark.parametrize("encoder,decoder", [("donut-swin", "mbart"), ("swin", "bart"), ("beit", "trocr")])
def test_encoder_token_count_is_what_the_encoder_outputs(tiny, encoder, decoder):
    folder = tiny(encoder, decoder)
    ref = reference(folder)
    size = ref.config.encoder.image_size
    size = size if isinstance(size, (list, tuple)) else (size, size)
    with torch.no_grad():
        out = ref.encoder(pixel_values=torch.zeros(1, 3, *size)).last_hidden_state
    assert describe(str(folder))["encoder"]["tokens out"] == out.shape[1]
