"""Shared fixtures: tiny checkpoints written once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from support.checkpoints import write_checkpoint

torch.set_num_threads(min(2, torch.get_num_threads()))

ENCODERS = ["vit", "deit"]
DECODERS = ["gpt2", "bert", "roberta", "trocr", "trocr-sinusoidal"]
# Families beyond the core each join with the partners published checkpoints use (one line per pairing).
EXTRA_PAIRS: list[tuple[str, str]] = [
    ("beit", "trocr"),
    ("beit-shared", "roberta"),
    ("data2vec-vision", "gpt2"),
    ("deit", "electra"),
    ("vit", "xlm-roberta"),
    ("vit", "bart"),
    ("deit", "mbart"),
    ("vit", "camembert"),
    ("vit", "bert-generation"),
    ("swin", "bart"),
    ("donut-swin", "mbart"),
]
PAIRS = [(e, d) for e in ENCODERS for d in DECODERS] + EXTRA_PAIRS


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """tiny(encoder, decoder, **write_checkpoint_options) -> folder, written once per session."""
    made: dict[str, Path] = {}

    def make(encoder: str = "vit", decoder: str = "gpt2", **options) -> Path:
        key = repr((encoder, decoder, sorted(options.items())))
        if key not in made:
            folder = tmp_path_factory.mktemp(f"{encoder}-{decoder}")
            made[key] = write_checkpoint(folder, encoder, decoder, **options)
        return made[key]

    return make


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)
