"""The whole retrieval: search, fetch, extract, chunk, rank and pack, with progress.

``WebRetriever.retrieve`` never raises for network trouble: a failed search comes back
as ``Retrieval.search_error`` and failed pages as ``Page`` records with an ``error``.
It checks ``stop`` between stages and inside them (every 50 ms while fetching and while
a page is extracted, per page and per embedding batch while ranking) and returns what it
has when the user cancels.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from functools import partial

from phichat import threads
from phichat.config import Settings
from phichat.domain import Source
from phichat.errors import SearchUnavailable
from phichat.paths import cache_dir
from phichat.retrieval.embedder import EmbedderUnavailable, shared_embedder
from phichat.retrieval.extract import extract_page, text_estimate
from phichat.retrieval.fetch import FetchLimits, fetch_pages
from phichat.retrieval.pack import pack
from phichat.retrieval.rank import RankingStopped, TextEmbedder, rank_windows
from phichat.retrieval.search import CachedSearch, SearchEngine, create_engine
from phichat.retrieval.searchcache import SearchCache
from phichat.retrieval.types import (
    FetchedPage,
    PackBudget,
    Page,
    Retrieval,
    RetrievalProgress,
    SearchResult,
)
from phichat.retrieval.window import sentence_windows

SEARCH_CACHE_FILE = "search-cache.json"
# Pages holding this many times the budget in text are enough to rank: once they are
# read, slower pages get FetchLimits.grace seconds more, not the whole fetch deadline.
ENOUGH_TEXT_FACTOR = 2


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def select_passages(
    query: str,
    pages: list[Page],
    embedder: TextEmbedder | None,
    budget: PackBudget,
    stop: threading.Event,
) -> tuple[str, list[Source]]:
    """Cut the readable pages into sentence windows, rank them and pack the best.

    Raises ``RankingStopped`` when ``stop`` is set on the way (checked per page and per
    embedding batch).
    """
    windows = []
    for page in pages:
        if stop.is_set():
            raise RankingStopped
        if page.fetched_ok:
            windows.extend(sentence_windows(page))
    ranked = rank_windows(query, windows, embedder, stop=stop)
    return pack(ranked, budget)


class WebRetriever:
    """Answers ``retrieve()`` for the session; built once from settings, reused per turn."""

    def __init__(
        self,
        settings: Settings,
        engine: SearchEngine | None = None,
        embedder: TextEmbedder | None = None,
    ) -> None:
        self.settings = settings
        self._engine = engine
        self._embedder = embedder
        self._embedder_failed: str | None = None

    # ---- parts, built lazily so constructing a retriever costs nothing -------------------
    @property
    def engine(self) -> SearchEngine:
        if self._engine is None:
            self._engine = CachedSearch(
                create_engine(self.settings), SearchCache(cache_dir() / SEARCH_CACHE_FILE)
            )
        return self._engine

    def embedder(self) -> TextEmbedder | None:
        if self._embedder is None and self._embedder_failed is None:
            self._embedder = shared_embedder(self.settings.embedder)
        return self._embedder

    def fetch_limits(self) -> FetchLimits:
        s = self.settings
        return FetchLimits(
            connect_timeout=min(3.0, s.fetch_timeout),
            read_timeout=s.fetch_timeout,
            deadline=s.fetch_deadline,
            max_bytes=s.max_page_bytes,
            allow_private=s.allow_private_urls,
        )

    # ---- stages ----------------------------------------------------------------------------
    def search(self, query: str) -> list[SearchResult]:
        return self.engine.search(query, self.settings.max_results)

    def fetch(
        self,
        results: list[SearchResult],
        progress: RetrievalProgress,
        stop: threading.Event,
        wanted_chars: int = 0,
    ) -> list[FetchedPage]:
        """The result pages; stragglers are cut short once ``wanted_chars`` of text are in."""
        total = len(results)
        progress("fetching", f"reading 0 of {_plural(total, 'page')}")

        def report(done: int, all_pages: int) -> None:
            progress("fetching", f"reading {done} of {_plural(all_pages, 'page')}")

        estimates: dict[str, int] = {}  # each body is measured once, when it arrives

        def enough(pages: list[FetchedPage]) -> bool:
            for page in pages:
                if page.url not in estimates:
                    estimates[page.url] = text_estimate(page)
            return wanted_chars > 0 and sum(estimates[p.url] for p in pages) >= wanted_chars

        return fetch_pages([r.url for r in results], self.fetch_limits(), report, stop, enough)

    def extract(
        self,
        fetched: list[FetchedPage],
        results: list[SearchResult],
        stop: threading.Event | None = None,
    ) -> list[Page]:
        """One ``Page`` per fetched body; once ``stop`` is set, the rest are "stopped"."""
        stop = stop or threading.Event()
        pages = []
        for raw, result in zip(fetched, results, strict=True):
            # The parser cannot be interrupted (its cost per page is bounded, see
            # extract.py): a stop abandons the page being read rather than waiting on it.
            extract = partial(extract_page, raw)
            page = (
                None if stop.is_set() else threads.call(extract, name="phichat-extract", stop=stop)
            )
            if page is None:
                pages.append(Page(url=raw.url, error=raw.error or "stopped"))
                continue
            if page.fetched_ok and not page.title and result.title:
                page = replace(page, title=result.title)
            pages.append(page)
        return pages

    def load_embedder(self, warnings: list[str]) -> TextEmbedder | None:
        """The embedder, loaded; None (with a warning) when it cannot be loaded."""
        try:
            embedder = self.embedder()
            load = getattr(embedder, "load", None)
            if load is not None:
                load()
            return embedder
        except EmbedderUnavailable as exc:
            self._embedder_failed = str(exc)
            self._embedder = None
            warnings.append(f"{exc}; ranking by keywords only")
            return None

    # ---- the whole thing -------------------------------------------------------------------
    def retrieve(
        self,
        query: str,
        budget: PackBudget,
        progress: RetrievalProgress,
        stop: threading.Event,
    ) -> Retrieval:
        started = time.perf_counter()
        timings: dict[str, float] = {}
        retrieval = Retrieval(query=query, sources=[], context_text="", timings=timings)

        def timed(name: str, work: Callable[[], object]) -> object:
            begin = time.perf_counter()
            try:
                return work()
            finally:
                timings[name] = time.perf_counter() - begin

        def finish() -> Retrieval:
            timings["total_s"] = time.perf_counter() - started
            return retrieval

        progress("searching", query)
        try:
            results: list[SearchResult] = timed("search_s", lambda: self.search(query))  # type: ignore[assignment]
        except SearchUnavailable as exc:
            retrieval.search_error = str(exc)
            return finish()
        if not results or stop.is_set():
            return finish()

        fetched: list[FetchedPage] = timed(  # type: ignore[assignment]
            "fetch_s",
            lambda: self.fetch(results, progress, stop, ENOUGH_TEXT_FACTOR * budget.max_chars),
        )
        if stop.is_set():
            retrieval.pages = [Page(url=f.url, error=f.error or "stopped") for f in fetched]
            return finish()

        readable = sum(1 for f in fetched if f.ok)
        progress("reading", f"extracting text from {_plural(readable, 'page')}")
        pages: list[Page] = timed("extract_s", lambda: self.extract(fetched, results, stop))  # type: ignore[assignment]
        retrieval.pages = pages
        if stop.is_set():
            return finish()

        usable = sum(page.fetched_ok for page in pages)
        if not usable:
            return finish()  # nothing to rank: spare the embedder's load
        embedder = self._embedder
        needs_loading = embedder is None or not getattr(embedder, "loaded", True)
        if needs_loading and self._embedder_failed is None:
            # Loading happens once per process; it is timed apart from ranking itself.
            progress("ranking", "loading the ranking model")
            warnings = retrieval.warnings
            embedder = timed("embedder_load_s", lambda: self.load_embedder(warnings))  # type: ignore[assignment]
        progress("ranking", f"ranking passages from {_plural(usable, 'page')}")

        def rank_and_pack() -> None:
            # Stopped while ranking: no context; the caller sees the stop itself.
            with contextlib.suppress(RankingStopped):
                retrieval.context_text, retrieval.sources = select_passages(
                    query, pages, embedder, budget, stop
                )

        timed("rank_s", rank_and_pack)
        return finish()
