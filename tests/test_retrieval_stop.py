"""A stop takes effect inside retrieval's stages, and slow pages do not hold up a turn."""

from __future__ import annotations

import socket
import threading

import pytest
from webfixture import LoopbackWeb, Response, loopback_web_fixture  # noqa: F401

from phichat.config import load_settings
from phichat.retrieval import pipeline
from phichat.retrieval.fetch import FetchLimits, fetch_pages
from phichat.retrieval.pipeline import WebRetriever
from phichat.retrieval.types import FetchedPage, PackBudget, Page


def six_pages(web: LoopbackWeb) -> None:
    names = ["skagway.html", "juneau.html", "ketchikan.html", "nav-heavy.html"]
    names += ["ferry-notes.txt", "menu-only.html"]
    web.search_results = [web.result(f"/{name}", name) for name in names]


def keyword_retriever(web: LoopbackWeb) -> WebRetriever:
    settings = load_settings(
        {"engine": "searxng", "searxng_url": web.base, "allow_private_urls": True}
    )
    retriever = WebRetriever(settings)
    retriever._embedder_failed = "not needed here"  # rank by keywords: no model load
    return retriever


def test_a_stop_during_extraction_skips_the_remaining_pages(
    loopback_web: LoopbackWeb, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    six_pages(loopback_web)
    stop = threading.Event()
    read: list[str] = []
    real_extract = pipeline.extract_page

    def extract_then_stop(fetched: FetchedPage) -> Page:
        read.append(fetched.url)
        stop.set()  # Esc while the first page is being read
        return real_extract(fetched)

    monkeypatch.setattr(pipeline, "extract_page", extract_then_stop)
    retrieval = keyword_retriever(loopback_web).retrieve(
        "train", PackBudget(1000), lambda *_: None, stop
    )
    assert len(read) == 1
    assert [page.error for page in retrieval.pages[1:]] == ["stopped"] * 5
    assert retrieval.sources == []


def test_a_stop_does_not_wait_for_the_page_being_read(
    loopback_web: LoopbackWeb, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    six_pages(loopback_web)
    stop = threading.Event()
    entered = threading.Event()
    release = threading.Event()
    finished: list[bool] = []

    def endless_extract(fetched: FetchedPage) -> Page:
        entered.set()
        release.wait(30)  # a page that takes far longer than any stop may wait
        finished.append(True)
        return Page(url=fetched.url, error="slow")

    monkeypatch.setattr(pipeline, "extract_page", endless_extract)
    threading.Thread(target=lambda: entered.wait(30) and stop.set(), daemon=True).start()
    try:
        retrieval = keyword_retriever(loopback_web).retrieve(
            "train", PackBudget(1000), lambda *_: None, stop
        )
        assert finished == []  # retrieve came back while the page was still being read
        assert {page.error for page in retrieval.pages} == {"stopped"}
    finally:
        release.set()


def test_stragglers_get_a_grace_period_once_enough_text_is_read(
    loopback_web: LoopbackWeb,
) -> None:
    loopback_web.routes["/drip.html"] = Response(b"<p>late</p>", delay_s=8.0)
    urls = [loopback_web.url("/skagway.html"), loopback_web.url("/drip.html")]
    limits = FetchLimits(read_timeout=30, deadline=30, allow_private=True, grace=0.2)
    pages = fetch_pages(urls, limits, enough=lambda read: len(read) >= 1)
    assert pages[0].ok
    assert pages[1].error == "too slow: the other pages were enough"


def test_without_enough_text_slow_pages_keep_the_full_deadline(
    loopback_web: LoopbackWeb,
) -> None:
    loopback_web.routes["/late.html"] = Response(b"<p>late but here</p>", delay_s=0.5)
    urls = [loopback_web.url("/skagway.html"), loopback_web.url("/late.html")]
    limits = FetchLimits(read_timeout=5, deadline=5, allow_private=True, grace=0.0)
    pages = fetch_pages(urls, limits, enough=lambda read: False)
    assert pages[1].ok and "late but here" in pages[1].body


def test_stop_returns_while_a_dns_lookup_hangs(monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()
    lookup_ended = threading.Event()
    real = socket.getaddrinfo

    def stuck(host, *args, **kwargs):  # type: ignore[no-untyped-def]
        if host == "stuck.test":
            release.wait(30)
            lookup_ended.set()
            raise socket.gaierror(-2, "Name or service not known")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", stuck)
    stop = threading.Event()
    timer = threading.Timer(0.2, stop.set)
    timer.start()
    try:
        # Before the fix this call only returned once the lookup ended, because
        # asyncio.run() joined the lookup's thread; now it returns while it still hangs.
        pages = fetch_pages(["http://stuck.test/"], FetchLimits(deadline=60.0), stop=stop)
        returned_while_stuck = not lookup_ended.is_set()
    finally:
        release.set()
        timer.cancel()
    assert returned_while_stuck
    assert [page.ok for page in pages] == [False]
    assert pages[0].error == "stopped"
