"""Search trouble said plainly: each kind of failure has its own line, and none is a crash.

Against the loopback SearxNG fixture and a stand-in for ``ddgs.DDGS``: rate limits (with
the wait, the retry and the pause after), no results, an unreachable network, a
misconfigured engine, and damaged replies (issue 12, bug 6).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import ClassVar

import pytest
from webfixture import LoopbackWeb, loopback_web_fixture  # noqa: F401

from phichat.chat.events import Done, Status
from phichat.chat.factory import turn_options
from phichat.chat.session import Session
from phichat.config import Settings, load_settings
from phichat.domain import Conversation
from phichat.errors import ConfigError, SearchUnavailable
from phichat.models.scripted import ScriptedModel
from phichat.retrieval import search as search_module
from phichat.retrieval.pipeline import WebRetriever
from phichat.retrieval.search import (
    BACKOFF_FIRST_S,
    CachedSearch,
    DuckDuckGoSearch,
    SearxngSearch,
    check_search_settings,
    create_engine,
)
from phichat.retrieval.searchcache import SearchCache
from phichat.retrieval.searchproblems import (
    SearchMisconfigured,
    SearchNetworkDown,
    SearchRateLimited,
    SearchReplyBroken,
    redact_url,
)
from phichat.retrieval.types import SearchResult


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep every retry, without its pause."""
    monkeypatch.setattr(search_module.with_retry, "__defaults__", ((0.0,),))
    monkeypatch.setattr(search_module, "RATE_LIMIT_WAIT_S", 0.0)


# ---- damaged SearxNG replies (bug 6) -----------------------------------------------------

DAMAGED_REPLIES = {
    "results is null": b'{"results": null}',
    "results is a number": b'{"results": 5}',
    "reply is a list": b"[1, 2, 3]",
    "deeply nested": b'{"results": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
}


@pytest.mark.parametrize("body", DAMAGED_REPLIES.values(), ids=DAMAGED_REPLIES.keys())
def test_a_damaged_searxng_reply_is_a_search_problem_not_a_crash(
    loopback_web: LoopbackWeb, body: bytes
) -> None:
    loopback_web.search_body = body
    with pytest.raises(SearchUnavailable) as raised:
        CachedSearch(SearxngSearch(loopback_web.base), None).search("q", 5)
    assert isinstance(raised.value, SearchReplyBroken | SearchMisconfigured)
    assert loopback_web.search_hits() == 1  # the same reply again would not help


def test_damaged_result_fields_are_skipped(loopback_web: LoopbackWeb) -> None:
    good = loopback_web.url("/juneau.html")
    loopback_web.search_body = (
        b'{"results": [5, null, {"url": 7, "title": "x"}, {"url": {"a": 1}},'
        b' {"url": "' + good.encode() + b'", "title": ["t"], "content": null}]}'
    )
    assert SearxngSearch(loopback_web.base).search("q", 5) == [SearchResult(good, good, "")]


def scripted_session(web: LoopbackWeb, replies: list[str] | None = None) -> Session:
    settings = Settings(
        search=True, engine="searxng", searxng_url=web.base, allow_private_urls=True
    )
    return Session(
        ScriptedModel(replies or ["An answer without sources."]),
        turn_options(settings),
        retriever=WebRetriever(settings),
    )


def search_notes(events: list[object]) -> list[str]:
    return [e.detail for e in events if isinstance(e, Status) and e.stage == "searching"]


def test_a_damaged_reply_answers_without_sources_with_a_clear_line(
    loopback_web: LoopbackWeb,
) -> None:
    loopback_web.search_body = b'{"results": null}'
    session = scripted_session(loopback_web)
    events = list(session.respond(Conversation(), "Skagway?", True, threading.Event()))
    done = events[-1]
    assert isinstance(done, Done) and done.message.text == "An answer without sources."
    assert not done.message.grounded
    assert (
        f"search unavailable: SearxNG at {loopback_web.base} sent a malformed reply "
        "(no list of results); answering without sources"
    ) in search_notes(events)


# ---- each kind of trouble, its own line ----------------------------------------------------


def test_no_results_has_its_own_line(loopback_web: LoopbackWeb) -> None:
    events = list(
        scripted_session(loopback_web).respond(Conversation(), "zzqx", True, threading.Event())
    )
    assert "no results for this query; answering without sources" in search_notes(events)
    assert isinstance(events[-1], Done)


def test_an_unreachable_engine_says_network_unreachable() -> None:
    with pytest.raises(SearchNetworkDown) as raised:
        SearxngSearch("http://127.0.0.1:9").search("q", 5)
    assert str(raised.value).startswith("network unreachable: cannot reach SearxNG")


