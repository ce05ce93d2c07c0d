"""The transformers backend, exercised on a tiny random-weight Phi-3 saved to disk."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from tiny_phi3 import STOP_TOKENS, build_tiny_phi3

from phichat.errors import ModelNotAvailable
from phichat.models.base import GenerationOptions, GenerationStats
from phichat.models.phi3 import Phi3Model, pick_dtype

MESSAGES = [
    {"role": "system", "content": "You are helpful."},
    {"role": "user", "content": "Plan me a one-day trip to Belize City"},
]


def test_loads_from_folder_with_window_from_config(tiny_phi3: Phi3Model) -> None:
    assert tiny_phi3.loaded
    assert tiny_phi3.context_window == 4096
    facts = tiny_phi3.describe()
    assert facts["device"] == "cpu"
    assert facts["dtype"] in ("bfloat16", "float32")


def test_long_rope_variant_loads_and_generates(tiny_phi3_long_path: Path) -> None:
    model = Phi3Model(str(tiny_phi3_long_path), dtype="float32")
    model.load()
    assert model.context_window == 131072
    pieces = list(model.stream(MESSAGES, GenerationOptions(max_new_tokens=8), threading.Event()))
    assert "".join(pieces)


def test_streaming_yields_tokens_as_they_come(tiny_phi3: Phi3Model) -> None:
    stats = GenerationStats()
    pieces = list(
        tiny_phi3.stream(MESSAGES, GenerationOptions(max_new_tokens=24), threading.Event(), stats)
    )
    assert len(pieces) > 5  # many pieces, not one blob at the end
    assert stats.new_tokens == 24
    assert stats.prompt_tokens == tiny_phi3.count_tokens(MESSAGES)
    assert all("<|" not in piece for piece in pieces)


def test_stop_event_halts_generation_within_a_step(tiny_phi3: Phi3Model) -> None:
    stop = threading.Event()
    stats = GenerationStats()
    received = 0
    for _ in tiny_phi3.stream(MESSAGES, GenerationOptions(max_new_tokens=2000), stop, stats):
        received += 1
        if received == 3:
            stop.set()
    # generate() checks the event once per step; a token already in flight may still land.
    assert stats.new_tokens <= 5
    assert received <= 5


def test_leaving_the_stream_early_joins_the_worker(tiny_phi3: Phi3Model) -> None:
    before = {t.name for t in threading.enumerate()}
    stream = tiny_phi3.stream(MESSAGES, GenerationOptions(max_new_tokens=2000), threading.Event())
    next(stream)
    stream.close()
    assert "phichat-generate" not in {t.name for t in threading.enumerate()} - before


@pytest.mark.parametrize("stop_token", STOP_TOKENS)
def test_each_stop_token_ends_the_answer(tmp_path: Path, stop_token: str) -> None:
    folder = build_tiny_phi3(tmp_path / "eager", eager_stop=stop_token)
    model = Phi3Model(str(folder))
    model.load()
    stats = GenerationStats()
    pieces = list(
        model.stream(MESSAGES, GenerationOptions(max_new_tokens=50), threading.Event(), stats)
    )
    assert pieces == []
    assert stats.new_tokens == 0


def test_seed_makes_sampling_repeatable(tiny_phi3: Phi3Model) -> None:
    options = GenerationOptions(max_new_tokens=16, temperature=1.0, top_p=0.9, seed=7)
    first = "".join(tiny_phi3.stream(MESSAGES, options, threading.Event()))
    second = "".join(tiny_phi3.stream(MESSAGES, options, threading.Event()))
    other = "".join(
        tiny_phi3.stream(
            MESSAGES,
            GenerationOptions(max_new_tokens=16, temperature=1.0, seed=8),
            threading.Event(),
        )
    )
    assert first == second
    assert first != other


def test_count_tokens_grows_with_the_conversation(tiny_phi3: Phi3Model) -> None:
    longer = [
        *MESSAGES,
        {"role": "assistant", "content": "Sure."},
        {"role": "user", "content": "More"},
    ]
    assert tiny_phi3.count_tokens(longer) > tiny_phi3.count_tokens(MESSAGES)
    assert tiny_phi3.count_text_tokens("Belize City") > 0


def test_uncached_hub_id_fails_at_once_with_the_way_out(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    model = Phi3Model("microsoft/Phi-3-mini-4k-instruct")
    with pytest.raises(ModelNotAvailable) as caught:
        model.load()
    message = str(caught.value)
    assert "phichat download microsoft/Phi-3-mini-4k-instruct" in message
    assert "--model PATH" in message
    assert "\n" not in message


def test_folder_without_config_is_not_a_model(tmp_path: Path) -> None:
    with pytest.raises(ModelNotAvailable, match=r"no config\.json"):
        Phi3Model(str(tmp_path)).load()
    with pytest.raises(ModelNotAvailable, match="does not exist"):
        Phi3Model(str(tmp_path / "missing")).load()


def test_dtype_choice_respects_an_explicit_setting() -> None:
    assert pick_dtype("float32", "cpu") == "float32"
    assert pick_dtype("auto", "mps") == "float16"
    assert pick_dtype("auto", "cpu") in ("bfloat16", "float32")
