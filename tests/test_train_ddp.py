"""Two training processes (`torchrun --nproc_per_node 2 -m vedcli train`, gloo on the CPU) against one process with
the same global batch: the same loss at every step, the same evaluation, the same final weights.

One process: batches of 2, two per update. Two processes: batches of 1 each, two per update. Either way an update
sees the same four examples (DistributedSampler deals the epoch's shuffled order out to the processes) and the loss
is summed over the update's target tokens in every process before dividing by their number.

It takes about 10 s (torchrun and two workers start), which the default run affords.
"""

from __future__ import annotations

import io
import json

import torch

from support.training import NO_DROPOUT, close, events, torchrun_train, write_data
from vedcli.checkpoints.load import load_model
from vedcli.training.trainer import TrainOptions, train


def test_two_processes_match_one_with_the_same_global_batch(tiny, tmp_path):
    model = tiny("vit", "gpt2", decoder_over=NO_DROPOUT)
    data = write_data(tmp_path / "data", 4)
    val = write_data(tmp_path / "val", 5)  # 5: the processes get 3 and 2 validation examples
    common = [
        "--model",
        str(model),
        "--data",
        str(data),
        "--val-data",
        str(val),
        "--max-steps",
        "4",
        "--grad-accum",
        "2",
        "--lr",
        "3e-3",
        "--log-every",
        "1",
        "--eval-every",
        "2",
        "--samples",
        "5",
    ]
    done = torchrun_train([*common, "--batch-size", "1", "--output", str(tmp_path / "two")], timeout=170)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("trained 4 of 4 steps") == 1  # the summary comes from one process

    one = TrainOptions(
        model=str(model),
        data=str(data),
        val_data=str(val),
        max_steps=4,
        grad_accum=2,
        lr=3e-3,
        log_every=1,
        eval_every=2,
        samples=5,
        batch_size=2,
        output=str(tmp_path / "one"),
    )
    train(one, err=io.StringIO(), progress_bar=False)

    two, single = tmp_path / "two", tmp_path / "one"
    args = json.loads((two / "train_args.json").read_text())["run"]
    assert args["processes"] == 2 and args["global_batch_size"] == 4
    losses_two = [e["loss"] for e in events(two, "train")]
    losses_one = [e["loss"] for e in events(single, "train")]
    assert len(losses_two) == len(losses_one) == 4
    assert all(close(a, b) for a, b in zip(losses_two, losses_one, strict=True)), (losses_two, losses_one)
    assert losses_one[0] != losses_one[-1]
    evals_two, evals_one = events(two, "eval"), events(single, "eval")
    assert [e["step"] for e in evals_two] == [e["step"] for e in evals_one] == [2, 4]
    for a, b in zip(evals_two, evals_one, strict=True):
        assert close(a["val_loss"], b["val_loss"]), (a["val_loss"], b["val_loss"])
        assert a["samples"] == b["samples"] and len(a["samples"]) == 5  # every validation example, in order
        assert (a["cer"], a["wer"], a["bleu"]) == (b["cer"], b["wer"], b["bleu"])
    # The final models compute the same function. (Weights are compared through it, not one by one: some gradients
    # are zero but for rounding -- attention key biases cancel in the softmax -- and Adam, which divides by the
    # gradient's own size, turns that noise into lr-sized steps in either run.)
    models = [load_model(run / "last") for run in (two, single)]
    batch = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    ids = torch.randint(0, models[0].config.decoder.vocab_size, (3, 6), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        a, b = (m(pixel_values=batch, decoder_input_ids=ids).logits for m in models)
    # Adam turns those rounding-level gradients into lr-sized weight steps, so the functions agree to a small fraction
    # of the logits' scale rather than to ulps (measured: 7e-6 of it on an AVX-512 CPU); a real difference (a process
    # training on other examples, gradients not averaged) moves them by far more than 1e-3 of it.
    assert (a - b).abs().max().item() <= 1e-3 * a.abs().max().item()
    assert (two / "best" / "model.safetensors").exists()
    state = torch.load(two / "last" / "training_state.pt", weights_only=True)
    assert state["world_size"] == 2 and len(state["rng"]) == 2  # each process's random state, for --resume