def test_json_switched_off_is_misconfigured_and_not_retried(loopback_web: LoopbackWeb) -> None:
    loopback_web.search_status = 403
    with pytest.raises(SearchMisconfigured) as raised:
        CachedSearch(SearxngSearch(loopback_web.base), None).search("q", 5)
    assert "settings.yml" in str(raised.value)
    assert loopback_web.search_hits() == 1


def test_a_page_that_is_not_searxng_is_misconfigured(loopback_web: LoopbackWeb) -> None:
    with pytest.raises(SearchMisconfigured, match="is searxng_url the instance's base URL"):
        SearxngSearch(loopback_web.url("/not-here")).search("q", 5)
    loopback_web.search_body = b"<html>a web page</html>"
    with pytest.raises(SearchMisconfigured, match="other than JSON"):
        SearxngSearch(loopback_web.base).search("q", 5)


# ---- rate limits: wait and retry, then a pause that doubles -------------------------------


def test_rate_limit_waits_retries_then_pauses_and_doubles(
    loopback_web: LoopbackWeb, tmp_path: Path
) -> None:
    now = [1000.0]
    cache = SearchCache(tmp_path / "c.json", clock=lambda: now[0])
    engine = CachedSearch(SearxngSearch(loopback_web.base), cache)
    loopback_web.search_status = 429
    with pytest.raises(SearchRateLimited) as raised:
        engine.search("q", 5)
    message = str(raised.value)
    assert message.startswith("rate-limited: ")
    assert "tried again" in message and f"for {BACKOFF_FIRST_S:.0f} s" in message
    assert "SearxNG" in message and loopback_web.search_hits() == 2  # one wait-and-retry

    # During the pause the engine is not asked at all, even by another process (the
    # pause is kept in the cache file).
    again = CachedSearch(SearxngSearch(loopback_web.base), SearchCache(cache.path, clock=cache.now))
    with pytest.raises(SearchRateLimited, match="try it again in 30 s"):
        again.search("other question", 5)
    assert loopback_web.search_hits() == 2

    # After the pause it asks again; rate-limited again, it waits twice as long.
    now[0] += BACKOFF_FIRST_S + 1
    with pytest.raises(SearchRateLimited, match=f"for {2 * BACKOFF_FIRST_S:.0f} s"):
        engine.search("q", 5)
    assert loopback_web.search_hits() == 4

    # Once the engine answers, the pause is forgotten and the results are cached.
    now[0] += 2 * BACKOFF_FIRST_S + 1
    loopback_web.search_status = 200
    loopback_web.search_results = [loopback_web.result("/juneau.html", "Juneau")]
    assert [r.title for r in engine.search("q", 5)] == ["Juneau"]
    assert cache.rate_limit(engine.cache_key) == (0.0, 0)
    assert [r.title for r in engine.search("q", 5)] == ["Juneau"]
    assert loopback_web.search_hits() == 5


def test_a_rate_limit_in_the_app_turn_is_one_line(loopback_web: LoopbackWeb) -> None:
    loopback_web.search_status = 429
    events = list(
        scripted_session(loopback_web).respond(Conversation(), "q", True, threading.Event())
    )
    [line] = [n for n in search_notes(events) if "without sources" in n]
    assert line.startswith("rate-limited: SearxNG at ")
    assert line.endswith("answering without sources")
    assert isinstance(events[-1], Done)


# ---- the DuckDuckGo adapter, with a stand-in for ddgs.DDGS --------------------------------


class _FakeDDGS:
    outcome: ClassVar[object] = []
    calls: ClassVar[int] = 0

    def __init__(self, **kwargs: object) -> None:
        pass

    def text(self, query: str, **kwargs: object) -> object:
        _FakeDDGS.calls += 1
        if isinstance(_FakeDDGS.outcome, Exception):
            raise _FakeDDGS.outcome
        return _FakeDDGS.outcome


@pytest.fixture
def fake_ddgs(monkeypatch: pytest.MonkeyPatch) -> type[_FakeDDGS]:
    import ddgs

    monkeypatch.setattr(ddgs, "DDGS", _FakeDDGS)
    _FakeDDGS.outcome = []
    _FakeDDGS.calls = 0
    return _FakeDDGS


