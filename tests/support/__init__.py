"""Shared test helpers: tiny checkpoints and tokenizers written by transformers, the reference behind the step
interface, training data and runs, a local hub endpoint, the transformers 4.x layout."""
