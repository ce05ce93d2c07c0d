"""Pilot tests: compare (F5), presets (F12), pinned sources (Ctrl+L), plans, calendar export."""

from __future__ import annotations

import io
from pathlib import Path

from icalendar import Calendar
from rich.console import Console
from textual.widgets import Markdown, OptionList, Static
from ui_support import FakeRetriever, make_app, send, settle
from webfixture import loopback_web_fixture  # noqa: F401

from phichat.errors import ModelNotAvailable
from phichat.models.scripted import ScriptedModel
from phichat.ui.widgets.answer import Answer
from phichat.ui.widgets.compare_summary_view import CompareSummaryView, summary_renderable
from phichat.ui.widgets.compare_view import CompareView
from phichat.ui.widgets.conversation_list import ConversationList
from phichat.ui.widgets.itinerary_view import ItineraryView, plan_table
from phichat.ui.widgets.turn_runner import TurnRunner
from phichat.ui.widgets.user_message import UserMessage

SIZE = (120, 44)

PLAN = """Here is your day.

### Day 1: Old town
- Morning — **Cathedral**: climb the tower. Tip: opens 09:00. [1]
- Afternoon — **Harbour**: boat tour. [2]
- Evening — **Night market**: street food.
"""


def sides(posted: list[object]) -> dict[str, str]:
    unique = {id(m): m for m in posted if isinstance(m, TurnRunner.TokenArrived)}
    text: dict[str, str] = {}
    for message in unique.values():
        text[message.side] = text.get(message.side, "") + message.text
    return text


def plain(renderable: object) -> str:
    console = Console(width=110, record=True, file=io.StringIO())
    console.print(renderable)
    return console.export_text()


def summary_text(app) -> str:  # type: ignore[no-untyped-def]
    summary = app.query_one(CompareSummaryView).summary
    assert summary is not None
    return plain(summary_renderable(summary))


def mode(app) -> str:  # type: ignore[no-untyped-def]
    return str(app.query_one("#mode-status", Static).content)


async def test_f5_streams_two_columns_then_a_summary_and_the_compare_reopens(
    tmp_path: Path,
) -> None:
    posted: list[object] = []
    retriever = FakeRetriever()
    app = make_app(
        tmp_path, ["It is about 5 km away.", "It is 7 km away [1]."], retriever=retriever
    )
    async with app.run_test(size=SIZE, message_hook=posted.append) as pilot:
        await settle(pilot, app)
        app.composer.load_text("How far is the lighthouse?")
        await pilot.press("f5")
        await settle(pilot, app)
        assert sides(posted) == {
            "without": "It is about 5 km away.",
            "with": "It is 7 km away [1].",
        }
        compare = app.query_one(CompareView)
        assert compare.answer("without").text == "It is about 5 km away."
        assert compare.answer("with").sources and not compare.answer("without").sources
        text = summary_text(app)
        assert "first token" in text and "2 sources packed · 1 cited" in text
        assert "5 km" in text and "7 km" in text
        assert retriever.queries == ["How far is the lighthouse?"]
        assert app.composer.text == ""
        conversation_id = app.conversation.id
        saved = app.store.load(conversation_id)
        assert [m.compare_side for m in saved.messages] == [None, "without", "with"]
        # Reopen it: a new conversation, then back through the sidebar's open path.
        await pilot.press("ctrl+n")
        await settle(pilot, app)
        assert not app.query(CompareView)
        app.post_message(ConversationList.Opened(conversation_id))
        await settle(pilot, app)
        reopened = app.query_one(CompareView)
        assert reopened.answer("with").text == "It is 7 km away [1]."
        assert "1 cited" in summary_text(app)


async def test_f5_with_an_empty_box_compares_the_last_question_again(tmp_path: Path) -> None:
    app = make_app(tmp_path, ["First.", "Off.", "On [1]."], retriever=FakeRetriever())
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, app, "Q?")
        assert len(app.query(Answer)) == 1
        await pilot.press("f5")
        await settle(pilot, app)
        assert [m.text for m in app.conversation.messages] == ["Q?", "Off.", "On [1]."]
        assert len(app.query(Answer)) == 2 and len(app.query(CompareView)) == 1


