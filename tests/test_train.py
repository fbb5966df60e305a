"""`ved train`: the loss against the reference's, overfitting a tiny dataset, resuming bit for bit, Ctrl-C, bad data,
the learning-rate schedule against transformers', mixed precision, a frozen encoder, and the run folder's files.

Models are tiny random checkpoints written by transformers (tests/checkpoints.py); data are coloured squares with
short captions written into tmp_path. Two-process training is in test_train_ddp.py.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import transformers as T
from PIL import Image
from safetensors.torch import load_file
from typer.testing import CliRunner

from support.checkpoints import reference
from support.training import (
    NO_DROPOUT,
    TEXTS,
    events,
    invoke,
    reference_labels,
    run_quietly,
    same_weights,
    train_options,
    write_data,
)
from vedcli.checkpoints.load import load_model
from vedcli.cli import app
from vedcli.errors import OptionError
from vedcli.generation.defaults import SpecialTokens
from vedcli.processing.image import load_image_processor
from vedcli.processing.tokenizer import load_tokenizer
from vedcli.training.data import Example, ImageTextDataset, collate
from vedcli.training.optim import lr_factor, make_optimizer
from vedcli.training.state import TrainingState
from vedcli.training.trainer import TrainOptions, batch_loss, resumed_options, train

ROOT = Path(__file__).resolve().parents[1]
# Short captions of four words or more (so BLEU-4 has 4-grams), made of words the tiny tokenizers know.


# --- the loss ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("decoder", ["gpt2", "trocr", "bert"])
def test_loss_matches_reference_forward(tiny, tmp_path, decoder):
    folder = tiny("vit", decoder)
    data = write_data(tmp_path / "data", 4)
    examples = [Example(data / f"{i}.png", TEXTS[i], i + 1) for i in range(4)]
    model = load_model(folder)
    tokenizer = load_tokenizer(folder)
    eos = SpecialTokens.from_config(model.generation_config).eos[0]
    processor = load_image_processor(folder, image_size=model.config.encoder.image_size)
    dataset = ImageTextDataset(examples, processor, tokenizer, eos, append_eos=True)
    batch = collate([dataset[i] for i in range(len(dataset))])

    labels = reference_labels(folder, TEXTS[:4], eos)
    assert torch.equal(batch["labels"], labels)  # same targets as the reference recipe, padding included
    assert (labels == -100).any()
    if decoder == "gpt2":  # its tokenizer adds nothing: eos appended
        assert all(row[row != -100][-1] == eos for row in labels)
    hf_pixels = T.ViTImageProcessor.from_pretrained(folder)(
        [Image.open(e.image).convert("RGB") for e in examples], return_tensors="pt"
    ).pixel_values
    ref = reference(folder)
    with torch.no_grad():
        out = ref(pixel_values=hf_pixels, labels=labels)
        ours = batch_loss(model, batch)
        assert abs(ours.item() - out.loss.item()) < 1e-5
        # label smoothing as transformers' Trainer applies it
        smoothed = T.trainer_pt_utils.LabelSmoother(epsilon=0.1)({"logits": out.logits}, labels, shift_labels=False)
        assert abs(batch_loss(model, batch, label_smoothing=0.1).item() - smoothed.item()) < 1e-5
        assert abs(smoothed.item() - out.loss.item()) > 5e-5  # smoothing does change it, beyond the tolerance


# --- overfitting, the run folder, loading the result ---------------------------------------------------------------


@pytest.fixture(scope="module")
def overfit(tiny, tmp_path_factory):
    """40 steps of a dropout-free ViT + GPT-2 on four squares, through the CLI, evaluating every 10 steps by CER."""
    folder = tiny("vit", "gpt2", decoder_over=NO_DROPOUT)
    tmp = tmp_path_factory.mktemp("overfit")
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
        40,
        "--batch-size",
        4,
        "--lr",
        3e-3,
        "--schedule",
        "constant",
        "--log-every",
        1,
        "--eval-every",
        10,
        "--metric",
        "cer",
        "--samples",
        2,
    )
    return folder, data, run, result


def test_overfits_and_greedy_decoding_reproduces_the_texts(overfit):
    folder, data, run, result = overfit
    assert result.exit_code == 0, result.output
    first_perfect = next(e["step"] for e in events(run, "eval") if e["cer"] == 0)
    assert f"best: {run / 'best'} (step {first_perfect}, cer 0)" in result.stdout
    assert f"last: {run / 'last'}" in result.stdout
    images = [str(data / f"{i}.png") for i in range(4)]
    out = CliRunner().invoke(app, ["caption", *images, "--model", str(run / "best"), "--format", "jsonl"])
    assert out.exit_code == 0, out.output
    assert [json.loads(line)["text"] for line in out.stdout.splitlines()] == TEXTS[:4]
    # transformers loads RUN/best and reads the same texts
    ref = reference(run / "best")
    pixels = T.ViTImageProcessor.from_pretrained(run / "best")([Image.open(p) for p in images], return_tensors="pt")
    ids = ref.generate(pixels.pixel_values, max_new_tokens=20, num_beams=1, do_sample=False)
    texts = T.AutoTokenizer.from_pretrained(run / "best").batch_decode(ids, skip_special_tokens=True)
    assert [t.strip() for t in texts] == TEXTS[:4]


def test_metrics_jsonl(overfit, tiny):
    folder, data, run, _ = overfit
    train_events, evals = events(run, "train"), events(run, "eval")
    assert [e["step"] for e in train_events] == list(range(1, 41))
    for e in train_events:
        assert set(e) == {"event", "step", "epoch", "loss", "lr", "images_per_s", "grad_norm"}
        assert e["epoch"] == e["step"]  # one batch per epoch
        assert e["lr"] == 3e-3 and e["images_per_s"] > 0
    # the first step's loss is the reference's forward(pixel_values, labels) on the whole (one-batch) dataset
    model = load_model(folder)
    eos = SpecialTokens.from_config(model.generation_config).eos[0]
    images = [Image.open(data / f"{i}.png").convert("RGB") for i in range(4)]
    pixels = T.ViTImageProcessor.from_pretrained(folder)(images, return_tensors="pt").pixel_values
    with torch.no_grad():
        expected = reference(folder)(pixel_values=pixels, labels=reference_labels(folder, TEXTS[:4], eos)).loss
    assert abs(train_events[0]["loss"] - expected.item()) < 1e-5
    assert train_events[-1]["loss"] < 0.05 * train_events[0]["loss"]

    assert [e["step"] for e in evals] == [10, 20, 30, 40]
    cers = [e["cer"] for e in evals]
    assert [e["best"] for e in evals] == [c < min(cers[:i], default=2.0) for i, c in enumerate(cers)]
    assert cers[0] > 0 and cers[-2:] == [0, 0] and not evals[-1]["best"]  # a tie is not better
    best_step = max(e["step"] for e in evals if e["best"])
    last = evals[-1]
    assert (last["cer"], last["wer"], last["bleu"]) == (0.0, 0.0, 100.0)
    assert last["samples"] == [
        {"file": str(data / f"{i}.png"), "reference": TEXTS[i], "prediction": TEXTS[i]} for i in range(2)
    ]
    # the validation loss is the loss of the saved weights on the validation set
    trained = load_model(run / "last")
    dataset = ImageTextDataset(
        [Example(data / f"{i}.png", TEXTS[i], i + 1) for i in range(4)],
        load_image_processor(run / "last", image_size=(32, 32)),
        load_tokenizer(run / "last"),
        eos,
        append_eos=True,
    )
    with torch.no_grad():
        val_loss = batch_loss(trained, collate([dataset[i] for i in range(4)])).item()
    assert abs(last["val_loss"] - val_loss) < 1e-5

    args = json.loads((run / "train_args.json").read_text())
    assert args["options"]["lr"] == 3e-3 and args["options"]["metric"] == "cer"
    assert args["run"]["global_batch_size"] == 4 and args["run"]["total_steps"] == 40
    state = TrainingState.load(run / "last")  # weights_only=True
    assert (state.position.step, state.best.metric, state.best.step, state.best.value) == (40, "cer", best_step, 0.0)


def test_saved_folders_are_complete_and_differ(overfit):
    _, _, run, _ = overfit
    names = {
        "config.json",
        "generation_config.json",
        "model.safetensors",
        "preprocessor_config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
    }
    assert names <= {p.name for p in (run / "best").iterdir()}
    assert not (run / "best" / "training_state.pt").exists()
    assert (run / "last" / "training_state.pt").exists()
    best, last = load_file(run / "best" / "model.safetensors"), load_file(run / "last" / "model.safetensors")
    assert best.keys() == last.keys()
    assert any(not torch.equal(best[k], last[k]) for k in best)  # best is an earlier step than last
    assert [p.name for p in run.iterdir() if p.name.startswith(".")] == [".ved"]  # ved's marker, no temporary folders


# --- resuming ---------------------------------------------------------------------------------------------------


def test_resume_after_max_steps_is_bit_identical(tiny, tmp_path):
    model = tiny("vit", "gpt2")  # dropout 0.1: the random state must be restored too
    data = write_data(tmp_path / "data", 5)
    straight, split = tmp_path / "straight", tmp_path / "split"
    run_quietly(train_options(model, data, straight, max_steps=6, schedule="constant"))
    first = run_quietly(train_options(model, data, split, max_steps=3, schedule="constant"))
    assert first.step == 3 and TrainingState.load(split / "last").position.epoch == 1  # stopped mid-epoch
    result = invoke("--output", split, "--resume", "--max-steps", 6)
    assert result.exit_code == 0, result.output
    same_weights(straight, split)
    assert [e["loss"] for e in events(split, "train")] == [e["loss"] for e in events(straight, "train")]
    assert json.loads((split / "train_args.json").read_text())["options"]["max_steps"] == 6


@pytest.fixture(scope="module")
def linear_run(tiny, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("linear")
    data = write_data(tmp / "data", 5)
    model = tiny("vit", "gpt2")
    run_quietly(train_options(model, data, tmp / "straight", max_steps=7))
    return model, data, tmp / "straight"


@pytest.mark.parametrize("workers", [0, 2])
def test_interrupted_run_resumes_to_the_same_weights(linear_run, tmp_path, workers):
    """Ctrl-C (a real SIGINT to this process) at step 3 of 7 with a linear decay; resume; same weights as a straight
    run, also with data loading processes."""
    model, data, straight = linear_run
    run = tmp_path / "run"

    def interrupt(step: int) -> None:
        if step == 3:
            os.kill(os.getpid(), signal.SIGINT)

    first = run_quietly(train_options(model, data, run, max_steps=7, workers=workers), on_step=interrupt)
    assert first.interrupted and first.step == 3
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler put back
    state = TrainingState.load(run / "last")
    assert (state.position.step, state.position.epoch, state.position.batches) == (3, 1, 2)
    resumed = run_quietly(resumed_options(run, {"workers": workers}))
    assert not resumed.interrupted and resumed.step == 7
    same_weights(straight, run)


def _grouped(lengths: list[int], batch: int, epoch: int, skip: int = 0) -> list[int]:
    from torch.utils.data import DistributedSampler

    from vedcli.training.setup import ResumableSampler

    sampler = ResumableSampler(DistributedSampler(lengths, 1, 0, seed=3), lengths, batch)
    sampler.set_epoch(epoch, skip)
    return list(sampler)


def test_group_by_length_batches_similar_lengths_in_a_seeded_order():
    lengths = torch.randint(1, 120, (1000,), generator=torch.Generator().manual_seed(0)).tolist()
    order = _grouped(lengths, 4, epoch=0)
    assert sorted(order) == list(range(1000))  # every example once an epoch
    span = 50 * 4
    tops = []
    for start in range(0, 1000, span):  # each run of 50 batches: cut from its sorted lengths, in a shuffled order
        batches = [[lengths[i] for i in order[b : b + 4]] for b in range(start, start + span, 4)]
        ranked = sorted(batches, key=lambda batch: sorted(batch, reverse=True), reverse=True)
        assert all(min(ranked[b]) >= max(ranked[b + 1]) for b in range(len(ranked) - 1))
        tops += [max(batch) for batch in batches]
    ups = sum(tops[b + 1] > tops[b] for b in range(len(tops) - 1))
    assert 0.3 < ups / (len(tops) - 1) < 0.7  # steps in a row are not ordered by length

    def padded(order):  # target positions computed, batches padded to their longest
        return sum(4 * max(lengths[i] for i in order[b : b + 4]) for b in range(0, len(order), 4))

    assert padded(order) < 1.05 * sum(lengths) < 0.8 * padded(torch.randperm(1000).tolist())
    assert order == _grouped(lengths, 4, epoch=0) and order != _grouped(lengths, 4, epoch=1)
    assert _grouped(lengths, 4, epoch=0, skip=10) == order[10:]  # resuming mid-epoch: the same order, later on


def test_group_by_length_run_resumes_to_the_same_weights(tiny, tmp_path):
    model = tiny("vit", "gpt2")
    data = write_data(tmp_path / "data", 5)
    straight, split = tmp_path / "straight", tmp_path / "split"
    run_quietly(train_options(model, data, straight, max_steps=6, group_by_length=True))
    run_quietly(train_options(model, data, split, max_steps=3, group_by_length=True))
    assert invoke("--output", split, "--resume", "--max-steps", 6).exit_code == 0
    same_weights(straight, split)
    plain = tmp_path / "plain"
    run_quietly(train_options(model, data, plain, max_steps=6))
    first = [e["loss"] for e in events(plain, "train")]
    assert [e["loss"] for e in events(straight, "train")] != first  # another order: other batches
    result = invoke("--output", split, "--resume", "--max-steps", 7, "--no-group-by-length")
    assert result.exit_code == 0, result.output
    assert json.loads((split / "train_args.json").read_text())["options"]["group_by_length"] is False


@pytest.mark.parametrize("ctc", [0.0, 0.5])
def test_group_by_length_divides_by_the_tokens_an_update_holds_on_average(tiny, tmp_path, ctc):
    """An update of short lines must weigh what its tokens weigh: its gradient is its summed loss over the mean
    tokens (and CTC ids) of an update, not over its own count as with shuffled batches."""
    from vedcli.training.ctc import targets
    from vedcli.training.distributed import Distributed
    from vedcli.training.loop import Trainer

    model, data = tiny("vit", "gpt2"), write_data(tmp_path / "data", 5)
    grads = {}
    for grouped in (False, True):
        options = train_options(model, data, tmp_path / f"run-{grouped}", max_steps=1, group_by_length=grouped,
                                clip_norm=0.0, ctc_weight=ctc)  # fmt: skip
        group = Distributed.start(torch.device("cpu"))
        trainer = Trainer(options, group, io.StringIO(), False)
        trainer.net.eval()  # no dropout: both see the same function
        batch = collate([trainer.train_set[i] for i in (1, 3)])
        trainer.optimizer.step = lambda t=trainer, g=grouped: grads.setdefault(g, [p.grad.clone() for p in t.trainable])
        trainer.step([batch])
        group.stop()
    labels = trainer.train_set.labels
    mean_tokens = sum(map(len, labels)) / len(labels) * 2 * 2  # batch_size 2, grad_accum 2
    tokens = int((batch["labels"] != -100).sum())
    assert abs(trainer.per_update[0] - mean_tokens) < 1e-9
    index = {id(p): i for i, p in enumerate(trainer.trainable)}
    head = index[id(trainer.model.decoder.head.weight)]  # its gradient comes from the token loss alone
    torch.testing.assert_close(grads[True][head], grads[False][head] * tokens / mean_tokens, rtol=1e-4, atol=1e-7)
    if ctc:  # the CTC head's gradient comes from the CTC loss alone
        ids = int(targets(batch["labels"], trainer.ctc_special)[1].sum())
        special = set(trainer.ctc_special.tolist())
        mean_ids = sum(sum(i not in special for i in row) for row in labels) / len(labels) * 2 * 2
        assert ids > 0 and abs(trainer.per_update[1] - mean_ids) < 1e-9
        weights = [index[id(p)] for p in trainer.ctc_head.parameters() if p.dim() == 2]
        assert weights
        for i in weights:
            torch.testing.assert_close(grads[True][i], grads[False][i] * ids / mean_ids, rtol=1e-4, atol=1e-7)


def test_resume_refuses_changes_that_make_another_run(tiny, tmp_path):
    data = write_data(tmp_path / "data", 2)
    run = tmp_path / "run"
    run_quietly(
        TrainOptions(model=str(tiny("vit", "gpt2")), data=str(data), output=str(run), max_steps=1, batch_size=2)
    )
    result = invoke("--output", run, "--resume", "--batch-size", 4)
    assert result.exit_code == 2
    assert "Error: a resumed run keeps its --batch-size (2) (--batch-size)" in result.stderr
    same = resumed_options(run, {"data": os.path.relpath(data), "max_steps": 2})  # the same data, spelt otherwise
    assert (same.max_steps, same.batch_size, same.resume) == (2, 2, True)
    with pytest.raises(OptionError, match="nothing to resume"):
        resumed_options(tmp_path / "elsewhere", {})


def test_ctrl_c_saves_a_loadable_last_checkpoint(tiny, tmp_path):
    """A real Ctrl-C to the process group (trainer and its data loading process) of `python -m vedcli train`."""
    data = write_data(tmp_path / "data", 4)
    run = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "vedcli",
        "train",
        "--model",
        str(tiny("vit", "gpt2")),
        "--data",
        str(data),
        "--output",
        str(run),
        "--max-steps",
        "100000",
        "--batch-size",
        "2",
        "--log-every",
        "1",
        "--workers",
        "1",
    ]
    proc = subprocess.Popen(
        cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 60
        while not ((run / "metrics.jsonl").exists() and len((run / "metrics.jsonl").read_text().splitlines()) >= 2):
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err
    assert "interrupted at step" in err and "--resume" in err
    state = TrainingState.load(run / "last")
    assert 2 <= state.position.step < 100000
    assert state.position.step == events(run, "train")[-1]["step"]
    load_model(run / "last")
    reference(run / "last")


# --- bad data and options -----------------------------------------------------------------------------------------


def test_bad_rows_are_listed_and_nothing_is_written(tiny, tmp_path):
    data = write_data(tmp_path / "data", 3)
    (data / "notes.png").write_text("not an image")
    rows = (data / "metadata.jsonl").read_text().splitlines()
    rows[1:1] = [
        json.dumps({"file_name": "gone.png", "text": "lost"}),
        json.dumps({"file_name": "0.png", "text": "  "}),
        json.dumps({"file_name": "notes.png", "text": "a note"}),
    ]
    (data / "metadata.jsonl").write_text("\n".join(rows) + "\n")
    run = tmp_path / "run"
    model = tiny("vit", "gpt2")
    result = invoke("--model", model, "--data", data, "--output", run, "--max-steps", 1)
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert lines[0] == f"{data}: line 2: gone.png: missing image"
    assert lines[1] == f"{data}: line 3: 0.png: empty text"
    assert lines[2].startswith(f"{data}: line 4: notes.png: not an image")
    assert lines[3] == f"Error: 3 bad rows (listed above); fix them or pass --skip-bad to train on the rest ({data})"
    assert not run.exists()

    result = invoke("--model", model, "--data", data, "--output", run, "--max-steps", 1, "--skip-bad")
    assert result.exit_code == 0, result.output
    assert "skipping 3 bad rows" in result.stderr
    assert "trained 1 of 1 steps on 3 examples (3 bad rows skipped)" in result.stdout
    assert json.loads((run / "train_args.json").read_text())["run"]["skipped_rows"] == 3


@pytest.mark.parametrize(
    "args, message",
    [
        (["--data", "D"], "Error: which model to fine-tune? (hub id or folder) (--model)"),
        (
            ["--model", "M", "--data", "D", "--val-data", "D", "--val-split", "0.1"],
            "Error: give --val-data or --val-split, not both (--val-split)",
        ),
        (
            ["--model", "M", "--data", "D", "--batch-size", "0"],
            "Error: must be a positive whole number, got 0 (--batch-size)",
        ),
        (
            ["--model", "M", "--data", "D", "--label-smoothing", "1"],
            "Error: must be in [0, 1), got 1.0 (--label-smoothing)",
        ),
        (
            ["--model", "M", "--data", "D", "--dtype", "fp16", "--device", "cpu"],
            "Error: fp16 training needs a CUDA device; use bf16 on the CPU (--dtype)",
        ),
        (
            ["--model", "M", "--data", "D", "--ema-decay", "1"],
            "Error: must be 0 (no average) or in (0, 1), e.g. 0.999; got 1.0 (--ema-decay)",
        ),
    ],
)
def test_bad_options_stop_before_anything_happens(tmp_path, args, message):
    result = invoke("--output", tmp_path / "run", *args)
    assert result.exit_code == 2
    assert result.stderr.strip() == message
    assert not (tmp_path / "run").exists()


def test_existing_run_needs_resume_or_force(tiny, tmp_path):
    data = write_data(tmp_path / "data", 2)
    run = tmp_path / "run"
    args = ["--model", tiny("vit", "gpt2"), "--data", data, "--output", run, "--max-steps", 1, "--batch-size", 2]
    assert invoke(*args).exit_code == 0
    (run / "metrics.jsonl").write_text("")
    result = invoke(*args)
    assert result.exit_code == 2
    assert f"run folder already exists: --resume continues it, --force starts it over ({run})" in result.stderr
    assert invoke(*args, "--force").exit_code == 0  # (a folder ved did not write is refused: test_no_overwrite.py)
    assert (run / "metrics.jsonl").read_text() and (run / "last").is_dir()


# --- the optimizer ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("schedule", ["linear", "cosine", "constant"])
def test_schedule_matches_transformers(schedule):
    make = {
        "linear": T.get_linear_schedule_with_warmup,
        "cosine": T.get_cosine_schedule_with_warmup,
        "constant": lambda opt, warmup, total: T.get_constant_schedule_with_warmup(opt, warmup),
    }[schedule]
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=2.0)
    sched = make(opt, 3, 11)
    for step in range(11):
        assert abs(sched.get_last_lr()[0] - 2.0 * lr_factor(step, 3, 11, schedule)) < 1e-12, step
        opt.step()
        sched.step()


def test_no_weight_decay_on_biases_and_norms(tiny):
    model = load_model(tiny("vit", "gpt2"))
    model.encoder.requires_grad_(False)
    decayed, kept = make_optimizer(model, 1e-3, 0.01).param_groups
    assert decayed["weight_decay"] == 0.01 and kept["weight_decay"] == 0.0
    norms_and_biases = {id(m.weight) for m in model.modules() if isinstance(m, torch.nn.LayerNorm)}
    norms_and_biases |= {id(p) for n, p in model.named_parameters() if n.endswith(".bias")}
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert {id(p) for p in kept["params"]} == norms_and_biases & trainable
    assert {id(p) for p in decayed["params"]} == trainable - norms_and_biases
    assert not trainable & {id(p) for p in model.encoder.parameters()}


def test_freeze_encoder_and_bf16_autocast(tiny, tmp_path):
    folder = tiny("vit", "gpt2", decoder_over=NO_DROPOUT)
    data = write_data(tmp_path / "data", 4)
    common = dict(model=str(folder), data=str(data), max_steps=2, batch_size=4, lr=1e-2, log_every=1)
    run_quietly(TrainOptions(output=str(tmp_path / "fp32"), **common))
    run_quietly(TrainOptions(output=str(tmp_path / "bf16"), dtype="bf16", freeze_encoder=True, **common))
    source = load_file(folder / "model.safetensors")
    bf16 = load_file(tmp_path / "bf16" / "last" / "model.safetensors")
    assert all(t.dtype == torch.float32 for t in bf16.values())  # master weights stay fp32
    encoder = [k for k in bf16 if k.startswith("encoder.")]
    assert encoder and all(torch.equal(bf16[k], source[k]) for k in encoder)
    assert not torch.equal(bf16["enc_to_dec_proj.weight"], source["enc_to_dec_proj.weight"])
    assert not torch.equal(
        bf16["decoder.transformer.h.0.attn.c_attn.weight"], source["decoder.transformer.h.0.attn.c_attn.weight"]
    )
    loss32, loss16 = events(tmp_path / "fp32", "train")[0]["loss"], events(tmp_path / "bf16", "train")[0]["loss"]
    assert loss16 != loss32 and abs(loss16 - loss32) < 0.02 * loss32  # bf16 arithmetic, same loss within rounding


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", ["fp16", "bf16"])
def test_mixed_precision_on_cuda(tiny, tmp_path, dtype):
    folder = tiny("vit", "gpt2", decoder_over=NO_DROPOUT)
    data = write_data(tmp_path / "data", 4)
    common = dict(model=str(folder), data=str(data), batch_size=4, lr=1e-3, log_every=1, device="cuda")
    run_quietly(TrainOptions(output=str(tmp_path / "fp32"), max_steps=3, **common))
    run_quietly(TrainOptions(output=str(tmp_path / "mixed"), max_steps=2, dtype=dtype, **common))
    state = TrainingState.load(tmp_path / "mixed" / "last")
    assert (state.scaler is not None) == (dtype == "fp16")  # the fp16 loss scale is saved for --resume
    assert run_quietly(resumed_options(tmp_path / "mixed", {"max_steps": 3})).step == 3
    weights = load_file(tmp_path / "mixed" / "last" / "model.safetensors")
    assert all(t.dtype == torch.float32 for t in weights.values())
    full, mixed = events(tmp_path / "fp32", "train"), events(tmp_path / "mixed", "train")
    assert len(mixed) == 3
    for a, b in zip(full, mixed, strict=True):
        assert abs(a["loss"] - b["loss"]) < 0.02 * a["loss"]


def test_progress_bar_and_val_split(tiny, tmp_path):
    data = write_data(tmp_path / "data", 5)
    err = io.StringIO()
    options = TrainOptions(
        model=str(tiny("vit", "gpt2")),
        data=str(data),
        output=str(tmp_path / "run"),
        epochs=2,
        batch_size=2,
        val_split=0.4,
        samples=1,
    )
    result = train(options, err=err, progress_bar=True)
    assert result.step == 4 and result.total_steps == 4  # 3 training examples: 2 batches an epoch
    assert [e["step"] for e in events(tmp_path / "run", "eval")] == [2, 4]  # each epoch by default
    args = json.loads((tmp_path / "run" / "train_args.json").read_text())["run"]
    assert (args["train_examples"], args["val_examples"]) == (3, 2)
    text = err.getvalue()
    assert "training" in text and "4/4" in text and "eval at step 4" in text
