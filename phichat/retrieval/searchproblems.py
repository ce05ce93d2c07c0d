"""What went wrong with the search engine, in words a user can act on.

Each kind of trouble is its own ``SearchUnavailable`` subclass whose message starts with a
fixed headline ("rate-limited", "network unreachable", "search engine misconfigured",
"search unavailable"), so the one line the app and the CLI show says which it was. "No
results for this query" is not an error (the search worked); it gets its own line too.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from phichat.errors import SearchUnavailable
from phichat.retrieval.types import Retrieval

WITHOUT_SOURCES = "answering without sources"
NO_RESULTS = "no results for this query"
# Where to read about setting up SearxNG, named in every rate-limit message.
SEARXNG_ADVICE = "set up a SearxNG instance (--engine searxng --searxng-url URL; README: Engines)"


class SearchProblem(SearchUnavailable):
    """A search failure with a headline; ``transient`` says whether retrying may help."""

    headline = "search unavailable"
    transient = True

    def __init__(self, detail: str) -> None:
        super().__init__(f"{self.headline}: {detail}")
        self.detail = detail


class SearchFailed(SearchProblem):
    """The engine answered with an error (HTTP 5xx, a timeout): worth one retry."""


class SearchReplyBroken(SearchProblem):
    """The engine's reply could not be read as results; asking again gives the same."""

    transient = False


class SearchRateLimited(SearchProblem):
    headline = "rate-limited"


class SearchNetworkDown(SearchProblem):
    headline = "network unreachable"


class SearchMisconfigured(SearchProblem):
    """A setup mistake (a malformed URL, the JSON format switched off): retrying is pointless."""

    headline = "search engine misconfigured"
    transient = False
    exit_code = 2


HEADLINES = (
    SearchRateLimited.headline,
    SearchNetworkDown.headline,
    SearchMisconfigured.headline,
    SearchProblem.headline,
)


def problem_line(search_error: str) -> str:
    """The error as shown to the user: its headline first (added when it has none)."""
    if search_error.startswith(HEADLINES):
        return search_error
    return f"{SearchProblem.headline}: {search_error}"


def is_setup_problem(search_error: str) -> bool:
    return search_error.startswith(SearchMisconfigured.headline)


def without_sources_line(retrieval: Retrieval, stopped: bool) -> str | None:
    """The line that says why a search turn is answered without sources (None: it is not,
    or the user stopped it)."""
    if retrieval.search_error:
        return f"{problem_line(retrieval.search_error)}; {WITHOUT_SOURCES}"
    if not retrieval.pages and not retrieval.sources and not stopped:
        return f"{NO_RESULTS}; {WITHOUT_SOURCES}"
    return None


def redact_url(url: str) -> str:
    """``url`` safe to show: no user name or password, no query string (tokens live there)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "(a malformed URL)"
    if ":" in host:
        host = f"[{host}]"
    netloc = host if port is None else f"{host}:{port}"
    if parts.username is not None or parts.password is not None:
        netloc = "…@" + netloc
    return urlunsplit((parts.scheme, netloc, parts.path, "…" if parts.query else "", ""))


def scrub(text: str, url: str) -> str:
    """``text`` (an error message that may quote ``url``) with the URL's secrets removed."""
    try:
        parts = urlsplit(url)
        secrets = [parts.password, parts.username, parts.query]
    except ValueError:
        secrets = []
    text = text.replace(url, redact_url(url))
    for secret in secrets:
        if secret:
            text = text.replace(secret, "…")
    return text
