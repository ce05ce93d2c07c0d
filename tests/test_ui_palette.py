"""Pilot tests: what the command palette offers, and that hostile titles stay plain text there."""

from __future__ import annotations

from pathlib import Path

from textual.content import Content
from ui_support import FakeRetriever, make_app, send, settle

from phichat.domain import Source, SourcePassage

SIZE = (120, 44)
HOSTILE = "Guide [docs] closing [/b] tag [@click=app.quit]q[/]"


async def test_compare_preset_and_pin_are_in_the_command_palette(tmp_path: Path) -> None:
    app = make_app(tmp_path, ["x"])
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        titles = {command.title: command.help for command in app.get_system_commands(app.screen)}
        compare = "Compare: answer the question without and with search, side by side"
        assert titles[compare] == "Key: F5"
        assert titles["Pick an answer preset, such as itinerary"] == "Key: F12"
        assert "Export the trip plan to a calendar file (.ics)" in titles


async def test_palette_offers_sources_with_their_titles_as_plain_text(tmp_path: Path) -> None:
    sources = [Source(1, HOSTILE, "https://ex.example.org/a", (SourcePassage("text", 0.5),))]
    app = make_app(tmp_path, ["See [1]."], retriever=FakeRetriever(sources), search=True)
    async with app.run_test(size=(110, 40)) as pilot:
        await send(pilot, app, "tides")
        await pilot.press("ctrl+p")
        await pilot.pause()
        # The palette asks with the screen it was opened over, not with itself.
        commands = list(app.get_system_commands(app.screen_stack[0]))
        titles = [c.title for c in commands if c.title.startswith("Open source 1")]
        assert len(titles) == 1
        assert Content.from_markup(titles[0]).plain == f"Open source 1: {HOSTILE}"
        assert app.is_running
