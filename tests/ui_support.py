"""Helpers for the UI tests: an app wired to a scripted model, a store and a fake retriever."""

from __future__ import annotations

import io
import threading
from pathlib import Path

from rich.console import Console
from textual.widgets import Static

from phichat.chat.factory import turn_options
from phichat.chat.session import Session
from phichat.config import Settings
from phichat.domain import Source, SourcePassage
from phichat.models.scripted import ScriptedModel
from phichat.retrieval.types import PackBudget, Retrieval, RetrievalProgress
from phichat.storage.conversations import ConversationStore
from phichat.ui.app import PhichatApp

SOURCES = [
    Source(
        1,
        "Tides explained",
        "https://oceans.example.org/tides",
        (SourcePassage("The Moon's gravity pulls the oceans into two bulges.", 0.82, "Causes"),),
    ),
    Source(
        2,
        "Spring and neap tides",
        "https://www.sea.example.com/spring-neap",
        (SourcePassage("Spring tides happen at new and full moon.", 0.71, ""),),
    ),
]


class FakeRetriever:
    """Reports the same progress steps as the web retriever, then returns fixed sources."""

    def __init__(
        self, sources: list[Source] | None = None, gate: threading.Event | None = None
    ) -> None:
        self.sources = SOURCES if sources is None else sources
        self.gate = gate  # when given, retrieval waits here (to test cancelling it)
        self.queries: list[str] = []

    def retrieve(
        self, query: str, budget: PackBudget, progress: RetrievalProgress, stop: threading.Event
    ) -> Retrieval:
        self.queries.append(query)
        progress("searching", query)
        progress("fetching", "fetching 2 pages")
        if self.gate is not None:
            while not self.gate.is_set() and not stop.is_set():
                stop.wait(0.02)
        progress("reading", "reading 1 of 2 pages")
        progress("reading", "reading 2 of 2 pages")
        progress("ranking", "ranking 5 passages")
        context = "\n\n".join(p.text for s in self.sources for p in s.passages)
        return Retrieval(query=query, sources=list(self.sources), context_text=context)


def make_app(
    data_dir: Path,
    replies: list[str] | None = None,
    *,
    model: object | None = None,
    retriever: FakeRetriever | None = None,
    search: bool = False,
    keys: dict[str, str] | None = None,
    token_delay_s: float = 0.0,
    max_new_tokens: int = 512,
) -> PhichatApp:
    settings = Settings(search=search, keys=keys or {}, max_new_tokens=max_new_tokens)
    store = ConversationStore(data_dir / "phichat.db")
    chat_model = model if model is not None else ScriptedModel(replies, token_delay_s=token_delay_s)
    session = Session(chat_model, turn_options(settings), retriever=retriever, store=store)  # type: ignore[arg-type]
    return PhichatApp(settings, session=session, store=store)


async def settle(pilot, app: PhichatApp, rounds: int = 1500) -> None:  # type: ignore[no-untyped-def]
    """Let the app run until no turn is in flight (bounded, so a hang fails the test)."""
    for _ in range(rounds):
        await pilot.pause(0.02)
        model_settled = app.loader.ready.is_set() or app.loader.error is not None
        if model_settled and not app.runner.running:
            await pilot.pause()
            return
    raise AssertionError("the turn never finished")


async def send(pilot, app: PhichatApp, text: str) -> None:  # type: ignore[no-untyped-def]
    app.composer.load_text(text)
    await pilot.press("enter")
    await settle(pilot, app)


def plain(renderable: object) -> str:
    """What a Rich renderable prints, as plain text."""
    console = Console(width=110, record=True, file=io.StringIO())
    console.print(renderable)
    return console.export_text()


def mode(app: PhichatApp) -> str:
    """The status bar's mode line (search, preset, pins)."""
    return str(app.query_one("#mode-status", Static).content)
