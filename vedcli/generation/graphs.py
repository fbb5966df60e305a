"""Decoding steps replayed from CUDA graphs: on a GPU a step of a small decoder is mostly kernel launches.

`GraphedSteps` wraps a model for the strategies in decoding.py (the same `StepModel` face). Its caches are static
(layers.KVCache with `static=True`): fixed shapes and addresses, the position on the device. The first step of a
shape is run twice for warm-up, then captured into a torch.cuda.CUDAGraph; every later step copies the new tokens in
and replays. Graphs and their caches are kept per shape (images, rows per image, max length), so the batches of a run
reuse them; only the image features are copied into the kept cross-attention keys/values.

A static cache keeps every row to the end (no rows dropped when done: a graph cannot change its shape) and attends
to all `max_len` slots with the unwritten ones masked: on a GPU that costs less than the launches it saves.

`capture=False` runs the same static steps without graphs: the CPU tests check those against the usual path.
"""

from __future__ import annotations

import os
import warnings
from collections import OrderedDict
from dataclasses import dataclass, field

import torch

from ..errors import VedWarning

KEPT = 4  # graphs (and their caches) kept per model, most recently used first out
WARMUP = 2  # eager steps before a capture (lazy initialisation of cuBLAS handles, workspaces, ...)


def _on_cuda(model) -> bool:
    return getattr(model, "device", torch.device("cpu")).type == "cuda"


def graphs_wanted(model) -> bool:
    """CUDA graphs for this model's decoding steps: a ved model on CUDA, unless VED_CUDA_GRAPHS=0."""
    static = callable(getattr(getattr(model, "decoder", None), "new_cache", None))  # ved's decoder (static caches)
    return static and _on_cuda(model) and os.environ.get("VED_CUDA_GRAPHS", "1") != "0"


@dataclass
class GraphedCache:
    """A static cache and, once captured, the graph of one step over it (decoding.StepCache's face, without
    `select`: the strategies then keep every row)."""

    cache: object  # layers.DecoderCache around a static KVCache
    tokens: torch.Tensor  # (rows, 1) the graph's input
    graph: object | None = None  # torch.cuda.CUDAGraph once captured
    logits: torch.Tensor | None = None  # (rows, 1, V) the graph's output
    failed: list = field(default_factory=list)  # a capture error (then the steps run eagerly)

    def reorder(self, index: torch.Tensor) -> None:
        self.cache.reorder(index)


class GraphedSteps:
    """`model` with its decoding steps captured once per shape and replayed."""

    def __init__(self, model, capture: bool = True):
        self.model = model
        self.capture = capture
        self._kept: OrderedDict[tuple, GraphedCache] = OrderedDict()

    @property
    def device(self) -> torch.device:
        return self.model.device

    @property
    def dtype(self) -> torch.dtype:
        return self.model.dtype

    @property
    def config(self):
        return self.model.config

    def encode(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.model.encode(pixel_values)

    def new_cache(self, enc: torch.Tensor, group: int, max_len: int) -> GraphedCache:
        key = (tuple(enc.shape), enc.dtype, group, max_len)
        kept = self._kept.pop(key, None)
        if kept is None:
            cache = self.model.decoder.new_cache(enc, group, max_len, static=True)
            tokens = torch.zeros(enc.shape[0] * group, 1, dtype=torch.long, device=enc.device)
            kept = GraphedCache(cache, tokens)
        else:  # same shapes: new image features into the same buffers, the position back to 0
            for (k, v), (k_new, v_new) in zip(kept.cache.cross, self.model.decoder.cross_kv(enc), strict=True):
                k.copy_(k_new)
                v.copy_(v_new)
            kept.cache.self_kv.rewind(0)
        self._kept[key] = kept
        while len(self._kept) > KEPT:
            self._kept.popitem(last=False)
        return kept

    def decode_step(self, tokens: torch.Tensor, state: GraphedCache) -> torch.Tensor:
        """(rows, 1) tokens -> (rows, 1, V) logits, from the graph once it is captured."""
        kv = state.cache.self_kv
        if not self.capture or state.failed or tokens.shape[1] != 1:
            return self.model.decode_step(tokens, state.cache)
        if state.graph is None:
            self._capture(state)
            if state.failed:
                return self.model.decode_step(tokens, state.cache)
        state.tokens.copy_(tokens)
        state.graph.replay()  # writes this step's keys/values, advances the device-side position
        kv.pos += 1
        return state.logits.clone()  # the graph's output buffer is overwritten by the next replay

    def _capture(self, state: GraphedCache) -> None:
        kv = state.cache.self_kv
        start = kv.pos
        try:
            stream = torch.cuda.Stream(device=kv.k.device)
            stream.wait_stream(torch.cuda.current_stream(kv.k.device))
            with torch.cuda.stream(stream):
                for _ in range(WARMUP):
                    self.model.decode_step(state.tokens, state.cache)
                    kv.rewind(start)
            torch.cuda.current_stream(kv.k.device).wait_stream(stream)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                state.logits = self.model.decode_step(state.tokens, state.cache)
            kv.pos = start  # capture recorded the step without running it
            state.graph = graph
        except Exception as error:  # noqa: BLE001  any failure: the steps run eagerly, the result is the same
            kv.rewind(start)
            state.failed.append(error)
            warnings.warn(VedWarning(f"CUDA graphs could not be used ({type(error).__name__}: {error}); decoding "
                                     "steps run one kernel at a time"), stacklevel=3)  # fmt: skip


def graphed(model) -> GraphedSteps:
    """The GraphedSteps kept on `model` (made on first use), so the batches of a run share its graphs."""
    steps = getattr(model, "_graphed_steps", None)
    if steps is None:
        steps = GraphedSteps(model)
        model._graphed_steps = steps
    return steps
