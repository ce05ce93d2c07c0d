"""Shared fixtures: an offline, loopback-only world and a tiny random Phi-3 on disk."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

# Set before anything imports huggingface_hub: a missing model must fail at once, not retry.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

_LOOPBACK = {"127.0.0.1", "::1", "localhost"}
_real_connect = socket.socket.connect


def _loopback_only_connect(self: socket.socket, address: object) -> None:
    host = address[0] if isinstance(address, tuple) else None
    if host is not None and str(host) not in _LOOPBACK and not str(host).startswith("127."):
        raise ConnectionRefusedError(f"tests may only connect to loopback, not {host}")
    _real_connect(self, address)  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def offline_world(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Every test: no Hub, no network beyond loopback, and private config/data folders."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(socket.socket, "connect", _loopback_only_connect)
    monkeypatch.setenv("PHICHAT_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("PHICHAT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("PHICHAT_CACHE_DIR", str(tmp_path / "cache"))
    for key in list(os.environ):
        if key.startswith("PHICHAT_") and key not in (
            "PHICHAT_CONFIG_DIR",
            "PHICHAT_DATA_DIR",
            "PHICHAT_CACHE_DIR",
        ):
            monkeypatch.delenv(key)
    yield


@pytest.fixture(scope="session")
def tiny_phi3_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tiny_phi3 import build_tiny_phi3

    return build_tiny_phi3(tmp_path_factory.mktemp("tiny-phi3-4k"))


@pytest.fixture(scope="session")
def tiny_phi3_long_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tiny_phi3 import build_tiny_phi3

    return build_tiny_phi3(tmp_path_factory.mktemp("tiny-phi3-128k"), long_rope=True)


@pytest.fixture(scope="session")
def tiny_phi3(tiny_phi3_path: Path):  # -> Phi3Model, loaded once per test session
    from phichat.models.phi3 import Phi3Model

    model = Phi3Model(str(tiny_phi3_path))
    model.load()
    return model
