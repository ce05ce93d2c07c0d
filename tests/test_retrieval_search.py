"""Search engines: SearxNG over loopback, DuckDuckGo through a stand-in, retry and cache."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import pytest
from webfixture import LoopbackWeb, loopback_web_fixture  # noqa: F401

from phichat.config import load_settings
from phichat.errors import SearchUnavailable
from phichat.retrieval import search as search_module
from phichat.retrieval.search import (
    CachedSearch,
    DuckDuckGoSearch,
    SearxngSearch,
    create_engine,
)
from phichat.retrieval.searchcache import SearchCache
from phichat.retrieval.types import SearchResult


@pytest.fixture(autouse=True)
def no_retry_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the one retry, without its pause."""
    monkeypatch.setattr(search_module.with_retry, "__defaults__", ((0.0,),))


def test_searxng_results_are_parsed_and_cleaned(loopback_web: LoopbackWeb) -> None:
    loopback_web.search_results = [
        loopback_web.result("/skagway.html", "Skagway \x1b[31mguide", "A day in town"),
        loopback_web.result("/skagway.html", "duplicate"),
        {"url": "ftp://example.test/file", "title": "not http", "content": ""},
        loopback_web.result("/juneau.html", "Juneau"),
    ]
    results = SearxngSearch(loopback_web.base).search("skagway one day", 5)
    assert results == [
        SearchResult("Skagway guide", loopback_web.url("/skagway.html"), "A day in town"),
        SearchResult("Juneau", loopback_web.url("/juneau.html"), ""),
    ]
    assert any("q=skagway+one+day" in r and "format=json" in r for r in loopback_web.requests)


def test_searxng_with_no_results_is_an_empty_list(loopback_web: LoopbackWeb) -> None:
    assert SearxngSearch(loopback_web.base).search("nothing at all", 5) == []


def test_searxng_respects_max_results(loopback_web: LoopbackWeb) -> None:
    loopback_web.search_results = [loopback_web.result(f"/p{i}") for i in range(10)]
    assert len(SearxngSearch(loopback_web.base).search("q", 3)) == 3


def test_searxng_server_error_is_search_unavailable(loopback_web: LoopbackWeb) -> None:
    loopback_web.search_status = 500
    with pytest.raises(SearchUnavailable, match="HTTP 500"):
        SearxngSearch(loopback_web.base).search("q", 5)


def test_unreachable_searxng_is_search_unavailable() -> None:
    with pytest.raises(SearchUnavailable, match="cannot reach SearxNG"):
        SearxngSearch("http://127.0.0.1:9").search("q", 5)


def test_a_failed_search_is_retried_once(loopback_web: LoopbackWeb, tmp_path: Path) -> None:
    loopback_web.search_results = [loopback_web.result("/juneau.html", "Juneau")]
    loopback_web.search_failures_left = 1
    engine = CachedSearch(SearxngSearch(loopback_web.base), None)
    assert [r.title for r in engine.search("juneau", 5)] == ["Juneau"]
    assert loopback_web.search_hits() == 2


def test_two_failures_give_up(loopback_web: LoopbackWeb) -> None:
    loopback_web.search_failures_left = 2
    with pytest.raises(SearchUnavailable, match="HTTP 503"):
        CachedSearch(SearxngSearch(loopback_web.base), None).search("juneau", 5)


def test_repeated_query_is_answered_from_the_cache(
    loopback_web: LoopbackWeb, tmp_path: Path
) -> None:
    loopback_web.search_results = [loopback_web.result("/juneau.html", "Juneau")]
    cache = SearchCache(tmp_path / "cache.json")
    first = CachedSearch(SearxngSearch(loopback_web.base), cache).search("Juneau  whales", 5)
    again = CachedSearch(SearxngSearch(loopback_web.base), cache).search("juneau whales", 5)
    assert first == again
    assert loopback_web.search_hits() == 1


