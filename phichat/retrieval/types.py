"""The plain records each retrieval stage takes and returns."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from phichat.domain import Source, Stage


@dataclass(frozen=True)
class SearchResult:
    title: str
    url: str
    snippet: str = ""


@dataclass(frozen=True)
class FetchedPage:
    """A page body as fetched: decoded to text, capped, not yet extracted.

    ``final_url`` is where redirects ended; ``error`` is set (and ``body`` empty) when the
    page could not be used, with a short reason such as "timed out" or "HTTP 404".
    """

    url: str
    final_url: str = ""
    content_type: str = ""
    body: str = ""
    error: str | None = None
    truncated: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class Block:
    """One paragraph, list item, table row or heading of a page's readable text."""

    text: str
    is_heading: bool = False


@dataclass(frozen=True)
class Page:
    url: str
    title: str = ""
    text: str = ""
    fetched_ok: bool = False
    error: str | None = None
    chars: int = 0
    # The readable text in document order, headings marked, for the chunker.
    blocks: tuple[Block, ...] = ()


@dataclass(frozen=True)
class Chunk:
    """A unit of ranking: a passage of whole sentences from one page.

    A sentence window also lists its ``sentences`` (``position`` is then the page index
    of the first one, ``centre`` the offset of the one it was built around), so packing
    can add only the sentences not packed yet.
    """

    source_url: str
    text: str
    position: int
    title: str = ""
    heading: str = ""
    sentences: tuple[str, ...] = ()
    centre: int = 0


@dataclass(frozen=True)
class Passage:
    chunk: Chunk
    score: float


@dataclass(frozen=True)
class PackBudget:
    """How much web text may enter the prompt.

    ``max_chars`` always applies; ``max_tokens`` applies too when ``count_tokens`` (the
    model's own tokenizer) is available.
    """

    max_chars: int
    max_tokens: int | None = None
    count_tokens: Callable[[str], int] | None = None


@dataclass
class Retrieval:
    """What retrieval hands to the prompt: numbered sources and the exact packed text."""

    query: str
    sources: list[Source]
    context_text: str
    pages: list[Page] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    # Set when the search engine itself failed (the answer then comes without sources).
    search_error: str | None = None
    # Things the user may want to know that did not stop retrieval (such as ranking
    # falling back to keywords because the embedding model is missing).
    warnings: list[str] = field(default_factory=list)


# progress(stage, detail): stage is one of "searching", "fetching", "reading", "ranking".
RetrievalProgress = Callable[[Stage, str], None]