async def test_f5_with_nothing_to_compare_says_how(tmp_path: Path) -> None:
    posted: list[object] = []
    app = make_app(tmp_path, ["x"], retriever=FakeRetriever())
    async with app.run_test(size=SIZE, message_hook=posted.append) as pilot:
        await settle(pilot, app)
        await pilot.press("f5")
        await pilot.pause()
        assert not app.query(CompareView) and not app.runner.running


async def test_a_plan_answer_gets_a_table_beside_the_prose_and_others_do_not(
    tmp_path: Path,
) -> None:
    app = make_app(tmp_path, [PLAN, "Just prose about the morning."], retriever=FakeRetriever())
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, app, "Plan my day")
        [view] = app.query(ItineraryView)
        assert [s.label for s in view.plan.days[0].slots] == ["Morning", "Afternoon", "Evening"]
        table = plain(plan_table(view.plan, []))
        assert "Cathedral" in table and "Night market" in table
        # The prose is kept whole next to the table (nothing lost).
        prose = app.query_one(".answer-row Markdown", Markdown)
        assert "climb the tower" in prose.source
        await send(pilot, app, "And tomorrow?")
        assert len(app.query(ItineraryView)) == 1


async def test_f12_picks_the_itinerary_preset_for_the_next_messages(tmp_path: Path) -> None:
    retriever = FakeRetriever()
    app = make_app(tmp_path, [PLAN], retriever=retriever, search=True)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press("f12")
        await pilot.pause(0.1)
        options = app.screen.query_one("#preset-options", OptionList)
        names = [options.get_option_at_index(i).id for i in range(options.option_count)]
        assert names[:3] == ["-", "itinerary", "brief"]
        options.highlighted = 1
        await pilot.press("enter")
        await pilot.pause()
        assert app.session.options.preset is not None
        assert app.session.options.preset.name == "itinerary"
        assert "preset itinerary" in mode(app)
        await send(pilot, app, "Plan me a day trip to Bruges")
        assert retriever.queries == ["Bruges things to do itinerary"]


async def test_ctrl_l_pins_sources_and_the_next_question_does_not_search(tmp_path: Path) -> None:
    retriever = FakeRetriever()
    app = make_app(tmp_path, ["Tides [1].", "Spring tides [2]."], retriever=retriever, search=True)
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, app, "What causes tides?")
        await pilot.press("ctrl+l")
        assert "2 sources pinned" in mode(app)
        await pilot.press("ctrl+t")  # search off: the pinned sources still ground the answer
        await send(pilot, app, "When are spring tides?")
        assert retriever.queries == ["What causes tides?"]
        last = app.conversation.messages[-1]
        assert last.grounded and [s.n for s in last.sources] == [1, 2]
        await pilot.press("ctrl+l")
        assert "pinned" not in mode(app)


async def test_the_trip_plan_exports_to_a_calendar_from_the_tui(tmp_path: Path) -> None:
    app = make_app(tmp_path, [PLAN, "No plan here."])
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, app, "Plan my day")
        await pilot.press("f3")
        await pilot.pause()
        target = tmp_path / "day.ics"
        field = app.screen.query_one("#path-input")
        field.value = str(target)  # type: ignore[attr-defined]
        await pilot.press("enter")
        await pilot.pause()
        events = list(Calendar.from_ical(target.read_bytes()).walk("VEVENT"))
        assert [str(e.get("location")) for e in events] == ["Cathedral", "Harbour", "Night market"]
        # Markdown still goes through the same export, by its file name.
        written = app.export_to(app.conversation, tmp_path / "day.md")
        assert written is not None and "climb the tower" in written.read_text()


async def test_a_compare_that_never_starts_gives_the_question_back(tmp_path: Path) -> None:
    model = ScriptedModel(
        ["x"], load_delay_s=0.3, load_error=ModelNotAvailable("no weights on this machine")
    )
    app = make_app(tmp_path, model=model, retriever=FakeRetriever())
    async with app.run_test(size=SIZE) as pilot:
        app.composer.load_text("Is it worth the trip?")
        await pilot.press("f5")  # the model is still loading: the compare waits, then fails
        await settle(pilot, app)
        assert not app.query(CompareView) and app.conversation.messages == []
        assert app.composer.text == "Is it worth the trip?"
        assert not app.query(UserMessage)


