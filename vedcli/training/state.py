"""What `ved train --resume` needs beyond the weights: RUN/last/training_state.pt.

It holds the step, the position in the data (epoch and batches taken from it), the optimizer's moments, the fp16
gradient scaler, the weights of auxiliary training heads (ctc.py's, which no checkpoint holds), the best evaluation
so far, and every random state training draws from (torch's CPU and CUDA generators, Python's and NumPy's, and the
data loader's), one set per process. Only tensors and plain Python values are stored, so the file loads with
`torch.load(weights_only=True)`: reading it runs no code.
"""

from __future__ import annotations

import pickle
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..checkpoints.files import unpickling_refusal
from ..errors import ModelError

STATE_FILE = "training_state.pt"
FORMAT = 1


@dataclass
class Position:
    """Where training stands: `step` updates done; `batches` batches of epoch `epoch` consumed (by each process)."""

    step: int = 0
    epoch: int = 0
    batches: int = 0


@dataclass
class Best:
    """The best evaluation so far, by the metric `--metric` names."""

    metric: str = "loss"
    value: float | None = None
    step: int | None = None

    def improved_by(self, value: float) -> bool:
        """Whether `value` beats the best so far (BLEU: higher is better; loss, CER, WER: lower)."""
        if self.value is None:
            return True
        return value > self.value if self.metric == "bleu" else value < self.value


@dataclass
class TrainingState:
    position: Position = field(default_factory=Position)
    best: Best = field(default_factory=Best)
    world_size: int = 1
    optimizer: dict[str, Any] = field(default_factory=dict)
    scaler: dict[str, Any] | None = None
    rng: list[dict[str, Any]] = field(default_factory=list)  # one per process, in rank order
    heads: dict[str, dict[str, Any]] = field(default_factory=dict)  # auxiliary training heads' state dicts, by name

    def save(self, folder: str | Path) -> Path:
        path = Path(folder) / STATE_FILE
        data = {
            "format": FORMAT,
            "position": asdict(self.position),
            "best": asdict(self.best),
            "world_size": self.world_size,
            "optimizer": self.optimizer,
            "scaler": self.scaler,
            "rng": self.rng,
            "heads": self.heads,
        }
        torch.save(data, path)
        return path

    @classmethod
    def load(cls, folder: str | Path) -> TrainingState:
        path = Path(folder) / STATE_FILE
        try:
            data = torch.load(path, map_location="cpu", weights_only=True)
        except FileNotFoundError:
            raise ModelError("no training state to resume from", str(path)) from None
        except pickle.UnpicklingError as error:  # it names code to run (refused, nothing ran), or it is damaged
            raise ModelError(f"cannot read training state: {unpickling_refusal(error)}", str(path)) from None
        except Exception as error:  # a damaged or foreign file
            first = (str(error).strip() or type(error).__name__).splitlines()[0]
            raise ModelError(f"cannot read training state: {first}", str(path)) from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ModelError("not a ved training state (or from another ved version)", str(path))
        return cls(
            position=Position(**data["position"]),
            best=Best(**data["best"]),
            world_size=data["world_size"],
            optimizer=data["optimizer"],
            scaler=data["scaler"],
            rng=data["rng"],
            heads=data.get("heads", {}),
        )


def capture_rng(loader_generator: torch.Generator | None = None) -> dict[str, Any]:
    """This process's random states, as tensors and plain values."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state() if torch.cuda.is_available() and torch.cuda.is_initialized() else None,
        "python": random.getstate(),
        "numpy": {
            "name": name,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        },
        "loader": loader_generator.get_state() if loader_generator is not None else None,
    }


def restore_rng(state: dict[str, Any], loader_generator: torch.Generator | None = None) -> None:
    """Put back what `capture_rng` took."""
    torch.set_rng_state(state["torch"])
    if state["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    if loader_generator is not None and state["loader"] is not None:
        loader_generator.set_state(state["loader"])


def seed_everything(seed: int) -> None:
    """Seed torch (CPU and CUDA), Python and NumPy."""
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
