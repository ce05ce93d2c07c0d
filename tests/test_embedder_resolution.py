"""The ranking model is found on disk the way the chat model is: never downloaded implicitly."""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import ClassVar

import pytest

from phichat.retrieval.embedder import Embedder, EmbedderUnavailable


class FakeSentenceTransformer:
    """Records what sentence-transformers would have been asked to load."""

    calls: ClassVar[list[tuple[str, dict[str, object]]]] = []

    def __init__(self, name: str, **kwargs: object) -> None:
        FakeSentenceTransformer.calls.append((name, kwargs))
        self.max_seq_length = 256

    def to(self, _dtype: object) -> FakeSentenceTransformer:
        return self


@pytest.fixture
def fake_st(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, object]]]:
    module = types.ModuleType("sentence_transformers")
    module.SentenceTransformer = FakeSentenceTransformer  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "sentence_transformers", module)
    FakeSentenceTransformer.calls = []
    return FakeSentenceTransformer.calls


def test_a_custom_embedder_not_on_disk_is_not_downloaded(fake_st, tmp_path, monkeypatch) -> None:
    # Handed the bare id, sentence-transformers would download it (offline: 73 s of retries).
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(EmbedderUnavailable, match=r"not downloaded.*phichat download"):
        Embedder("someone/custom-embedder").load()
    assert fake_st == []


def test_a_custom_embedder_in_the_cache_loads_from_there(fake_st, tmp_path, monkeypatch) -> None:
    cache = tmp_path / "hub"
    repo = cache / "models--someone--custom-embedder"
    snapshot = repo / "snapshots" / "0123abcd"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123abcd")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(cache))
    Embedder("someone/custom-embedder").load()
    [(name, kwargs)] = fake_st
    assert Path(name) == snapshot
    assert kwargs.get("local_files_only") is True


def test_a_missing_embedder_folder_says_so(fake_st, tmp_path) -> None:
    with pytest.raises(EmbedderUnavailable, match="does not exist"):
        Embedder(str(tmp_path / "nowhere")).load()
    assert fake_st == []


def test_phichat_download_fetches_the_configured_embedder(monkeypatch, tmp_path) -> None:
    from phichat.cli import main
    from phichat.models import hub

    fetched: list[str] = []
    monkeypatch.setenv("PHICHAT_EMBEDDER", "someone/custom-embedder")
    monkeypatch.setattr(hub, "download", lambda model: fetched.append(model) or tmp_path)
    monkeypatch.setattr(hub, "download_embedder", lambda name: fetched.append(name) or tmp_path)
    assert main(["download"]) == 0
    assert fetched[-1] == "someone/custom-embedder"
