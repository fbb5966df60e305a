"""Shared helpers of the hub tests: pointing huggingface_hub at a local endpoint, a port nothing listens on."""

from __future__ import annotations

import socket

import pytest
from huggingface_hub import constants


def point_hub_at(monkeypatch: pytest.MonkeyPatch, endpoint: str) -> None:
    # huggingface_hub reads HF_ENDPOINT once, at import; these are the two module constants built from it.
    monkeypatch.setattr(constants, "ENDPOINT", endpoint)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", endpoint + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
