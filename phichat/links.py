"""Find the links in an answer and tell apart those that are the turn's own sources.

A web page can plant instructions and a model can invent addresses, so a link in an
answer is only as good as its origin: one that is a numbered source of that answer was
fetched and read; any other (a Markdown link, an ``<autolink>`` or a bare URL) is
*unverified*, and every place that shows answers marks it so. Code spans and fenced code
blocks are left alone: a URL in a code sample is not a link.

It lives below ``chat/``, ``storage/`` and ``ui/`` (like ``citations``) so that the app,
the CLI and the exports share one notion of "unverified".
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from phichat.domain import Source

# Fenced code blocks (``` or ~~~, to the matching fence or the end) and inline code spans.
CODE = re.compile(
    r"^(?P<fence>`{3,}|~{3,})[^\n]*\n.*?(?:^(?P=fence)[ \t]*$|\Z)|(?P<ticks>`+)[^`]*?(?P=ticks)",
    re.MULTILINE | re.DOTALL,
)

# [label](url), [label](<url>) and [label](url "title"); then <url>; then a bare URL.
_LINK = re.compile(
    r"\[(?P<label>[^\]\n]*)\]\(\s*(?:<(?P<angled>[^>\n]*)>|(?P<target>[^()\s]*(?:\([^()\s]*\)[^()\s]*)*))"
    r"(?:\s+\"[^\"\n]*\")?\s*\)"
    r"|<(?P<auto>[a-zA-Z][a-zA-Z0-9+.-]{1,31}:[^<>\s]+)>"
    r"|(?P<bare>\b(?:https?://|www\.)[^\s<>\"'`\[\]]+)",
    re.IGNORECASE,
)
# Punctuation that ends a sentence rather than a bare URL.
_TRAILING = ".,;:!?*_~'\""


@dataclass(frozen=True)
class Link:
    """A link in an answer: ``text[start:end]`` is the whole link as written."""

    start: int
    end: int
    url: str
    label: str | None  # the link text of a Markdown link; None for a bare URL or <url>


def _bare_end(url: str) -> str:
    """A bare URL without the sentence punctuation or unmatched bracket after it."""
    while url:
        unmatched_close = url[-1] == ")" and url.count("(") < url.count(")")
        if url[-1] not in _TRAILING and not unmatched_close:
            break
        url = url[:-1]
    return url


def _links_in(text: str, offset: int) -> list[Link]:
    found = []
    for match in _LINK.finditer(text):
        start = offset + match.start()
        if match.group("bare") is not None:
            url = _bare_end(match.group("bare"))
            found.append(Link(start, start + len(url), url, None))
        elif match.group("auto") is not None:
            found.append(Link(start, offset + match.end(), match.group("auto"), None))
        else:
            url = (
                match.group("angled")
                if match.group("angled") is not None
                else match.group("target")
            )
            found.append(Link(start, offset + match.end(), url.strip(), match.group("label")))
    return found


def find_links(text: str) -> list[Link]:
    """Every link in ``text``, in order, outside code."""
    links: list[Link] = []
    done = 0
    for code in CODE.finditer(text):
        links += _links_in(text[done : code.start()], done)
        done = code.end()
    links += _links_in(text[done:], done)
    return links


def normalized(url: str) -> str:
    """``url`` in a form where trivially different spellings of one address are equal:
    lower-case scheme and host, no default port, no fragment, no trailing slash."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return url.strip()
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if port is not None and (scheme, port) not in (("http", 80), ("https", 443)):
        host = f"{host}:{port}"
    return urlunsplit((scheme, host, parts.path.rstrip("/"), parts.query, ""))


def is_source(url: str, sources: Iterable[Source]) -> bool:
    """Whether ``url`` is one of ``sources`` (the pages this answer was given)."""
    wanted = normalized(url)
    return any(normalized(source.url) == wanted for source in sources)


def unverified_links(text: str, sources: Iterable[Source]) -> list[Link]:
    """The links in ``text`` that are not among ``sources``."""
    known = list(sources)
    return [link for link in find_links(text) if not is_source(link.url, known)]


UNVERIFIED_NOTE = "unverified link: not one of this answer's sources"


def mark_unverified(text: str, sources: Iterable[Source], marker: Callable[[Link], str]) -> str:
    """``text`` with ``marker(link)`` inserted right after each unverified link."""
    pieces: list[str] = []
    done = 0
    for link in unverified_links(text, sources):
        pieces += [text[done : link.end], marker(link)]
        done = link.end
    pieces.append(text[done:])
    return "".join(pieces)
