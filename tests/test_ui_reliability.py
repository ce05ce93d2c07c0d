"""Pilot tests for the app's reliability fixes: nothing the user wrote or was shown is lost."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import Markdown
from ui_support import FakeRetriever, make_app, send, settle

from phichat.errors import ModelServerError
from phichat.models.base import ChatMessage
from phichat.retrieval.types import PackBudget, Retrieval
from phichat.ui.widgets.answer import Answer
from phichat.ui.widgets.compare_view import CompareView

SIZE = (110, 40)


def server_gone(_messages: list[ChatMessage]) -> str:
    raise ModelServerError("cannot reach the model server at http://127.0.0.1:9/v1")


class MalformedSearch(FakeRetriever):
    """A search engine whose reply the parser chokes on (``{"results": null}``)."""

    def retrieve(self, query, budget: PackBudget, progress, stop) -> Retrieval:  # type: ignore[no-untyped-def]
        self.queries.append(query)
        raise TypeError("'NoneType' object is not iterable")


def shown_answers(app) -> list[str]:  # type: ignore[no-untyped-def]
    return [a.query_one(Markdown).source for a in app.query(Answer)]


async def test_a_failed_regenerate_keeps_the_old_answer_saved_and_shown(tmp_path: Path) -> None:
    app = make_app(tmp_path, ["The Moon pulls the sea.", server_gone])
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, app, "What causes tides?")
        await pilot.press("ctrl+r")
        await settle(pilot, app)
        expected = ["What causes tides?", "The Moon pulls the sea."]
        assert [m.text for m in app.conversation.messages] == expected
        assert [m.text for m in app.store.load(app.conversation.id).messages] == expected
        assert shown_answers(app) == ["The Moon pulls the sea."]
        assert not app.query(Answer).last().has_class("failed")


async def test_ctrl_g_with_a_malformed_search_reply_keeps_the_old_answer(tmp_path: Path) -> None:
    retriever = MalformedSearch()
    app = make_app(tmp_path, ["The Moon pulls the sea.", "never said"], retriever=retriever)
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, app, "What causes tides?")
        await pilot.press("ctrl+g")
        await settle(pilot, app)
        assert retriever.queries == ["What causes tides?"]
        expected = ["What causes tides?", "The Moon pulls the sea."]
        assert [m.text for m in app.conversation.messages] == expected
        assert [m.text for m in app.store.load(app.conversation.id).messages] == expected
        assert shown_answers(app) == ["The Moon pulls the sea."]
        # The restored answer still answers follow-ups and can be regenerated later.
        app.session.model._replies = ["Gravity."]  # type: ignore[attr-defined]
        await pilot.press("ctrl+r")
        await settle(pilot, app)
        assert shown_answers(app) == ["Gravity."]


async def test_a_failed_compare_of_the_last_question_keeps_its_answer(tmp_path: Path) -> None:
    app = make_app(tmp_path, ["The Moon pulls the sea.", server_gone], retriever=MalformedSearch())
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, app, "What causes tides?")
        await pilot.press("f5")
        await settle(pilot, app)
        expected = ["What causes tides?", "The Moon pulls the sea."]
        assert [m.text for m in app.conversation.messages] == expected
        assert [m.text for m in app.store.load(app.conversation.id).messages] == expected
        assert shown_answers(app) == ["The Moon pulls the sea."]
        assert not app.query(CompareView)
