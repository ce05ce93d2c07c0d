"""Search engines: turn a query into a few ``SearchResult``s.

"No results" is an empty list. A failure the user should hear about (timeout, rate
limit, no network, a broken SearxNG) raises ``SearchUnavailable`` after one short retry.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol, TypeVar

from phichat import __version__
from phichat.config import Settings
from phichat.errors import SearchUnavailable
from phichat.retrieval.searchcache import SearchCache
from phichat.retrieval.types import SearchResult
from phichat.textsafe import one_line

T = TypeVar("T")

USER_AGENT = f"phichat/{__version__} (+local assistant)"
SEARCH_TIMEOUT_S = 5.0
# One quick retry absorbs a dropped connection or a momentary rate limit without making
# the user wait long before the answer comes without sources.
RETRY_DELAYS_S = (0.6,)


class SearchEngine(Protocol):
    """One web search backend."""

    @property
    def cache_key(self) -> str:
        """Everything besides the query that changes the results (engine, region, ...)."""
        ...

    def search(self, query: str, max_results: int) -> list[SearchResult]: ...


def with_retry(action: Callable[[], T], delays: tuple[float, ...] = RETRY_DELAYS_S) -> T:
    """Run ``action``; on ``SearchUnavailable`` wait a little and try again."""
    for delay in delays:
        try:
            return action()
        except SearchUnavailable:
            time.sleep(delay)
    return action()


def _clean_results(raw: list[tuple[str, str, str]], max_results: int) -> list[SearchResult]:
    """Keep http(s) results with a URL, drop duplicates, strip control characters."""
    seen: set[str] = set()
    results = []
    for title, url, snippet in raw:
        url = one_line(url or "", 2000)
        if not url.lower().startswith(("http://", "https://")) or url in seen:
            continue
        seen.add(url)
        results.append(SearchResult(one_line(title or url), url, one_line(snippet or "", 600)))
    return results[:max_results]


class DuckDuckGoSearch:
    """DuckDuckGo (and the other engines behind ``ddgs``'s auto backend)."""

    def __init__(
        self, region: str = "us-en", safesearch: str = "moderate", timelimit: str | None = None
    ) -> None:
        self.region = region
        self.safesearch = safesearch
        self.timelimit = timelimit

    @property
    def cache_key(self) -> str:
        return f"duckduckgo|{self.region}|{self.safesearch}|{self.timelimit or ''}"

    def search(self, query: str, max_results: int) -> list[SearchResult]:
        from ddgs import DDGS
        from ddgs.exceptions import DDGSException, TimeoutException

        try:
            raw = DDGS(timeout=int(SEARCH_TIMEOUT_S)).text(
                query,
                region=self.region,
                safesearch=self.safesearch,
                timelimit=self.timelimit,
                max_results=max_results,
            )
        except TimeoutException:
            raise SearchUnavailable("DuckDuckGo timed out") from None
        except DDGSException as exc:
            # ddgs reports an empty result set as an exception with this exact text.
            if "no results" in str(exc).lower():
                return []
            raise SearchUnavailable(f"DuckDuckGo failed: {one_line(str(exc), 200)}") from None
        rows = [(r.get("title", ""), r.get("href", ""), r.get("body", "")) for r in raw]
        return _clean_results(rows, max_results)


_SEARXNG_SAFESEARCH = {"off": "0", "moderate": "1", "on": "2"}
_SEARXNG_TIME_RANGE = {"d": "day", "w": "week", "m": "month", "y": "year"}


class SearxngSearch:
    """A SearxNG instance's JSON API (the instance must enable the json format)."""

    def __init__(
        self,
        base_url: str,
        language: str = "en",
        safesearch: str = "moderate",
        timelimit: str | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.language = language
        self.safesearch = safesearch
        self.timelimit = timelimit

    @property
    def cache_key(self) -> str:
        return f"searxng|{self.base_url}|{self.language}|{self.safesearch}|{self.timelimit or ''}"

    def search(self, query: str, max_results: int) -> list[SearchResult]:
        import httpx

        params = {
            "q": query,
            "format": "json",
            "language": self.language,
            "safesearch": _SEARXNG_SAFESEARCH.get(self.safesearch, "1"),
        }
        if self.timelimit:
            params["time_range"] = _SEARXNG_TIME_RANGE[self.timelimit]
        try:
            response = httpx.get(
                f"{self.base_url}/search",
                params=params,
                headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
                timeout=httpx.Timeout(SEARCH_TIMEOUT_S, connect=3.0),
            )
        except httpx.TimeoutException:
            raise SearchUnavailable(f"SearxNG at {self.base_url} timed out") from None
        except httpx.HTTPError as exc:
            raise SearchUnavailable(
                f"cannot reach SearxNG at {self.base_url}: {one_line(str(exc), 200)}"
            ) from None
        if response.status_code == 429:
            raise SearchUnavailable("SearxNG is rate limiting requests")
        if response.status_code == 403:
            raise SearchUnavailable(
                f"SearxNG at {self.base_url} refused the JSON format (enable it in settings.yml)"
            )
        if response.status_code != 200:
            raise SearchUnavailable(f"SearxNG answered HTTP {response.status_code}")
        try:
            payload = response.json()
            rows = [
                (str(r.get("title", "")), str(r.get("url", "")), str(r.get("content", "")))
                for r in payload.get("results", [])
                if isinstance(r, dict)
            ]
        except (ValueError, AttributeError):
            raise SearchUnavailable("SearxNG returned something other than JSON results") from None
        return _clean_results(rows, max_results)


def create_engine(settings: Settings) -> SearchEngine:
    if settings.engine == "searxng":
        if not settings.searxng_url:
            raise SearchUnavailable("the searxng engine needs --searxng-url (or searxng_url)")
        return SearxngSearch(
            settings.searxng_url,
            language=settings.region.split("-")[-1] if "-" in settings.region else "en",
            safesearch=settings.safesearch,
            timelimit=settings.timelimit,
        )
    return DuckDuckGoSearch(settings.region, settings.safesearch, settings.timelimit)


class CachedSearch:
    """An engine behind the on-disk cache and one retry."""

    def __init__(self, engine: SearchEngine, cache: SearchCache | None) -> None:
        self.engine = engine
        self.cache = cache

    @property
    def cache_key(self) -> str:
        return self.engine.cache_key

    def search(self, query: str, max_results: int) -> list[SearchResult]:
        key = f"{self.engine.cache_key}|{max_results}|{' '.join(query.lower().split())}"
        if self.cache is not None:
            cached = self.cache.get(key)
            if cached is not None:
                return cached
        results = with_retry(lambda: self.engine.search(query, max_results))
        # Empty results are not cached: they are often a transient engine hiccup.
        if self.cache is not None and results:
            self.cache.put(key, results)
        return results