async def test_a_compare_with_pinned_sources_skips_the_search(tmp_path: Path) -> None:
    retriever = FakeRetriever()
    replies = ["Tides [1].", "Off.", "Pinned [2]."]
    app = make_app(tmp_path, replies, retriever=retriever, search=True)
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, app, "What causes tides?")
        await pilot.press("ctrl+l")
        app.composer.load_text("When are spring tides?")
        await pilot.press("f5")
        await settle(pilot, app)
        assert retriever.queries == ["What causes tides?"]
        assert app.query_one(CompareView).answer("with").text == "Pinned [2]."


async def test_compare_preset_and_pin_are_in_the_command_palette(tmp_path: Path) -> None:
    app = make_app(tmp_path, ["x"])
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        titles = {command.title: command.help for command in app.get_system_commands(app.screen)}
        compare = "Compare: answer the question without and with search, side by side"
        assert titles[compare] == "Key: F5"
        assert titles["Pick an answer preset, such as itinerary"] == "Key: F12"
        assert "Export the trip plan to a calendar file (.ics)" in titles


class WordBucketEmbedder:
    """Words counted into 64 buckets: ranking runs without loading a sentence model."""

    def encode(self, texts: list[str]) -> object:
        import zlib

        import numpy as np

        rows = np.zeros((len(texts), 64), dtype="float32")
        for row, text in enumerate(texts):
            for word in text.lower().split():
                rows[row, zlib.crc32(word.encode()) % 64] += 1.0
        return rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-9)


async def test_compare_over_the_loopback_web_with_the_real_retriever(
    tmp_path: Path, loopback_web
) -> None:  # type: ignore[no-untyped-def]
    from phichat.config import Settings
    from phichat.retrieval.pipeline import WebRetriever

    web = loopback_web
    web.search_results = [web.result("/skagway.html", "Skagway")]
    settings = Settings(engine="searxng", searxng_url=web.base, allow_private_urls=True)
    retriever = WebRetriever(settings, embedder=WordBucketEmbedder())
    app = make_app(tmp_path, ["A quiet port.", "A gold-rush port town [1]."], retriever=retriever)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        app.composer.load_text("What is Skagway known for?")
        await pilot.press("f5")
        await settle(pilot, app)
        assert web.search_hits() == 1
        compare = app.query_one(CompareView)
        grounded = compare.answer("with")
        assert grounded.sources and grounded.sources[0].url == web.url("/skagway.html")
        assert not compare.answer("without").sources
        assert "1 cited" in summary_text(app)


async def test_compare_summary_skips_the_question_and_shows_a_conflict(tmp_path: Path) -> None:
    from phichat.domain import Source, SourcePassage

    sources = [
        Source(1, "Tower facts", "https://facts.example/", (SourcePassage("It is 330 m high."),))
    ]
    app = make_app(
        tmp_path,
        ["The Eiffel Tower is 300 metres tall.", "The Eiffel Tower is 330 m tall [1]."],
        retriever=FakeRetriever(sources),
    )
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        app.composer.load_text("How tall is the Eiffel Tower?")
        await pilot.press("f5")
        await settle(pilot, app)
        text = summary_text(app)
        summary = app.query_one(CompareSummaryView).summary
        assert summary is not None and summary.unique_facts == ()
        assert [(c.without, c.with_search, c.backed, c.source) for c in summary.conflicts] == [
            ("300 metres", "330 m", "with", 1)
        ]
        assert "⚠ disagree: 300 metres (without) vs" in text and "source [1] says" in text
        assert "Eiffel Tower" not in text
        # Reopened from the database, the summary still knows the question.
        conversation_id = app.conversation.id
        await pilot.press("ctrl+n")
        await settle(pilot, app)
        app.post_message(ConversationList.Opened(conversation_id))
        await settle(pilot, app)
        assert "Eiffel Tower" not in summary_text(app)
        assert "disagree" in summary_text(app)
