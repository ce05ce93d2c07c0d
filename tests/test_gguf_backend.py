"""The gguf backend: a tiny GGUF written from the tiny random Phi-3, run through llama.cpp.

The conversion (tests/phi3_gguf.py) follows llama.cpp's rules for the phi3 architecture,
and the tests compare llama.cpp with transformers on the same weights: the same prompt
tokens, and the same greedy answer. Tests that need llama-cpp-python are skipped where it
is not installed (it builds from source; see the README's note on the gguf extra).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from phichat.cli import main
from phichat.config import ConfigError, load_settings
from phichat.errors import ModelNotAvailable
from phichat.models import create_model
from phichat.models.base import ChatMessage, GenerationOptions, GenerationStats
from phichat.models.gguf import GGUFModel, default_threads

MESSAGES: list[ChatMessage] = [
    {"role": "system", "content": "You are brief."},
    {"role": "user", "content": "Plan a day in Belize City."},
]
NEEDS_LLAMA = (
    "llama-cpp-python is not installed (pip install 'phichat[gguf]'; it builds from source)"
)


@pytest.fixture(scope="module")
def tiny_gguf(tiny_phi3_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("gguf", reason="the gguf package (test extra) writes the test file")
    from phi3_gguf import write_phi3_gguf

    return write_phi3_gguf(tiny_phi3_path, tmp_path_factory.mktemp("gguf") / "tiny-phi3.gguf")


@pytest.fixture(scope="module")
def gguf_model(tiny_gguf: Path) -> GGUFModel:
    pytest.importorskip("llama_cpp", reason=NEEDS_LLAMA)
    model = GGUFModel(str(tiny_gguf), threads=1)
    model.load()
    return model


# ---- without llama.cpp -------------------------------------------------------------------
def test_the_backend_setting_picks_gguf_with_the_machines_threads(tmp_path: Path) -> None:
    settings = load_settings({"backend": "gguf", "gguf_file": str(tmp_path / "x.gguf")})
    model = create_model(settings)
    assert isinstance(model, GGUFModel)
    assert model.describe()["device"] == f"cpu, {default_threads()} threads"
    with pytest.raises(ModelNotAvailable, match="does not exist"):
        model.load()


def test_the_kv_cache_setting_reaches_the_backend(tmp_path: Path) -> None:
    flags = {"backend": "gguf", "gguf_file": str(tmp_path / "x.gguf")}
    assert load_settings(flags, environ={}).kv_cache == "f16"
    model = create_model(load_settings(flags, environ={"PHICHAT_KV_CACHE": "q8_0"}))
    assert isinstance(model, GGUFModel)
    assert model._kv_cache == "q8_0"
    with pytest.raises(ConfigError, match="kv_cache"):
        load_settings({**flags, "kv_cache": "q2"}, environ={})


def test_without_a_file_the_error_says_how_to_download_one() -> None:
    with pytest.raises(ModelNotAvailable, match=r"phichat download --gguf"):
        GGUFModel().load()


def test_missing_llama_cpp_names_the_extra(tiny_gguf: Path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # makes `import llama_cpp` fail
    with pytest.raises(ModelNotAvailable, match=r"phichat\[gguf\]"):
        GGUFModel(str(tiny_gguf)).load()


def test_download_gguf_fails_clearly_offline(capsys) -> None:
    assert main(["download", "--gguf"]) == 1
    assert "HF_HUB_OFFLINE" in capsys.readouterr().err


def test_download_gguf_fails_clearly_when_the_hub_is_unreachable() -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "0", "HF_ENDPOINT": "http://127.0.0.1:9"}
    result = subprocess.run(
        [sys.executable, "-m", "phichat", "download", "--gguf"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert result.returncode == 1
    assert "cannot reach the Hugging Face Hub" in result.stderr
    assert "Phi-3-mini-4k-instruct-q4.gguf" in result.stderr
    assert "Traceback" not in result.stderr


# ---- with llama.cpp ----------------------------------------------------------------------
def test_template_and_tokens_match_transformers(gguf_model: GGUFModel, tiny_phi3) -> None:
    # The chat template comes from the file's metadata and renders the same prompt.
    assert gguf_model.render(MESSAGES) == tiny_phi3._tokenizer.apply_chat_template(
        MESSAGES, add_generation_prompt=True, tokenize=False
    )
    assert gguf_model.encode(MESSAGES) == tiny_phi3._encode(MESSAGES)["input_ids"][0].tolist()
    text = "Skagway harbour, 42 trains"
    assert gguf_model.count_text_tokens(text) == tiny_phi3.count_text_tokens(text)
    assert gguf_model.context_window == 4096


def test_greedy_answer_matches_transformers(gguf_model: GGUFModel, tiny_phi3) -> None:
    options = GenerationOptions(max_new_tokens=10)
    expected = "".join(tiny_phi3.stream(MESSAGES, options, threading.Event()))
    stats = GenerationStats()
    answer = "".join(gguf_model.stream(MESSAGES, options, threading.Event(), stats))
    assert stats.new_tokens == 10
    assert stats.prompt_tokens == tiny_phi3.count_tokens(MESSAGES)
    # The same f32 weights and greedy decoding: llama.cpp writes what transformers writes.
    assert answer.rstrip("\ufffd") == expected.rstrip("\ufffd")
    assert answer.strip()


def test_stop_event_ends_the_answer(gguf_model: GGUFModel) -> None:
    stop = threading.Event()
    stats = GenerationStats()
    pieces = []
    for piece in gguf_model.stream(MESSAGES, GenerationOptions(max_new_tokens=200), stop, stats):
        pieces.append(piece)
        if stats.new_tokens >= 3:
            stop.set()
    assert stats.new_tokens == 3
    # The model is free again for the next turn.
    again = GenerationStats()
    list(gguf_model.stream(MESSAGES, GenerationOptions(max_new_tokens=4), threading.Event(), again))
    assert again.new_tokens == 4


def test_a_stop_token_ends_the_answer_unseen(tmp_path: Path) -> None:
    pytest.importorskip("gguf", reason="the gguf package (test extra) writes the test file")
    pytest.importorskip("llama_cpp", reason=NEEDS_LLAMA)
    from phi3_gguf import write_phi3_gguf
    from tiny_phi3 import build_tiny_phi3

    folder = build_tiny_phi3(tmp_path / "eager", eager_stop="<|end|>")
    model = GGUFModel(str(write_phi3_gguf(folder, tmp_path / "eager.gguf")), threads=1)
    model.load()
    stats = GenerationStats()
    answer = "".join(
        model.stream(MESSAGES, GenerationOptions(max_new_tokens=20), threading.Event(), stats)
    )
    assert answer == ""
    assert stats.new_tokens == 0


def test_phichat_serve_serves_a_gguf_model(gguf_model: GGUFModel) -> None:
    from test_serve import serving

    from phichat.models.openai_compat import OpenAICompatModel

    options = GenerationOptions(max_new_tokens=6)
    expected = "".join(gguf_model.stream(MESSAGES, options, threading.Event()))
    with serving(gguf_model) as server:
        remote = OpenAICompatModel(server.url)
        remote.load()
        assert remote.count_tokens(MESSAGES) == gguf_model.count_tokens(MESSAGES)
        assert "".join(remote.stream(MESSAGES, options, threading.Event())) == expected


def test_a_phi3_file_without_a_template_gets_phi3s_format(tiny_phi3_path, tmp_path, tiny_phi3):
    pytest.importorskip("llama_cpp", reason=NEEDS_LLAMA)
    from phi3_gguf import write_phi3_gguf

    bare = write_phi3_gguf(tiny_phi3_path, tmp_path / "bare.gguf", chat_template=False)
    model = GGUFModel(str(bare), threads=1)
    model.load()
    assert "tokenizer.chat_template" not in model.metadata
    assert model.encode(MESSAGES) == tiny_phi3._encode(MESSAGES)["input_ids"][0].tolist()
