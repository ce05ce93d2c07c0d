"""A small on-disk cache of recent search results.

Asking the same question twice (a regenerate, a retry, ``phichat search`` then
``phichat ask``) should not hit the engine again: it is slower and DuckDuckGo rate-limits
repeated queries. The cache is one JSON file; a damaged file is simply started afresh.
It also remembers, per engine, that the engine rate-limited phichat and until when it is
left alone, so a second ``phichat ask`` a moment later does not make the block worse.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from phichat.retrieval.types import SearchResult

DEFAULT_TTL_S = 6 * 3600.0
DEFAULT_MAX_ENTRIES = 200
# Rate-limit records live in the same file under keys no query key can start with.
_RATE_LIMIT_PREFIX = "!rate-limit|"

# An entry as read back from the JSON file: untyped, so every read checks its shape first.
Entry = dict[str, Any]


class SearchCache:
    def __init__(
        self,
        path: Path,
        ttl_s: float = DEFAULT_TTL_S,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._clock = clock
        self._lock = threading.Lock()

    def _read(self) -> dict[str, Entry]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _write(self, data: dict[str, Entry]) -> None:
        # Write a temporary file and rename it, so a crash never leaves half a cache.
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle, temp = tempfile.mkstemp(dir=self.path.parent, prefix=".search-cache")
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                json.dump(data, out, ensure_ascii=False)
            os.replace(temp, self.path)
        except OSError:
            pass  # a cache that cannot be written only costs a repeated search

    def _fresh(self, entry: object, now: float) -> bool:
        """A well-formed entry younger than the TTL; anything else (a hand-edited or
        half-written file) is treated as a miss rather than an error."""
        if not isinstance(entry, dict):
            return False
        stamp = entry.get("at")
        return isinstance(stamp, int | float) and now - stamp <= self.ttl_s

    def get(self, key: str) -> list[SearchResult] | None:
        with self._lock:
            entry = self._read().get(key)
        if entry is None or not self._fresh(entry, self._clock()):
            return None
        try:
            return [
                SearchResult(r["title"], r["url"], r.get("snippet", "")) for r in entry["results"]
            ]
        except (KeyError, TypeError):
            return None

    def put(self, key: str, results: list[SearchResult]) -> None:
        now = self._clock()
        with self._lock:
            data = {k: v for k, v in self._read().items() if self._fresh(v, now)}
            data[key] = {
                "at": now,
                "results": [
                    {"title": r.title, "url": r.url, "snippet": r.snippet} for r in results
                ],
            }
            if len(data) > self.max_entries:
                newest = sorted(data.items(), key=lambda kv: kv[1].get("at", 0))
                data = dict(newest[-self.max_entries :])
            self._write(data)

    # ---- rate limits -------------------------------------------------------------------------
    def now(self) -> float:
        return self._clock()

    def rate_limit(self, engine_key: str) -> tuple[float, int]:
        """(the time until which ``engine_key`` is left alone, rate limits in a row)."""
        with self._lock:
            entry = self._read().get(_RATE_LIMIT_PREFIX + engine_key)
        if not self._fresh(entry, self._clock()):
            return 0.0, 0
        until, strikes = entry.get("until"), entry.get("strikes")  # type: ignore[union-attr]
        if not isinstance(until, int | float) or not isinstance(strikes, int):
            return 0.0, 0
        return float(until), max(strikes, 0)

    def set_rate_limit(self, engine_key: str, until: float, strikes: int) -> None:
        """Remember a rate limit (``strikes`` > 0) or forget it (``strikes`` == 0)."""
        now = self._clock()
        with self._lock:
            data = {k: v for k, v in self._read().items() if self._fresh(v, now)}
            if strikes > 0:
                data[_RATE_LIMIT_PREFIX + engine_key] = {
                    "at": now,
                    "until": until,
                    "strikes": strikes,
                }
            else:
                data.pop(_RATE_LIMIT_PREFIX + engine_key, None)
            self._write(data)
