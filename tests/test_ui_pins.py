"""Pilot tests: pinned sources (Ctrl+L) ground the next questions, in chat and in a compare."""

from __future__ import annotations

from pathlib import Path

from ui_support import FakeRetriever, make_app, mode, send, settle

from phichat.ui.widgets.compare_view import CompareView

SIZE = (120, 44)


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
