"""`ved train --ctc-weight`: the auxiliary CTC head on the encoder (vedcli/training/ctc.py).

Its targets are the text ids only; one encoder pass feeds the decoder and the head; the CTC loss falls while the
reported `loss` stays the token loss; RUN/best and RUN/last stay plain checkpoints (the head lives in
training_state.pt only); resuming is bit for bit; bf16; bad settings refused; two processes (slow).
"""

from __future__ import annotations

import io
import json
import math

import pytest
import torch
import transformers as T
from PIL import Image
from safetensors.torch import load_file

from support.checkpoints import reference
from support.training import (
    NO_DROPOUT,
    TEXTS,
    close,
    events,
    invoke,
    reference_labels,
    run_quietly,
    same_weights,
    torchrun_train,
    train_options,
    write_data,
)
from vedcli.checkpoints.load import load_model
from vedcli.generation.defaults import SpecialTokens
from vedcli.processing.tokenizer import load_tokenizer
from vedcli.training.ctc import CTCHead, WithCTC, new_head, special_ids, targets
from vedcli.training.state import TrainingState
from vedcli.training.trainer import TrainOptions, resumed_options, train


@pytest.mark.parametrize("decoder", ["trocr", "bert", "gpt2"])
def test_targets_are_the_text_ids_only(tiny, decoder):
    """<s> x </s>, [CLS] x [SEP], x <|endoftext|>: the start, end and padding ids are left out, in every family."""
    folder = tiny("vit", decoder)
    tokenizer, model = load_tokenizer(folder), load_model(folder)
    eos = SpecialTokens.from_config(model.generation_config).eos[0]
    special = torch.tensor(special_ids(tokenizer, model.config.decoder_start_token_id, model.config.pad_token_id, eos))
    labels = reference_labels(folder, TEXTS[:3], eos)  # what training gets: special tokens, eos, -100 padding
    flat, lengths = targets(labels, special)
    text = [tokenizer.encode(t, add_special_tokens=False) for t in TEXTS[:3]]
    assert lengths.tolist() == [len(ids) for ids in text]
    assert flat.tolist() == [i for ids in text for i in ids]
    assert torch.isin(labels, special).any() and not torch.isin(flat, special).any()


