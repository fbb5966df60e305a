"""`ved train --ema-decay`: a moving average of the weights, evaluated and kept as RUN/best; RUN/last keeps the
trained weights and the averages (so --resume continues both, bit for bit)."""

from __future__ import annotations

import json

import torch
from safetensors.torch import load_file

from support.training import events, invoke, run_quietly, same_weights, train_options, write_data
from vedcli.checkpoints.load import load_model
from vedcli.training.ema import STATE_KEY, WeightAverage
from vedcli.training.state import TrainingState
from vedcli.training.trainer import resumed_options


def test_average_follows_the_weights_with_a_rising_decay():
    model = torch.nn.Linear(3, 2)
    average = WeightAverage(model, 0.9)
    start = [p.detach().clone() for p in model.parameters()]
    expected = [p.clone() for p in start]
    for step in range(30):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.1 * (step + 1))
        rate = min(0.9, (1 + step) / (10 + step))
        expected = [rate * e + (1 - rate) * p.detach() for e, p in zip(expected, model.parameters(), strict=True)]
        average.update()
    for got, want in zip(average.averages, expected, strict=True):
        torch.testing.assert_close(got, want)
    trained = [p.detach().clone() for p in model.parameters()]
    with average.swapped_in():
        for p, a in zip(model.parameters(), average.averages, strict=True):
            assert torch.equal(p, a)
    for p, t in zip(model.parameters(), trained, strict=True):
        assert torch.equal(p, t)  # the trained weights are back


def test_best_holds_the_average_and_last_the_trained_weights(tiny, tmp_path):
    data = write_data(tmp_path / "data", 5)
    run = tmp_path / "run"
    options = train_options(tiny("vit", "gpt2"), data, run, max_steps=4, ema_decay=0.5, val_data=str(data),
                            eval_every=4, metric="loss")  # fmt: skip
    run_quietly(options)
    (record,) = events(run, "eval")
    assert record["weights"] == "average"
    state = TrainingState.load(run / "last")
    averages = state.heads[STATE_KEY]["averages"]
    assert state.heads[STATE_KEY]["updates"] == 4
    best, last = load_file(run / "best" / "model.safetensors"), load_file(run / "last" / "model.safetensors")
    kept, trained = load_model(run / "best").state_dict(), load_model(run / "last").state_dict()
    differs = 0
    for name, value in averages.items():  # best is the average; last (the trained weights) differs from it
        torch.testing.assert_close(kept[name], value)
        differs += not torch.equal(value, trained[name])
    assert differs > 0 and best.keys() == last.keys()
    assert json.loads((run / "train_args.json").read_text())["options"]["ema_decay"] == 0.5


def test_resumed_run_continues_the_average(tiny, tmp_path):
    model, data = tiny("vit", "gpt2"), write_data(tmp_path / "data", 5)
    straight, split = tmp_path / "straight", tmp_path / "split"
    run_quietly(train_options(model, data, straight, max_steps=6, ema_decay=0.8))
    run_quietly(train_options(model, data, split, max_steps=3, ema_decay=0.8))
    assert invoke("--output", split, "--resume", "--max-steps", 6).exit_code == 0
    same_weights(straight, split)
    a, b = (TrainingState.load(r / "last").heads[STATE_KEY] for r in (straight, split))
    assert a["updates"] == b["updates"] == 6
    assert all(torch.equal(a["averages"][k], b["averages"][k]) for k in a["averages"])


def test_an_average_can_start_on_resume(tiny, tmp_path):
    model, data = tiny("vit", "gpt2"), write_data(tmp_path / "data", 5)
    run = tmp_path / "run"
    run_quietly(train_options(model, data, run, max_steps=2))
    resumed = run_quietly(resumed_options(run, {"max_steps": 4, "ema_decay": 0.9}))
    assert resumed.step == 4
    assert TrainingState.load(run / "last").heads[STATE_KEY]["updates"] == 2
