"""Find ``[n]`` citations in an answer and tie them to the numbered sources.

Accepted forms: ``[1]``, ``[1, 2]``, ``[1,2,3]`` and runs like ``[1][2]`` (each bracket is
its own citation). A number with no matching source is reported as unknown, so the UI can
flag it instead of linking it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from phichat.domain import Source

# A bracket holding one or more small numbers separated by commas (and optional spaces).
# Markdown links like [text](url) and footnotes like [^1] do not match: they hold non-digits.
# It lives below chat/ and storage/ so that both (answers and exports) share one parser.
CITATION = re.compile(r"\[(\s*\d{1,3}\s*(?:,\s*\d{1,3}\s*)*)\]")


@dataclass(frozen=True)
class Citation:
    start: int
    end: int
    numbers: tuple[int, ...]


def find_citations(text: str) -> list[Citation]:
    return [
        Citation(match.start(), match.end(), tuple(int(n) for n in match.group(1).split(",")))
        for match in CITATION.finditer(text)
    ]


def cited_numbers(text: str) -> list[int]:
    """Every cited number, in order of first appearance."""
    seen: dict[int, None] = {}
    for citation in find_citations(text):
        for number in citation.numbers:
            seen.setdefault(number, None)
    return list(seen)


@dataclass(frozen=True)
class CitationCheck:
    cited: list[Source]  # sources the answer cites, in order of first citation
    unknown: list[int]  # numbers cited that match no source
    uncited: list[Source]  # sources given to the model but never cited


def check_citations(text: str, sources: Iterable[Source]) -> CitationCheck:
    by_number = {source.n: source for source in sources}
    numbers = cited_numbers(text)
    cited = [by_number[n] for n in numbers if n in by_number]
    unknown = [n for n in numbers if n not in by_number]
    cited_set = {source.n for source in cited}
    uncited = [s for n, s in sorted(by_number.items()) if n not in cited_set]
    return CitationCheck(cited=cited, unknown=unknown, uncited=uncited)
