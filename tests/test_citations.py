"""Citations: [n], [n, m] and [n][m] are found; numbers with no source are reported."""

from __future__ import annotations

from phichat.citations import check_citations, cited_numbers, find_citations
from phichat.domain import Source

TEXT = "Fort George [1]. Lighthouse [2, 3][4], a [link](https://x.org), a note [^1] and [99]."


def test_every_form_is_found_and_links_and_footnotes_are_not() -> None:
    assert [c.numbers for c in find_citations(TEXT)] == [(1,), (2, 3), (4,), (99,)]
    assert cited_numbers(TEXT) == [1, 2, 3, 4, 99]


def test_unknown_numbers_are_flagged_and_uncited_sources_listed() -> None:
    sources = [
        Source(1, "a", "https://a"),
        Source(2, "b", "https://b"),
        Source(5, "c", "https://c"),
    ]
    check = check_citations(TEXT, sources)
    assert [s.n for s in check.cited] == [1, 2]
    assert check.unknown == [3, 4, 99]
    assert [s.n for s in check.uncited] == [5]
