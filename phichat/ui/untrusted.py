"""Turn untrusted text (titles, URLs, model output) into safe Rich text and Markdown."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from phichat.citations import find_citations
from phichat.domain import Source
from phichat.links import mark_unverified
from phichat.textsafe import one_line, strip_control

_SAFE_SCHEMES = {"http", "https"}


def safe_url(url: str) -> str | None:
    """The URL if it is a plain http(s) link with no control characters, else None.

    Only these become clickable: a ``javascript:`` or ``file:`` link from a web page must
    never be handed to the browser.
    """
    cleaned = strip_control(url).strip()
    if cleaned != url.strip() or any(c.isspace() for c in cleaned):
        return None
    try:
        parts = urlsplit(cleaned)
    except ValueError:
        return None
    if parts.scheme.lower() not in _SAFE_SCHEMES or not parts.netloc:
        return None
    return cleaned


def display_title(source: Source) -> str:
    return one_line(source.title, 120) or source.site or "untitled page"


_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>])")


def _escape_markdown(text: str) -> str:
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)


def link_citations(answer: str, sources: list[Source]) -> str:
    """Markdown where each known ``[n]`` links to source n and each unknown one is flagged.

    A citation of a number with no source becomes ``[n?]`` in bold, not a link: it points
    at nothing, and the reader should see that.
    """
    by_number = {source.n: source for source in sources}
    pieces: list[str] = []
    position = 0
    for citation in find_citations(answer):
        pieces.append(answer[position : citation.start])
        for number in citation.numbers:
            source = by_number.get(number)
            url = safe_url(source.url) if source else None
            if source is None:
                pieces.append(f"**\\[{number}?\\]**")
            elif url is None:
                pieces.append(f"\\[{number}\\]")
            else:
                # <...> keeps parentheses in the URL from ending the link early.
                target = url.replace("<", "%3C").replace(">", "%3E")
                pieces.append(f"[\\[{number}\\]](<{target}>)")
        position = citation.end
    pieces.append(answer[position:])
    return "".join(pieces)


UNVERIFIED_MARK = " **⚠ unverified link**"


def mark_unverified_links(answer: str, sources: list[Source]) -> str:
    """The answer with every link that is not one of ``sources`` marked as unverified
    (clicking one asks before opening it)."""
    return mark_unverified(answer, sources, lambda _link: UNVERIFIED_MARK)