def ddgs_error(name: str, text: str) -> Exception:
    from ddgs import exceptions

    return getattr(exceptions, name)(text)  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("error", "headline"),
    [
        (("RatelimitException", "202 Ratelimit"), "rate-limited: "),
        (("DDGSException", "https://html.duckduckgo.com 429 Too Many Requests"), "rate-limited: "),
        (("DDGSException", "ConnectError: dns error: failed to lookup address"), "network "),
        (("TimeoutException", "timed out"), "search unavailable: DuckDuckGo timed out"),
        (("DDGSException", "something odd"), "search unavailable: DuckDuckGo failed"),
    ],
)
def test_ddgs_failures_are_told_apart(
    fake_ddgs: type[_FakeDDGS], tmp_path: Path, error: tuple[str, str], headline: str
) -> None:
    fake_ddgs.outcome = ddgs_error(*error)
    with pytest.raises(SearchUnavailable) as raised:
        CachedSearch(DuckDuckGoSearch(), SearchCache(tmp_path / "c.json")).search("q", 5)
    assert str(raised.value).startswith(headline)
    assert fake_ddgs.calls == 2  # one retry each


def test_ddgs_no_results_is_empty_and_a_rate_limit_pauses_it(
    fake_ddgs: type[_FakeDDGS], tmp_path: Path
) -> None:
    engine = CachedSearch(DuckDuckGoSearch(), SearchCache(tmp_path / "c.json"))
    fake_ddgs.outcome = ddgs_error("DDGSException", "No results found.")
    assert engine.search("zzqx", 5) == []
    fake_ddgs.outcome = ddgs_error("RatelimitException", "202 Ratelimit")
    with pytest.raises(SearchRateLimited, match="set up a SearxNG instance"):
        engine.search("q", 5)
    calls = fake_ddgs.calls
    with pytest.raises(SearchRateLimited):
        engine.search("q", 5)
    assert fake_ddgs.calls == calls


def test_ddgs_damaged_results_are_skipped(fake_ddgs: type[_FakeDDGS]) -> None:
    fake_ddgs.outcome = [None, {"href": None}, {"href": 3}, {"href": "https://e.test/", "title": 1}]
    assert DuckDuckGoSearch().search("q", 5) == [SearchResult("https://e.test/", "https://e.test/")]
    fake_ddgs.outcome = {"not": "a list"}
    with pytest.raises(SearchReplyBroken):
        DuckDuckGoSearch().search("q", 5)


def test_ddgs_refusing_a_setting_is_misconfigured(fake_ddgs: type[_FakeDDGS]) -> None:
    fake_ddgs.outcome = ValueError("invalid timelimit")
    with pytest.raises(SearchMisconfigured, match="invalid timelimit"):
        DuckDuckGoSearch().search("q", 5)


# ---- the SearxNG URL: a setup error, shown without its secrets (issue 12) ------------------


@pytest.mark.parametrize(
    "url", ["127.0.0.1:8888", "ftp://127.0.0.1/", "http://", "http://127.0.0.1:99999"]
)
def test_a_malformed_searxng_url_is_a_setup_error(url: str) -> None:
    settings = load_settings({"engine": "searxng", "searxng_url": url})
    with pytest.raises(ConfigError) as raised:
        check_search_settings(settings)
    assert raised.value.exit_code == 2
    with pytest.raises(SearchMisconfigured):
        create_engine(settings)


def test_credentials_in_the_searxng_url_are_never_shown(loopback_web: LoopbackWeb) -> None:
    secret_url = "http://alice:s3cr3t@127.0.0.1:9/?token=t0ken"
    with pytest.raises(SearchUnavailable) as raised:
        CachedSearch(SearxngSearch(secret_url), None).search("q", 5)
    shown = str(raised.value)
    assert "s3cr3t" not in shown and "alice" not in shown and "t0ken" not in shown
    assert "127.0.0.1:9" in shown
    loopback_web.search_status = 500
    with_creds = loopback_web.base.replace("http://", "http://bob:hunter2@")
    with pytest.raises(SearchUnavailable) as raised:
        SearxngSearch(with_creds).search("q", 5)
    assert "hunter2" not in str(raised.value) and "bob" not in str(raised.value)
    assert redact_url(with_creds) == loopback_web.base.replace("http://", "http://…@")


def test_the_search_cache_key_never_holds_the_instance_credentials() -> None:
    secret = SearxngSearch("https://alice:s3cret@search.example.org/?token=t0ken")
    other = SearxngSearch("https://bob:other@search.example.org/?token=t0ken")
    assert "s3cret" not in secret.cache_key
    assert "t0ken" not in secret.cache_key
    assert "alice" not in secret.cache_key
    # Two instances that differ only in their credentials still keep separate results.
    assert secret.cache_key != other.cache_key
    assert secret.cache_key == SearxngSearch(secret.base_url).cache_key
