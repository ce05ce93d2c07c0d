"""Regression tests for bugs found in review: hostile text in the palette and plan titles,
deletes racing a finishing turn, a damaged search cache, and a DNS lookup that never ends."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest
from textual.content import Content
from ui_support import FakeRetriever, make_app, send

from phichat.domain import Conversation, Message, Source, SourcePassage
from phichat.retrieval.fetch import FetchLimits, fetch_pages
from phichat.retrieval.searchcache import SearchCache
from phichat.storage.conversations import ConversationStore

HOSTILE = "Guide [docs] closing [/b] tag [@click=app.quit]q[/]"
PLAN = (
    "Day 1: Temples [/] and Gion\n"
    "- Morning: **Kinkaku-ji**: see the golden pavilion.\n"
    "- Afternoon: **Gion**: walk the old streets.\n"
)


async def test_a_plan_title_with_markup_shows_literally(tmp_path: Path) -> None:
    from phichat.ui.widgets.itinerary_view import ItineraryView

    app = make_app(tmp_path, [PLAN])
    async with app.run_test(size=(110, 40)) as pilot:
        await send(pilot, app, "plan a day in Kyoto")
        view = app.query_one(ItineraryView)
        # Textual keeps border titles as markup; what it shows must be the literal text.
        shown = Content.from_markup(str(view.border_title)).plain
        assert shown == "Plan · Day 1: Temples [/] and Gion"
        assert app.is_running


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


def test_a_deleted_conversation_stays_deleted_when_a_late_answer_is_saved(tmp_path: Path) -> None:
    store = ConversationStore(tmp_path / "db.sqlite")
    conversation = Conversation(title="secret question")
    store.save_message(conversation, Message("user", "secret question"))
    store.delete(conversation.id)
    store.save_message(conversation, Message("assistant", "partial", stopped=True))
    assert store.list_conversations() == []


def test_a_damaged_search_cache_entry_is_a_miss(tmp_path: Path) -> None:
    path = tmp_path / "cache.json"
    path.write_text('{"k": {"at": null, "results": []}, "j": {"at": "yesterday"}}')
    cache = SearchCache(path)
    assert cache.get("k") is None
    cache.put("other", [])  # does not raise on the damaged neighbours
    assert cache.get("other") == []


def test_stop_returns_while_a_dns_lookup_hangs(monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()
    lookup_ended = threading.Event()
    real = socket.getaddrinfo

    def stuck(host, *args, **kwargs):  # type: ignore[no-untyped-def]
        if host == "stuck.test":
            release.wait(30)
            lookup_ended.set()
            raise socket.gaierror(-2, "Name or service not known")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", stuck)
    stop = threading.Event()
    timer = threading.Timer(0.2, stop.set)
    timer.start()
    try:
        # Before the fix this call only returned once the lookup ended, because
        # asyncio.run() joined the lookup's thread; now it returns while it still hangs.
        pages = fetch_pages(["http://stuck.test/"], FetchLimits(deadline=60.0), stop=stop)
        returned_while_stuck = not lookup_ended.is_set()
    finally:
        release.set()
        timer.cancel()
    assert returned_while_stuck
    assert [page.ok for page in pages] == [False]
    assert pages[0].error == "stopped"
