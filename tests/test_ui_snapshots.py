"""SVG snapshots of the main states (cursor blink off, timings pinned).

Update them after a deliberate visual change with ``pytest tests/test_ui_snapshots.py
--snapshot-update`` and review the SVGs in the diff.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.text import Text
from textual.pilot import Pilot
from ui_support import FakeRetriever, make_app, settle

from phichat.errors import ModelNotAvailable
from phichat.models.scripted import ScriptedModel
from phichat.storage.conversations import ConversationStore
from phichat.ui.app import PhichatApp
from phichat.ui.widgets.answer import Answer
from phichat.ui.widgets.status_bar import StatusBar

SIZE = (100, 34)
# 2025-03-14 12:00 UTC: a fixed time, so the sidebar's dates never change.
FIXED_TIME = 1741953600.0
GROUNDED = (
    "Tides are caused mainly by the **Moon's gravity** pulling the oceans into two bulges "
    "[1]. When the Sun and Moon line up, at new and full moon, the bulges add up to "
    "*spring tides* [2]."
)


@pytest.fixture(autouse=True)
def steady_footer(monkeypatch: pytest.MonkeyPatch) -> None:
    # Token rates differ from run to run; the snapshots are about layout, not speed.
    monkeypatch.setattr(Answer, "_timing_line", staticmethod(lambda message: Text("timings")))


@pytest.fixture(autouse=True)
def steady_stage_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    # The status bar's stage time ticks; pinned, it always reads 0.0 s.
    monkeypatch.setattr(StatusBar, "clock", staticmethod(lambda: 0.0))


@pytest.fixture
def gate() -> Iterator[threading.Event]:
    event = threading.Event()
    yield event
    event.set()  # release the retrieval thread the snapshot left waiting


def no_blink(app: PhichatApp) -> None:
    app.composer.cursor_blink = False


async def ask(pilot: Pilot, app: PhichatApp, text: str) -> None:
    no_blink(app)
    await settle(pilot, app)
    app.composer.load_text(text)
    await pilot.press("enter")
    await settle(pilot, app)


def test_grounded_answer_with_sources(snap_compare, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    app = make_app(tmp_path, [GROUNDED], retriever=FakeRetriever(), search=True)

    async def run_before(pilot: Pilot) -> None:
        await ask(pilot, app, "What causes tides?")

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_retrieval_in_progress(snap_compare, tmp_path: Path, gate: threading.Event) -> None:  # type: ignore[no-untyped-def]
    app = make_app(tmp_path, [GROUNDED], retriever=FakeRetriever(gate=gate), search=True)

    async def run_before(pilot: Pilot) -> None:
        no_blink(app)
        await settle(pilot, app)  # the model is ready, so no "waiting for the model" step
        app.composer.load_text("What causes tides?")
        await pilot.press("enter")
        for _ in range(200):
            await pilot.pause(0.02)
            answer = app.view.last_answer()
            if answer is not None and "fetching" in answer.query_one(".steps").render().plain:  # type: ignore[attr-defined]
                return

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_history_sidebar(snap_compare, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with ConversationStore(tmp_path / "phichat.db", clock=lambda: FIXED_TIME) as store:
        from phichat.domain import Conversation, Message

        for question in ("How do tides work?", "Best way to learn Rust", "Explain RoPE scaling"):
            conversation = Conversation(title=question, created_at=FIXED_TIME)
            for message in (
                Message("user", question, created_at=FIXED_TIME),
                Message("assistant", "An answer.", created_at=FIXED_TIME),
            ):
                conversation.messages.append(message)
                store.save_message(conversation, message)
    app = make_app(tmp_path, ["unused"])

    async def run_before(pilot: Pilot) -> None:
        no_blink(app)
        await settle(pilot, app)
        await pilot.press("ctrl+b")

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_model_not_available_panel(snap_compare, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    error = ModelNotAvailable(
        "microsoft/Phi-3-mini-4k-instruct is not downloaded and the Hub is offline"
    )
    app = make_app(tmp_path, model=ScriptedModel(load_error=error))

    async def run_before(pilot: Pilot) -> None:
        no_blink(app)
        await settle(pilot, app)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_help_screen(snap_compare, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    app = make_app(tmp_path, ["unused"])

    async def run_before(pilot: Pilot) -> None:
        no_blink(app)
        await settle(pilot, app)
        await pilot.press("f1")

    assert snap_compare(app, terminal_size=(100, 40), run_before=run_before)
