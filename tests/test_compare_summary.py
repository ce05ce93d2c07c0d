"""The compare summary on hand-written answer pairs: what is only in one answer, and backed."""

from __future__ import annotations

from phichat.chat.compare_summary import find_facts, summarize, summary_json, unique_facts
from phichat.domain import Message, Source, SourcePassage

OFFLINE = (
    "The Eiffel Tower was finished in 1889 and is 300 m tall. Tickets cost €26. "
    "Gustave Eiffel designed it, and the view from the top reaches to Versailles."
)
GROUNDED = (
    "The Eiffel Tower opened on 31 March 1889 [1]. It is 330 m tall [2], and an adult "
    "ticket to the top costs €29.40 [1]. Gustave Eiffel's company built it; the design "
    "came from Maurice Koechlin [2]. Queues are shortest at the Trocadéro entrance."
)
SOURCES = [
    Source(
        1,
        "Eiffel Tower: tickets and history",
        "https://tour.example.org/",
        (SourcePassage("The tower opened on 31 March 1889. Adult ticket, top: €29.40."),),
    ),
    Source(
        2,
        "Tower facts",
        "https://facts.example.com/eiffel",
        (SourcePassage("Height: 330 m. Designed by Maurice Koechlin and Émile Nouguier."),),
    ),
    Source(3, "Paris guide", "https://guide.example.net/", (SourcePassage("Unrelated."),)),
]


def texts(facts, side: str) -> dict[str, bool]:  # type: ignore[no-untyped-def]
    return {f.text: f.supported for f in facts if f.side == side}


def test_facts_found_are_numbers_dates_names_and_places() -> None:
    kinds = {(f.kind, f.text) for f in find_facts(OFFLINE)}
    assert ("date", "1889") in kinds
    assert ("number", "300 m") in kinds and ("number", "€26") in kinds
    assert ("place", "Eiffel Tower") in kinds
    assert ("name", "Gustave Eiffel") in kinds
    assert ("place", "Versailles") in kinds  # "to Versailles": a place
    # Citations and sentence-initial ordinary words are not facts.
    assert not any(f.text in ("1", "Tickets") for f in find_facts(GROUNDED + OFFLINE))


def test_only_in_one_answer_and_whether_the_sources_back_it() -> None:
    evidence = "\n".join(p.text for s in SOURCES for p in s.passages)
    facts = unique_facts(OFFLINE, GROUNDED, evidence)
    offline = texts(facts, "without")
    grounded = texts(facts, "with")
    # The offline guesses that differ from the grounded answer, none backed by the sources.
    assert offline["300 m"] is False and offline["€26"] is False
    assert "Versailles" in offline and offline["Versailles"] is False
    # The grounded answer's new facts: the sourced ones are marked supported...
    assert grounded["31 March 1889"] is True
    assert grounded["330 m"] is True and grounded["€29.40"] is True
    assert grounded["Maurice Koechlin"] is True
    # ...and one it added on its own is not.
    assert grounded["Trocadéro"] is False
    # Shared facts are never listed: both answers name the tower, Eiffel and 1889.
    everything = set(offline) | set(grounded)
    assert not everything & {"Eiffel Tower", "Gustave Eiffel", "1889"}


def test_equal_values_written_differently_count_as_the_same() -> None:
    facts = unique_facts(
        "It has 1,200 rooms and opened on 12 March 2024 at 9:30 am.",
        "It has 1200 rooms [1] and opened on March 12, 2024, at 09:30.",
        "",
    )
    assert facts == []


def test_a_year_is_supported_by_a_full_date_in_that_year() -> None:
    [fact] = unique_facts("", "Built in 1889.", "Opened on 31 March 1889.")
    assert (fact.text, fact.kind, fact.supported) == ("1889", "date", True)


def test_summary_counts_sources_used_and_cited_and_reads_compare_timings() -> None:
    without = Message(
        role="assistant",
        text=OFFLINE,
        compare_side="without",
        timings={"compare_ttft_s": 0.4, "compare_total_s": 3.0},
    )
    with_search = Message(
        role="assistant",
        text=GROUNDED + " See also [7].",
        compare_side="with",
        search_used=True,
        grounded=True,
        sources=SOURCES,
        timings={"compare_ttft_s": 5.5, "compare_total_s": 9.0, "retrieval_wall_s": 2.5},
    )
    summary = summarize(without, with_search)
    assert (summary.without.ttft_s, summary.without.total_s) == (0.4, 3.0)
    assert (summary.with_search.ttft_s, summary.with_search.total_s) == (5.5, 9.0)
    assert summary.retrieval_s == 2.5
    assert (summary.sources_used, summary.sources_cited) == (3, 2)
    assert summary.unknown_citations == (7,)
    data = summary_json(summary)
    assert data["sources_cited"] == 2
    assert {"side": "with", "kind": "number", "text": "330 m", "supported_by_sources": True} in (
        data["only_in_one_answer"]
    )


def test_a_missing_side_still_summarises() -> None:
    summary = summarize(Message(role="assistant", text="About 5 km."), None)
    assert summary.with_search.ttft_s is None and summary.sources_used == 0
    assert [(f.side, f.text, f.supported) for f in summary.unique_facts] == [
        ("without", "5 km", False)
    ]


def test_the_packed_context_is_the_evidence_when_it_was_kept() -> None:
    with_search = Message(
        role="assistant",
        text="It is 330 m tall [1].",
        sources=[Source(1, "t", "https://x.example/")],  # no passages kept
        context='<source n="1" title="t" url="https://x.example/">Height: 330 m.</source>',
    )
    [fact] = summarize(Message(role="assistant", text="Tall."), with_search).unique_facts
    assert fact.text == "330 m" and fact.supported is True


def test_addresses_versions_and_odd_numbers_never_break_the_summary() -> None:
    evidence = '<source n="1" url="http://127.0.0.1:34479/skagway.html">v1.2.3, 10.0.0.1</source>'
    facts = unique_facts(
        "Open 9:00 to 17:30, ratio 3:2:1.", "See https://x.example/a?b=1:2 [1].", evidence
    )
    assert {(f.side, f.text) for f in facts} >= {("without", "9:00"), ("without", "17:30")}
    assert not any("127" in f.text or "example" in f.text for f in facts)
    assert all(f.kind for f in find_facts(evidence))
