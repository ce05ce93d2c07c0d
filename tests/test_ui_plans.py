"""Pilot tests: trip plans beside the prose, their calendar export, and a hostile plan title."""

from __future__ import annotations

from pathlib import Path

from icalendar import Calendar
from textual.content import Content
from textual.widgets import Markdown
from ui_support import FakeRetriever, make_app, plain, send

from phichat.ui.widgets.itinerary_view import ItineraryView, plan_table

SIZE = (120, 44)

PLAN = """Here is your day.

### Day 1: Old town
- Morning — **Cathedral**: climb the tower. Tip: opens 09:00. [1]
- Afternoon — **Harbour**: boat tour. [2]
- Evening — **Night market**: street food.
"""

PLAN_WITH_MARKUP_TITLE = (
    "Day 1: Temples [/] and Gion\n"
    "- Morning: **Kinkaku-ji**: see the golden pavilion.\n"
    "- Afternoon: **Gion**: walk the old streets.\n"
)


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


async def test_a_plan_title_with_markup_shows_literally(tmp_path: Path) -> None:
    app = make_app(tmp_path, [PLAN_WITH_MARKUP_TITLE])
    async with app.run_test(size=(110, 40)) as pilot:
        await send(pilot, app, "plan a day in Kyoto")
        view = app.query_one(ItineraryView)
        # Textual keeps border titles as markup; what it shows must be the literal text.
        shown = Content.from_markup(str(view.border_title)).plain
        assert shown == "Plan · Day 1: Temples [/] and Gion"
        assert app.is_running
