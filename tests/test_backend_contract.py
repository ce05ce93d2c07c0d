"""One contract, every backend: the same tests, unchanged, for each way phichat runs a model.

- transformers: the tiny random Phi-3 (the session fixture);
- gguf: the same weights converted to GGUF and run by llama.cpp in its worker process
  (skipped where llama-cpp-python is not installed);
- openai: phichat's own client against ``phichat serve`` (serving the tiny Phi-3) on loopback;
- scripted: the stand-in the UI tests use.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from phichat.models.base import ChatMessage, ChatModel, GenerationOptions, GenerationStats
from phichat.models.scripted import ScriptedModel

MESSAGES: list[ChatMessage] = [
    {"role": "system", "content": "You are brief."},
    {"role": "user", "content": "Plan a day in Belize City."},
]
GREEDY = GenerationOptions(max_new_tokens=12)
NEEDS_LLAMA = (
    "llama-cpp-python is not installed (pip install 'phichat[gguf]'; it builds from source)"
)


@dataclass
class Backend:
    model: ChatModel  # loaded, shared by the tests of one backend
    fresh: Callable[[], ChatModel]  # a new instance of the same backend, not yet loaded


def _close(model: ChatModel) -> None:
    close = getattr(model, "close", None)
    if close is not None:
        close()


@pytest.fixture(scope="module")
def served_tiny_phi3(tiny_phi3) -> Iterator[str]:  # type: ignore[no-untyped-def]
    from phichat.server.app import ServeOptions, make_server

    server = make_server(tiny_phi3, ServeOptions(model_id="tiny-phi3", defaults=GREEDY))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.url
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture(scope="module")
def tiny_gguf(tiny_phi3_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("gguf", reason="the gguf package (test extra) writes the test file")
    pytest.importorskip("llama_cpp", reason=NEEDS_LLAMA)
    from phi3_gguf import write_phi3_gguf

    return write_phi3_gguf(tiny_phi3_path, tmp_path_factory.mktemp("gguf") / "tiny-phi3.gguf")


@pytest.fixture(scope="module", params=["transformers", "gguf", "openai", "scripted"])
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    fresh: Callable[[], ChatModel]
    if request.param == "transformers":
        from phichat.models.phi3 import Phi3Model

        path = request.getfixturevalue("tiny_phi3_path")
        model = request.getfixturevalue("tiny_phi3")
        fresh = lambda: Phi3Model(str(path))  # noqa: E731
        yield Backend(model, fresh)
        return
    if request.param == "gguf":
        from phichat.models.gguf import GGUFModel

        path = request.getfixturevalue("tiny_gguf")
        fresh = lambda: GGUFModel(str(path), threads=1)  # noqa: E731
    elif request.param == "openai":
        from phichat.models.openai_compat import OpenAICompatModel

        url = request.getfixturevalue("served_tiny_phi3")
        fresh = lambda: OpenAICompatModel(url)  # noqa: E731
    else:
        reply = "Start at the Swing Bridge, then walk the seafront to the lighthouse and on."
        fresh = lambda: ScriptedModel([reply])  # noqa: E731
    model = fresh()
    model.load()
    try:
        yield Backend(model, fresh)
    finally:
        _close(model)


def answer(
    model: ChatModel,
    options: GenerationOptions = GREEDY,
    messages: list[ChatMessage] = MESSAGES,
) -> tuple[str, GenerationStats]:
    stats = GenerationStats()
    text = "".join(model.stream(messages, options, threading.Event(), stats))
    return text, stats


def test_load_is_idempotent_and_loaded_says_so(backend: Backend) -> None:
    model = backend.fresh()
    try:
        assert not model.loaded
        first: list[str] = []
        model.load(lambda description, fraction: first.append(description))
        assert model.loaded
        assert first[-1] == "ready"
        again: list[str] = []
        model.load(lambda description, fraction: again.append(description))
        assert again == []  # already loaded: nothing to do, nothing to report
        assert model.loaded
    finally:
        _close(model)


def test_describe_names_the_model_device_and_dtype(backend: Backend) -> None:
    facts = backend.model.describe()
    assert {"model", "device", "dtype"} <= set(facts)
    assert all(isinstance(value, str) and value for value in facts.values())


def test_token_counts_are_consistent(backend: Backend) -> None:
    model = backend.model
    question = MESSAGES[-1]["content"]
    counted = model.count_tokens(MESSAGES)
    assert counted == model.count_tokens(MESSAGES)
    # The template adds tokens around the text; it never removes any.
    assert counted >= sum(model.count_text_tokens(m["content"]) for m in MESSAGES)
    assert model.count_text_tokens(question) > 0
    longer = [*MESSAGES, {"role": "assistant", "content": "Sure."}]
    assert model.count_tokens(longer) > counted
    assert model.count_text_tokens(question + " And the market?") > model.count_text_tokens(
        question
    )


def test_a_greedy_stream_is_deterministic_and_fills_its_stats(backend: Backend) -> None:
    text, stats = answer(backend.model)
    again, _ = answer(backend.model)
    assert text.strip()
    assert again == text
    assert stats.prompt_tokens == backend.model.count_tokens(MESSAGES)
    assert 0 < stats.new_tokens <= GREEDY.max_new_tokens
    assert 0 < stats.ttft_s <= stats.total_s


def test_max_new_tokens_is_honoured(backend: Backend) -> None:
    _, stats = answer(backend.model, GenerationOptions(max_new_tokens=3))
    assert 0 < stats.new_tokens <= 3


def test_a_stop_is_honoured_within_a_step(backend: Backend) -> None:
    stop = threading.Event()
    stats = GenerationStats()
    pieces = []
    for piece in backend.model.stream(MESSAGES, GenerationOptions(max_new_tokens=50), stop, stats):
        pieces.append(piece)
        stop.set()
    assert len(pieces) == 1  # nothing more once the stop was seen
    assert stats.total_s >= stats.ttft_s
    # Stopped before it began: no text at all, and the model still answers afterwards.
    already = threading.Event()
    already.set()
    assert list(backend.model.stream(MESSAGES, GREEDY, already)) == []
    assert answer(backend.model)[0] == answer(backend.model)[0]


def test_closing_a_stream_midway_leaves_the_model_usable(backend: Backend) -> None:
    expected, _ = answer(backend.model)
    stream = backend.model.stream(MESSAGES, GenerationOptions(max_new_tokens=50), threading.Event())
    assert next(stream)
    stream.close()
    assert answer(backend.model)[0] == expected
