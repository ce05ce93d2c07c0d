"""The plain data that flows between layers: conversations, messages and their sources.

These are deliberately free of any storage or UI concern; ``storage/`` maps them to rows
and ``ui/`` renders them.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Literal

Role = Literal["user", "assistant"]
# The two answers of a compare: one question answered without and with web search.
Side = Literal["without", "with"]
# The steps a turn reports while it works (retrieval reports the middle four).
Stage = Literal[
    "loading", "query", "searching", "fetching", "reading", "ranking", "thinking", "writing"
]


@dataclass(frozen=True)
class SourcePassage:
    """One passage of a web page that was packed into the prompt, with its ranking score."""

    text: str
    score: float = 0.0
    heading: str = ""


@dataclass(frozen=True)
class Source:
    """A numbered web source; ``[n]`` in an answer refers to ``Source.n``."""

    n: int
    title: str
    url: str
    passages: tuple[SourcePassage, ...] = ()

    @property
    def site(self) -> str:
        from urllib.parse import urlsplit

        host = urlsplit(self.url).hostname or ""
        return host.removeprefix("www.")


def new_id() -> str:
    return uuid.uuid4().hex[:12]


@dataclass
class CompareTimes:
    """One side of a compare, timed from the moment the compare started (both sides share
    that clock, so the summary can set them side by side)."""

    ttft_s: float | None = None
    total_s: float | None = None
    retrieval_wall_s: float | None = None  # the search that ran beside the first answer


# TurnStats' flat names for its compare times (the names stored rows and --json use).
_COMPARE_KEYS = {
    "compare_ttft_s": "ttft_s",
    "compare_total_s": "total_s",
    "retrieval_wall_s": "retrieval_wall_s",
}
_COUNTS = ("history_dropped", "prompt_tokens", "reused_tokens", "new_tokens")
# Every figure TurnStats keeps under its own name, in the order it is filled in.
_FIGURES = (
    "load_s",
    "query_s",
    "sources_s",
    "history_dropped",
    "first_token_s",
    "prefill_s",
    "ttft_s",
    "prompt_tokens",
    "reused_tokens",
    "new_tokens",
    "tokens_per_s",
    "total_s",
)


@dataclass
class TurnStats(Mapping[str, float]):
    """What one answer cost: seconds for its steps, counts of its tokens.

    ``None`` means the step did not happen in this turn (the model was already loaded, no
    word came). ``stages`` holds the retrieval pipeline's own timings (``search_s``,
    ``fetch_s``, ...). It also reads as a flat, read-only mapping of the figures that are
    set (``stats["new_tokens"]``), which is the shape rows are stored in and ``--json``
    prints; ``from_mapping`` reads that shape back, so old rows keep loading.
    """

    load_s: float | None = None
    query_s: float | None = None
    sources_s: float | None = None
    stages: dict[str, float] = field(default_factory=dict)
    history_dropped: int | None = None
    first_token_s: float | None = None
    prefill_s: float | None = None
    ttft_s: float | None = None
    prompt_tokens: int | None = None
    reused_tokens: int | None = None
    new_tokens: int | None = None
    tokens_per_s: float | None = None
    total_s: float | None = None
    compare: CompareTimes | None = None

    @classmethod
    def from_mapping(cls, flat: Mapping[str, float]) -> TurnStats:
        """The stats for a flat mapping of figures (a stored row); unknown names are stages."""
        stats = cls()
        compare = CompareTimes()
        for key, value in flat.items():
            if key in _COUNTS:
                setattr(stats, key, int(value))
            elif key in _FIGURES:
                setattr(stats, key, float(value))
            elif key in _COMPARE_KEYS:
                setattr(compare, _COMPARE_KEYS[key], float(value))
                stats.compare = compare
            else:
                stats.stages[key] = float(value)
        return stats

    def as_dict(self) -> dict[str, float]:
        """The figures that are set, flat: stages first, then the turn's, then compare's."""
        flat: dict[str, float] = dict(self.stages)
        for name in _FIGURES:
            value = getattr(self, name)
            if value is not None:
                flat[name] = value
        if self.compare is not None:
            for key, name in _COMPARE_KEYS.items():
                value = getattr(self.compare, name)
                if value is not None:
                    flat[key] = value
        return flat

    def __getitem__(self, key: str) -> float:
        return self.as_dict()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.as_dict())

    def __len__(self) -> int:
        return len(self.as_dict())


@dataclass
class Message:
    """One turn of a conversation.

    ``stopped`` marks an answer cut short by the user; ``search_used`` records whether the
    search toggle was on, and ``grounded`` whether sources actually reached the prompt.
    ``context`` is the exact sources block the answer was given, so its sources can be
    pinned and asked again without searching. ``compare_side`` is "without" or "with" for
    the two answers of a compare (one question answered without and with search).
    ``timings`` may be given as a flat mapping (``{"new_tokens": 11}``): it becomes a
    ``TurnStats``.
    """

    role: Role
    text: str
    id: str = field(default_factory=new_id)
    created_at: float = field(default_factory=time.time)
    search_used: bool = False
    grounded: bool = False
    query: str | None = None
    sources: list[Source] = field(default_factory=list)
    timings: TurnStats = field(default_factory=TurnStats)
    stopped: bool = False
    error: str | None = None
    context: str = ""
    compare_side: Side | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.timings, TurnStats):
            self.timings = TurnStats.from_mapping(self.timings)


@dataclass
class Conversation:
    """An ordered list of messages with a title taken from the first user message."""

    id: str = field(default_factory=new_id)
    title: str = ""
    created_at: float = field(default_factory=time.time)
    messages: list[Message] = field(default_factory=list)

    def title_from(self, text: str, limit: int = 60) -> str:
        flat = " ".join(text.split())
        return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"
