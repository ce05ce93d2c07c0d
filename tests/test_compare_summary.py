"""The compare summary on hand-written answer pairs: what is only in one answer, and backed."""

from __future__ import annotations

from phichat.domain import Message, Source, SourcePassage
from phichat.features.compare_summary import find_facts, summarize, summary_json, unique_facts

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
    # 300 m against 330 m and €26 against €29.40 are contradictions, not unique facts.
    assert not any(f["kind"] == "number" for f in data["only_in_one_answer"])
    assert sorted(data["conflicts"], key=lambda c: c["without_search"]) == [
        {
            "kind": "number",
            "without_search": "300 m",
            "with_search": "330 m",
            "backed_by": "with",
            "source": 2,
        },
        {
            "kind": "number",
            "without_search": "€26",
            "with_search": "€29.40",
            "backed_by": "with",
            "source": 1,
        },
    ]


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


# ---- purpose-written pairs: exact sets -----------------------------------------------------


def only_in_one(
    without: str, with_search: str, question: str = "", evidence: str = ""
) -> set[tuple[str, str]]:
    return {(f.side, f.text) for f in unique_facts(without, with_search, evidence, question)}


def test_the_subject_of_the_question_is_never_only_in_one_answer() -> None:
    question = "How tall is the Eiffel Tower, and when did it open in 1889?"
    assert only_in_one(
        "The Eiffel Tower is 330 m tall and opened in 1889.",
        "It is 330 metres tall [1], opened on 31 March 1889 [1].",
        question,
    ) == {("with", "31 March 1889")}


def test_paraphrases_with_the_same_facts_differ_in_nothing() -> None:
    assert (
        only_in_one(
            "Gustave Eiffel's company finished the tower in 1889; it stands 330 m high.",
            "Standing 330 metres high, the tower was completed in 1889 by the firm of "
            "Gustave Eiffel [1].",
        )
        == set()
    )


def test_reordered_facts_differ_in_nothing() -> None:
    assert (
        only_in_one(
            "Lisbon has the Belém Tower, the Jerónimos Monastery and Alfama. Tram 28 costs €3.",
            "For €3 ride Tram 28 [2]; see Alfama, the Jeronimos Monastery and Belem Tower [1].",
        )
        == set()
    )


def test_units_are_compared_by_name_and_value() -> None:
    assert only_in_one("It is 330 m tall.", "It is 330-metre tall [1].") == set()
    assert only_in_one("Entry costs €15.", "Entry costs 15 euros [1].") == set()
    assert only_in_one("About 2 hours.", "About 2 h [1].") == set()
    # The same number in another unit is another fact.
    assert only_in_one("It is 5 km away.", "It is 5 miles away.") == {
        ("without", "5 km"),
        ("with", "5 miles"),
    }


def test_dates_in_any_written_form_are_one_date() -> None:
    assert only_in_one("It opened on 31 March 1889.", "It opened on March 31, 1889 [1].") == set()
    assert only_in_one("Opened 1889-03-31.", "Opened on the 31st of March 1889.") == set()
    assert only_in_one("Opened on 31 March 1889.", "Opened on 30 March 1889.") == {
        ("without", "31 March 1889"),
        ("with", "30 March 1889"),
    }


def test_names_match_without_case_or_accents() -> None:
    assert only_in_one("Queue at the Trocadéro.", "Queue at the Trocadero [1].") == set()


def test_partial_overlap_lists_exactly_what_differs() -> None:
    assert only_in_one(
        "Skagway has the White Pass railway, about 900 residents and the Red Onion Saloon.",
        "Skagway has the White Pass railway [1], the Klondike Gold Rush park [2] and about "
        "1,200 residents [1].",
        question="What is there to do in Skagway?",
    ) == {
        ("without", "Red Onion Saloon"),
        ("without", "900"),
        ("with", "Klondike Gold Rush"),
        ("with", "1,200"),
    }


def test_a_contradiction_is_a_conflict_with_the_source_that_backs_it() -> None:
    sources = [
        Source(1, "History", "https://a.example/", (SourcePassage("Opened in 1889."),)),
        Source(2, "Facts", "https://b.example/", (SourcePassage("The tower is 330 m high."),)),
    ]
    summary = summarize(
        Message(role="assistant", text="The tower is 300 metres tall."),
        Message(role="assistant", text="The tower is 330 m tall [2].", sources=sources),
        "How tall is the tower?",
    )
    assert [(c.without, c.with_search, c.backed, c.source) for c in summary.conflicts] == [
        ("300 metres", "330 m", "with", 2)
    ]
    assert summary.unique_facts == ()


def test_a_conflict_backing_the_offline_side_or_neither() -> None:
    context = '<source n="3" title="t" url="https://c.example/">Height: 300 m.</source>'
    backed_offline = summarize(
        Message(role="assistant", text="It is 300 m."),
        Message(role="assistant", text="It is 324 m [3].", sources=[], context=context),
    )
    assert [(c.backed, c.source) for c in backed_offline.conflicts] == [("without", 3)]
    unbacked = summarize(
        Message(role="assistant", text="It is 300 m."),
        Message(role="assistant", text="It is 324 m."),
    )
    assert [(c.backed, c.source) for c in unbacked.conflicts] == [(None, None)]


def test_several_values_in_one_unit_are_not_paired_as_a_conflict() -> None:
    summary = summarize(
        Message(role="assistant", text="It is 300 m tall."),
        Message(role="assistant", text="It is 330 m tall; the first floor is at 57 m."),
    )
    assert summary.conflicts == ()
    assert {(f.side, f.text) for f in summary.unique_facts} == {
        ("without", "300 m"),
        ("with", "330 m"),
        ("with", "57 m"),
    }