def test_one_encoder_pass_feeds_the_decoder_and_the_head(tiny, monkeypatch):
    model = load_model(tiny("vit", "gpt2"))  # a projection between encoder (48) and decoder (40)
    head = new_head(model, seed=0)
    calls = []
    forward_features = model.encoder.forward_features
    monkeypatch.setattr(model.encoder, "forward_features", lambda x: calls.append(1) or forward_features(x))
    pixels = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    ids = torch.randint(0, model.config.decoder.vocab_size, (2, 5), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out = WithCTC(model, head)(pixel_values=pixels, decoder_input_ids=ids)
        assert len(calls) == 1
        assert torch.equal(out.logits, model(pixel_values=pixels, decoder_input_ids=ids).logits)
    assert out.ctc_logits.shape == (2, 16, model.config.decoder.vocab_size + 1)  # 4x4 patches, no class token
    assert head.blank == model.config.decoder.vocab_size
    assert torch.equal(new_head(model, seed=0).proj.weight, head.proj.weight)  # its own seed, reproducible


def test_frames_run_column_by_column():
    """A 2x3 patch grid behind a class token: frames (0,0) (1,0) (0,1) (1,1) (0,2) (1,2), as a text line runs."""
    head = CTCHead(width=2, vocab_size=1, prefix=1, grid=(2, 3))
    head.norm = torch.nn.Identity()
    with torch.no_grad():
        head.proj.weight.copy_(torch.eye(2))
        head.proj.bias.zero_()
    cells = [[-1.0, -1.0]] + [[r, c] for r in range(2) for c in range(3)]  # class token, then row by row
    frames = head(torch.tensor([cells]))
    assert frames[0].tolist() == [[0, 0], [1, 0], [0, 1], [1, 1], [0, 2], [1, 2]]


# --- training ------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ctc_run(tiny, tmp_path_factory):
    """12 steps of ViT + TrOCR on four squares with --ctc-weight 0.5, through the CLI."""
    folder = tiny("vit", "trocr", decoder_over={"dropout": 0.0})
    tmp = tmp_path_factory.mktemp("ctc")
    data = write_data(tmp / "data", 4)
    run = tmp / "run"
    result = invoke(
        "--model",
        folder,
        "--data",
        data,
        "--val-data",
        data,
        "--output",
        run,
        "--max-steps",
        12,
        "--batch-size",
        4,
        "--lr",
        3e-3,
        "--schedule",
        "constant",
        "--log-every",
        1,
        "--ctc-weight",
        0.5,
    )
    return folder, data, run, result


def test_ctc_loss_falls_and_loss_stays_the_token_loss(ctc_run):
    folder, data, run, result = ctc_run
    assert result.exit_code == 0, result.output
    steps = events(run, "train")
    assert all(
        set(e) == {"event", "step", "epoch", "loss", "lr", "images_per_s", "grad_norm", "ctc_loss"} for e in steps
    )
    assert steps[-1]["ctc_loss"] < 0.7 * steps[0]["ctc_loss"]
    assert steps[-1]["loss"] < steps[0]["loss"]
    assert "ctc " in result.stderr  # the step log line shows it
    # the first step's `loss` is the reference's token loss alone, without the CTC term
    model = load_model(folder)
    eos = SpecialTokens.from_config(model.generation_config).eos[0]
    images = [Image.open(data / f"{i}.png").convert("RGB") for i in range(4)]
    pixels = T.ViTImageProcessor.from_pretrained(folder)(images, return_tensors="pt").pixel_values
    with torch.no_grad():
        expected = reference(folder)(pixel_values=pixels, labels=reference_labels(folder, TEXTS[:4], eos)).loss
    assert abs(steps[0]["loss"] - expected.item()) < 1e-5
    assert json.loads((run / "train_args.json").read_text())["options"]["ctc_weight"] == 0.5


def test_checkpoints_hold_no_ctc_head(ctc_run):
    folder, _, run, result = ctc_run
    assert result.exit_code == 0, result.output
    source = load_file(folder / "model.safetensors").keys()
    for name in ("best", "last"):
        assert load_file(run / name / "model.safetensors").keys() == source
        model, info = T.VisionEncoderDecoderModel.from_pretrained(run / name, output_loading_info=True)
        assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
    assert not [p.name for p in (run / "last").iterdir() if "ctc" in p.name.lower()]
    head = TrainingState.load(run / "last").heads["ctc"]  # the head is in the training state
    vocab = load_model(folder).config.decoder.vocab_size
    assert head["proj.weight"].shape == (vocab + 1, 48)


def test_bf16_autocast(ctc_run, tmp_path):
    folder, data, run, _ = ctc_run
    run_quietly(
        TrainOptions(
            model=str(folder),
            data=str(data),
            output=str(tmp_path / "bf16"),
            max_steps=1,
            batch_size=4,
            lr=3e-3,
            log_every=1,
            ctc_weight=0.5,
            dtype="bf16",
        )
    )
    fp32, bf16 = events(run, "train")[0]["ctc_loss"], events(tmp_path / "bf16", "train")[0]["ctc_loss"]
    assert math.isfinite(bf16) and bf16 != fp32 and abs(bf16 - fp32) < 0.02 * fp32


def test_resume_with_ctc_is_bit_identical(tiny, tmp_path):
    model = tiny("vit", "gpt2")  # dropout on: the random state must be restored too
    data = write_data(tmp_path / "data", 5)
    straight, split = tmp_path / "straight", tmp_path / "split"
    run_quietly(train_options(model, data, straight, max_steps=4, schedule="constant", ctc_weight=0.3))
    run_quietly(train_options(model, data, split, max_steps=2, schedule="constant", ctc_weight=0.3))
    result = invoke("--output", split, "--resume", "--max-steps", 4)
    assert result.exit_code == 0, result.output
    same_weights(straight, split)  # the model and the optimizer's moments (the head's among them)
    heads = [TrainingState.load(run / "last").heads["ctc"] for run in (straight, split)]
    assert heads[0].keys() == heads[1].keys() and all(torch.equal(heads[0][k], heads[1][k]) for k in heads[0])
    assert [e["ctc_loss"] for e in events(split, "train")] == [e["ctc_loss"] for e in events(straight, "train")]

    result = invoke("--output", split, "--resume", "--max-steps", 5, "--ctc-weight", 0)
    assert result.exit_code == 2
    assert "Error: a resumed run keeps its --ctc-weight (0.3) (--ctc-weight)" in result.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["--ctc-weight", "-0.5"], "Error: must be 0 (no CTC loss) or more, got -0.5 (--ctc-weight)"),
        (["--ctc-weight", "nan"], "Error: must be 0 (no CTC loss) or more, got nan (--ctc-weight)"),
        (["--ctc-weight", "inf"], "Error: must be 0 (no CTC loss) or more, got inf (--ctc-weight)"),
        (
            ["--ctc-weight", "0.3", "--freeze-encoder"],
            "Error: a CTC loss on the encoder has nothing to train with --freeze-encoder (--ctc-weight)",
        ),
    ],
)
def test_bad_ctc_settings_are_refused(tmp_path, args, message):
    result = invoke("--model", "M", "--data", "D", "--output", tmp_path / "run", *args)
    assert result.exit_code == 2
    assert result.stderr.strip() == message
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_two_processes_match_one_with_ctc(tiny, tmp_path):
    """torchrun with two processes and the head: the same losses (token and CTC) and the same head as one process."""
    model = tiny("vit", "gpt2", decoder_over=NO_DROPOUT)
    data = write_data(tmp_path / "data", 4)
    common = [
        "--model",
        str(model),
        "--data",
        str(data),
        "--max-steps",
        "3",
        "--grad-accum",
        "2",
        "--lr",
        "3e-3",
        "--log-every",
        "1",
        "--ctc-weight",
        "0.5",
    ]
    done = torchrun_train([*common, "--batch-size", "1", "--output", str(tmp_path / "two")], timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    one = TrainOptions(
        model=str(model),
        data=str(data),
        max_steps=3,
        grad_accum=2,
        lr=3e-3,
        log_every=1,
        ctc_weight=0.5,
        batch_size=2,
        output=str(tmp_path / "one"),
    )
    train(one, err=io.StringIO(), progress_bar=False)
    two, single = events(tmp_path / "two", "train"), events(tmp_path / "one", "train")
    assert len(two) == len(single) == 3
    for a, b in zip(two, single, strict=True):
        assert close(a["loss"], b["loss"]) and close(a["ctc_loss"], b["ctc_loss"]), (a, b)
    assert single[0]["ctc_loss"] != single[-1]["ctc_loss"]
    heads = [TrainingState.load(tmp_path / run / "last").heads["ctc"] for run in ("two", "one")]
    for name in heads[0]:  # the head's gradients were summed over both processes
        assert (heads[0][name] - heads[1][name]).abs().max().item() < 1e-4, name
    assert resumed_options(tmp_path / "two").ctc_weight == 0.5
