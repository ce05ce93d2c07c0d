"""Pilot tests: the preset picker (F12) and what a picked preset changes."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import OptionList
from ui_support import FakeRetriever, make_app, mode, send, settle

SIZE = (120, 44)

PLAN = """Here is your day.

### Day 1: Old town
- Morning — **Cathedral**: climb the tower. Tip: opens 09:00. [1]
- Afternoon — **Harbour**: boat tour. [2]
- Evening — **Night market**: street food.
"""


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
