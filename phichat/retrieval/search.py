"""Search engines: turn a query into a few ``SearchResult``s.

"No results" is an empty list. A failure the user should hear about raises one of the
``SearchProblem`` kinds (rate-limited, network unreachable, misconfigured, failed), after
one short retry when retrying can help. A rate-limited engine is not asked again for a
while (the pause doubles each time it happens again), and results are cached on disk.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit

from phichat import __version__
from phichat.config import SafeSearch, Settings, TimeLimit
from phichat.errors import ConfigError, SearchUnavailable
from phichat.retrieval.searchcache import SearchCache
from phichat.retrieval.searchproblems import (
    SEARXNG_ADVICE,
    SearchFailed,
    SearchMisconfigured,
    SearchNetworkDown,
    SearchProblem,
    SearchRateLimited,
    SearchReplyBroken,
    redact_url,
    scrub,
)
from phichat.retrieval.types import SearchResult
from phichat.textsafe import one_line

T = TypeVar("T")

USER_AGENT = f"phichat/{__version__} (+local assistant)"
SEARCH_TIMEOUT_S = 5.0
# One quick retry absorbs a dropped connection or a momentary hiccup without making the
# user wait long before the answer comes without sources.
RETRY_DELAYS_S = (0.6,)
# A rate limit needs a longer breath before the one retry.
RATE_LIMIT_WAIT_S = 2.0
# After a retry is rate-limited too, the engine is left alone for this long, doubling with
# each further rate limit up to the cap (asking again sooner only prolongs the block).
BACKOFF_FIRST_S = 30.0
BACKOFF_MAX_S = 15 * 60.0


class SearchEngine(Protocol):
    """One web search backend."""

    @property
    def cache_key(self) -> str:
        """Everything besides the query that changes the results (engine, region, ...)."""
        ...

    def search(self, query: str, max_results: int) -> list[SearchResult]: ...


def with_retry(action: Callable[[], T], delays: tuple[float, ...] = RETRY_DELAYS_S) -> T:
    """Run ``action``; on a transient ``SearchUnavailable`` wait a little and try again.

    A rate limit waits ``RATE_LIMIT_WAIT_S`` instead; a setup mistake or an unreadable
    reply is raised at once, since asking again would give the same answer.
    """
    for delay in delays:
        try:
            return action()
        except SearchUnavailable as exc:
            if not getattr(exc, "transient", True):
                raise
            time.sleep(RATE_LIMIT_WAIT_S if isinstance(exc, SearchRateLimited) else delay)
    return action()


def _text(value: object) -> str:
    """A field of an engine's reply as text; anything but a string (null, a number, a
    nested object in a damaged reply) counts as absent."""
    return value if isinstance(value, str) else ""


def _clean_results(raw: list[tuple[str, str, str]], max_results: int) -> list[SearchResult]:
    """Keep http(s) results with a URL, drop duplicates, strip control characters."""
    seen: set[str] = set()
    results = []
    for title, url, snippet in raw:
        url = one_line(url, 2000)
        if not url.lower().startswith(("http://", "https://")) or url in seen:
            continue
        seen.add(url)
        results.append(SearchResult(one_line(title or url), url, one_line(snippet, 600)))
    return results[:max_results]


# Words in ddgs's error text (it wraps the HTTP client's exception as text) that mean the
# machine could not reach the engine at all.
_NETWORK_WORDS = ("connect", "dns", "resolve", "unreachable", "no route", "refused", "network")
_RATE_LIMIT_WORDS = ("ratelimit", "rate limit", "too many requests", "429")


def ddgs_problem(exc: Exception) -> SearchProblem | None:
    """The kind of a ``ddgs`` failure; None for its "no results" (not a failure)."""
    from ddgs.exceptions import RatelimitException, TimeoutException

    text = one_line(str(exc), 200)
    low = text.lower()
    if isinstance(exc, RatelimitException) or any(w in low for w in _RATE_LIMIT_WORDS):
        return SearchRateLimited(f"DuckDuckGo is refusing searches for now; {SEARXNG_ADVICE}")
    if isinstance(exc, TimeoutException) or "timed out" in low:
        return SearchFailed("DuckDuckGo timed out")
    if any(w in low for w in _NETWORK_WORDS):
        return SearchNetworkDown(f"cannot reach DuckDuckGo ({text})")
    if "no results" in low:
        return None
    return SearchFailed(f"DuckDuckGo failed: {text}")


class DuckDuckGoSearch:
    """DuckDuckGo (and the other engines behind ``ddgs``'s auto backend).

    ddgs 9 raises ``DDGSException("No results found.")`` both when nothing matched and when
    every backend answered with a block page (its engines drop non-200 replies), so a rate
    limit it does not name can only show as "no results".
    """

    def __init__(
        self,
        region: str = "us-en",
        safesearch: SafeSearch = "moderate",
        timelimit: TimeLimit | None = None,
    ) -> None:
        self.region = region
        self.safesearch = safesearch
        self.timelimit = timelimit

    @property
    def cache_key(self) -> str:
        return f"duckduckgo|{self.region}|{self.safesearch}|{self.timelimit or ''}"

    def search(self, query: str, max_results: int) -> list[SearchResult]:
        from ddgs import DDGS
        from ddgs.exceptions import DDGSException

        try:
            raw: Any = DDGS(timeout=int(SEARCH_TIMEOUT_S)).text(
                query,
                region=self.region,
                safesearch=self.safesearch,
                timelimit=self.timelimit,
                max_results=max_results,
            )
        except DDGSException as exc:
            problem = ddgs_problem(exc)
            if problem is None:
                return []
            raise problem from None
        except (ValueError, TypeError) as exc:
            # ddgs checks its arguments (region, timelimit) by raising these.
            raise SearchMisconfigured(f"DuckDuckGo refused the settings: {exc}") from None
        if not isinstance(raw, list):
            raise SearchReplyBroken("DuckDuckGo sent something other than a list of results")
        rows = [
            (_text(r.get("title")), _text(r.get("href")), _text(r.get("body")))
            for r in raw
            if isinstance(r, dict)
        ]
        return _clean_results(rows, max_results)


_SEARXNG_SAFESEARCH = {"off": "0", "moderate": "1", "on": "2"}
_SEARXNG_TIME_RANGE = {"d": "day", "w": "week", "m": "month", "y": "year"}


def check_searxng_url(url: str | None) -> str:
    """``url`` if it can be a SearxNG base URL; a ``SearchMisconfigured`` naming the fault."""
    if not url:
        raise SearchMisconfigured(
            "the searxng engine needs a URL: --searxng-url URL (or searxng_url)"
        )
    shown = redact_url(url)
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- a port that is not a number raises here
    except ValueError:
        raise SearchMisconfigured(
            f"searxng_url {shown} is not a valid URL (check the host and port)"
        ) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SearchMisconfigured(
            f"searxng_url {shown} is not an http(s) URL with a host, such as http://127.0.0.1:8888"
        )
    return url


def check_search_settings(settings: Settings) -> None:
    """Raise a ``ConfigError`` (exit status 2) for a search setup that cannot work, before
    anything is searched or loaded."""
    if settings.engine == "searxng":
        try:
            check_searxng_url(settings.searxng_url)
        except SearchMisconfigured as exc:
            raise ConfigError(exc.detail) from None


class SearxngSearch:
    """A SearxNG instance's JSON API (the instance must enable the json format)."""

    def __init__(
        self,
        base_url: str,
        language: str = "en",
        safesearch: str = "moderate",
        timelimit: str | None = None,
    ) -> None:
        self.base_url = check_searxng_url(base_url).rstrip("/")
        # Error messages show the instance without its credentials or query tokens.
        self.shown = redact_url(self.base_url)
        self.language = language
        self.safesearch = safesearch
        self.timelimit = timelimit

    @property
    def cache_key(self) -> str:
        # The cache is a file on disk: name the instance by its redacted address plus a
        # digest of the full one, so credentials in the URL are never written there.
        digest = hashlib.sha256(self.base_url.encode()).hexdigest()[:16]
        instance = f"{self.shown}#{digest}"
        return f"searxng|{instance}|{self.language}|{self.safesearch}|{self.timelimit or ''}"

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
            raise SearchFailed(f"SearxNG at {self.shown} timed out") from None
        except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
            detail = scrub(one_line(str(exc), 200), self.base_url)
            raise SearchMisconfigured(
                f"searxng_url {self.shown} cannot be used: {detail}"
            ) from None
        except httpx.HTTPError as exc:
            detail = scrub(one_line(str(exc), 200), self.base_url)
            raise SearchNetworkDown(f"cannot reach SearxNG at {self.shown}: {detail}") from None
        return self._results(response, max_results)

    def _results(self, response: Any, max_results: int) -> list[SearchResult]:
        status = response.status_code
        if status == 429:
            raise SearchRateLimited(f"SearxNG at {self.shown} is refusing searches for now")
        if status == 403:
            raise SearchMisconfigured(
                f"SearxNG at {self.shown} refused the JSON format "
                "(add json to search: formats in its settings.yml)"
            )
        if status == 404:
            raise SearchMisconfigured(
                f"{self.shown} has no /search page: is searxng_url the instance's base URL?"
            )
        if status != 200:
            raise SearchFailed(f"SearxNG at {self.shown} answered HTTP {status}")
        try:
            payload = response.json()
        except (ValueError, RecursionError):
            # RecursionError: JSON nested too deeply for the parser.
            raise SearchMisconfigured(
                f"{self.shown} answered with something other than JSON: is it a SearxNG instance?"
            ) from None
        results = payload.get("results") if isinstance(payload, dict) else None
        if not isinstance(results, list):
            raise SearchReplyBroken(
                f"SearxNG at {self.shown} sent a malformed reply (no list of results)"
            )
        rows = [
            (_text(r.get("title")), _text(r.get("url")), _text(r.get("content")))
            for r in results
            if isinstance(r, dict)
        ]
        return _clean_results(rows, max_results)


def create_engine(settings: Settings) -> SearchEngine:
    if settings.engine == "searxng":
        return SearxngSearch(
            check_searxng_url(settings.searxng_url),
            language=settings.region.split("-")[-1] if "-" in settings.region else "en",
            safesearch=settings.safesearch,
            timelimit=settings.timelimit,
        )
    return DuckDuckGoSearch(settings.region, settings.safesearch, settings.timelimit)


class CachedSearch:
    """An engine behind the on-disk cache, one retry, and a pause after rate limits."""

    def __init__(self, engine: SearchEngine, cache: SearchCache | None) -> None:
        self.engine = engine
        self.cache = cache
        self._strikes = 0  # rate limits in a row, when there is no cache to remember them
        self._paused_until = 0.0

    @property
    def cache_key(self) -> str:
        return self.engine.cache_key

    def search(self, query: str, max_results: int) -> list[SearchResult]:
        key = f"{self.engine.cache_key}|{max_results}|{' '.join(query.lower().split())}"
        if self.cache is not None:
            cached = self.cache.get(key)
            if cached is not None:
                return cached
        self._refuse_while_paused()
        try:
            results = with_retry(lambda: self.engine.search(query, max_results))
        except SearchRateLimited as exc:
            pause = self._note_rate_limit()
            raise SearchRateLimited(
                f"{exc.detail}; waited {RATE_LIMIT_WAIT_S:.0f} s and tried again; "
                f"phichat will not ask it again for {pause:.0f} s"
                + ("" if SEARXNG_ADVICE in exc.detail else f"; {SEARXNG_ADVICE}")
            ) from None
        self._clear_rate_limit()
        # Empty results are not cached: they are often a transient engine hiccup.
        if self.cache is not None and results:
            self.cache.put(key, results)
        return results

    # ---- the rate-limit pause (kept in the cache file, so it outlives one `phichat ask`) ----
    def _now(self) -> float:
        return self.cache.now() if self.cache is not None else time.time()

    def _refuse_while_paused(self) -> None:
        if self.cache is not None:
            until, _ = self.cache.rate_limit(self.engine.cache_key)
        else:
            until = self._paused_until
        left = until - self._now()
        if left > 0:
            raise SearchRateLimited(
                f"the engine rate-limited the last searches; phichat will try it again in "
                f"{left:.0f} s; {SEARXNG_ADVICE}"
            )

    def _note_rate_limit(self) -> float:
        """Record one more rate limit; returns the pause before the engine is asked again."""
        if self.cache is not None:
            _, strikes = self.cache.rate_limit(self.engine.cache_key)
        else:
            strikes = self._strikes
        pause = min(BACKOFF_FIRST_S * 2.0**strikes, BACKOFF_MAX_S)
        until = self._now() + pause
        if self.cache is not None:
            self.cache.set_rate_limit(self.engine.cache_key, until, strikes + 1)
        else:
            self._strikes, self._paused_until = strikes + 1, until
        return pause

    def _clear_rate_limit(self) -> None:
        if self.cache is not None:
            if self.cache.rate_limit(self.engine.cache_key)[1]:
                self.cache.set_rate_limit(self.engine.cache_key, 0.0, 0)
        else:
            self._strikes, self._paused_until = 0, 0.0
