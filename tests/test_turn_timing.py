"""Where a turn's time goes: the session records each stage, the status bar shows the stage
being waited on with its seconds, and the finished answer's line keeps the figures."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from textual.widgets import Static
from ui_support import FakeRetriever, make_app, send, settle

from phichat.chat.events import Done, Status
from phichat.chat.session import Session, TurnOptions
from phichat.domain import Conversation
from phichat.models.base import GenerationOptions
from phichat.models.scripted import ScriptedModel
from phichat.ui.widgets.answer import Answer, timing_summary
from phichat.ui.widgets.status_bar import StatusBar

SIZE = (110, 40)


def test_a_search_turn_records_the_parts_of_its_first_token_wait() -> None:
    session = Session(
        ScriptedModel(["First answer.", "Second answer."]),
        TurnOptions(GenerationOptions(max_new_tokens=32)),
        retriever=FakeRetriever(),
    )
    conversation = Conversation()
    list(session.respond(conversation, "What causes tides?", True, threading.Event()))
    events = list(session.respond(conversation, "and in lakes?", True, threading.Event()))
    # A follow-up's query is built without the model, so searching starts with it at once.
    searching = [e.detail for e in events if isinstance(e, Status) and e.stage == "searching"]
    assert searching[0] == "and in lakes? causes tides"
    done = events[-1]
    assert isinstance(done, Done)
    timings = done.message.timings
    for key in ("query_s", "sources_s", "prefill_s", "first_token_s", "reused_tokens"):
        assert key in timings, key
    parts = timings["query_s"] + timings["sources_s"] + timings["prefill_s"]
    assert parts <= timings["first_token_s"] <= timings["total_s"]


def test_the_answer_line_names_the_wait_its_parts_and_the_reuse() -> None:
    line = timing_summary(
        {
            "first_token_s": 2.44,
            "query_s": 0.01,
            "sources_s": 1.1,
            "prefill_s": 1.3,
            "prompt_tokens": 980,
            "reused_tokens": 620,
            "new_tokens": 48,
            "tokens_per_s": 5.08,
            "total_s": 11.6,
        }
    )
    assert line == (
        "first token 2.4 s (query 0.0 s · sources 1.1 s · prefill 1.3 s) · "
        "980 prompt tokens, 620 reused · 48 tokens · 5.1 tok/s · 11.6 s"
    )
    # An answer saved before these figures existed keeps its old line.
    assert timing_summary({"new_tokens": 5, "total_s": 2.0}) == "5 tokens · 2.0 s"


async def test_the_status_bar_shows_the_stage_and_its_seconds_and_the_footer_keeps_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [100.0]
    monkeypatch.setattr(StatusBar, "clock", staticmethod(lambda: now[0]))
    gate = threading.Event()
    app = make_app(tmp_path, ["The Moon [1]."], retriever=FakeRetriever(gate=gate), search=True)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        app.composer.load_text("why tides")
        await pilot.press("enter")
        status = app.query_one("#turn-status", Static)
        for _ in range(200):
            await pilot.pause(0.02)
            if "fetching pages" in str(status.render()):
                break
        assert "fetching pages 0.0 s · Esc stops" in str(status.render())
        now[0] += 2.5  # the page fetch takes its time; the bar keeps counting
        await pilot.pause(0.3)
        assert "fetching pages 2.5 s" in str(status.render())
        gate.set()
        await settle(pilot, app)
        assert "Esc stops" not in str(status.render())
        answer = app.query_one(Answer)
        footer = str(answer.query_one(".footer", Static).render())
        assert footer.startswith("first token ") and "(query " in footer
        assert "sources " in footer and "prefill " in footer and "prompt tokens" in footer


async def test_a_follow_up_shows_the_query_it_searched_for(tmp_path: Path) -> None:
    app = make_app(tmp_path, ["One.", "Two."], retriever=FakeRetriever(), search=True)
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, app, "why tides")
        await send(pilot, app, "and in lakes?")
        steps = str(app.query(Answer).last().query_one(".steps", Static).render())
        assert "Search: and in lakes? tides" in steps
        assert "Query:" not in steps  # no model call, so no query step to wait on