def test_cache_entries_expire_and_the_cache_stays_small(tmp_path: Path) -> None:
    now = [1000.0]
    cache = SearchCache(tmp_path / "c.json", ttl_s=60, max_entries=3, clock=lambda: now[0])
    results = [SearchResult("t", "https://example.test/", "s")]
    for index in range(5):
        cache.put(f"q{index}", results)
        now[0] += 1
    assert cache.get("q0") is None and cache.get("q1") is None  # evicted by the size cap
    assert cache.get("q4") == results
    now[0] += 120
    assert cache.get("q4") is None  # expired


def test_damaged_cache_file_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text("{not json", encoding="utf-8")
    cache = SearchCache(path)
    assert cache.get("anything") is None
    cache.put("q", [SearchResult("t", "https://example.test/")])
    assert cache.get("q") == [SearchResult("t", "https://example.test/")]


def test_a_damaged_search_cache_entry_is_a_miss(tmp_path: Path) -> None:
    path = tmp_path / "cache.json"
    path.write_text('{"k": {"at": null, "results": []}, "j": {"at": "yesterday"}}')
    cache = SearchCache(path)
    assert cache.get("k") is None
    cache.put("other", [])  # does not raise on the damaged neighbours
    assert cache.get("other") == []


class _FakeDDGS:
    """Stands in for ddgs.DDGS: records calls and replays an outcome."""

    outcome: object = []
    calls: ClassVar[list[dict[str, object]]] = []

    def __init__(self, **kwargs: object) -> None:
        pass

    def text(self, query: str, **kwargs: object) -> list[dict[str, str]]:
        _FakeDDGS.calls.append({"query": query, **kwargs})
        if isinstance(_FakeDDGS.outcome, Exception):
            raise _FakeDDGS.outcome
        return _FakeDDGS.outcome  # type: ignore[return-value]


@pytest.fixture
def fake_ddgs(monkeypatch: pytest.MonkeyPatch) -> type[_FakeDDGS]:
    import ddgs

    monkeypatch.setattr(ddgs, "DDGS", _FakeDDGS)
    _FakeDDGS.calls = []
    _FakeDDGS.outcome = []
    return _FakeDDGS


def test_duckduckgo_passes_settings_and_maps_results(fake_ddgs: type[_FakeDDGS]) -> None:
    fake_ddgs.outcome = [{"title": "Skagway", "href": "https://example.test/s", "body": "Gold"}]
    engine = DuckDuckGoSearch(region="de-de", safesearch="off", timelimit="m")
    assert engine.search("skagway", 4) == [
        SearchResult("Skagway", "https://example.test/s", "Gold")
    ]
    assert fake_ddgs.calls == [
        {
            "query": "skagway",
            "region": "de-de",
            "safesearch": "off",
            "timelimit": "m",
            "max_results": 4,
        }
    ]


def test_duckduckgo_no_results_is_an_empty_list(fake_ddgs: type[_FakeDDGS]) -> None:
    from ddgs.exceptions import DDGSException

    fake_ddgs.outcome = DDGSException("No results found.")
    assert DuckDuckGoSearch().search("zzqx", 5) == []


@pytest.mark.parametrize(
    ("error_name", "message"),
    [("TimeoutException", "timed out"), ("DDGSException", "cannot reach DuckDuckGo")],
)
def test_duckduckgo_failures_are_search_unavailable(
    fake_ddgs: type[_FakeDDGS], error_name: str, message: str
) -> None:
    from ddgs import exceptions

    fake_ddgs.outcome = getattr(exceptions, error_name)("network is unreachable")
    with pytest.raises(SearchUnavailable, match=message):
        DuckDuckGoSearch().search("skagway", 5)


def test_engine_choice_follows_settings() -> None:
    assert isinstance(create_engine(load_settings({})), DuckDuckGoSearch)
    searx = create_engine(load_settings({"engine": "searxng", "searxng_url": "http://s.test/"}))
    assert isinstance(searx, SearxngSearch) and searx.base_url == "http://s.test"
    with pytest.raises(SearchUnavailable, match="--searxng-url"):
        create_engine(load_settings({"engine": "searxng"}))
