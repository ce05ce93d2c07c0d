"""Pilot tests for the app's reliability fixes: nothing the user wrote or was shown is lost."""

from __future__ import annotations

from pathlib import Path

from textual import events
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


# ---- the composer keeps what is typed, in order -------------------------------------------
def burst(app, *keys: str) -> None:  # type: ignore[no-untyped-def]
    """Deliver keys the way a terminal read does: all queued at once, none awaited."""
    names = {"\r": "enter", " ": "space"}
    for key in keys:
        if len(key) == 1:
            app.post_message(events.Key(names.get(key, key), key))
        else:
            app.post_message(events.Key(key, None))


async def wait_until(pilot, condition) -> None:  # type: ignore[no-untyped-def]
    for _ in range(500):
        await pilot.pause(0.02)
        if condition():
            return
    raise AssertionError("the app never got there")


async def test_text_and_enter_in_one_burst_are_sent(tmp_path: Path) -> None:
    app = make_app(tmp_path, ["one", "two"])
    async with app.run_test(size=SIZE) as pilot:
        burst(app, *"hello", "\r")
        await pilot.pause()
        await settle(pilot, app)
        assert [m.text for m in app.conversation.messages] == ["hello", "one"]
        assert app.composer.text == ""
        burst(app, *"ab", "shift+enter", *"cd", "\r")
        await pilot.pause()
        await settle(pilot, app)
        assert [m.text for m in app.conversation.messages][2:] == ["ab\ncd", "two"]


async def test_messages_sent_one_after_another_stay_separate_and_in_order(
    tmp_path: Path,
) -> None:
    app = make_app(tmp_path, ["ok"])
    async with app.run_test(size=SIZE) as pilot:
        for n in range(6):
            burst(app, *f"message {n}", "\r")
            await pilot.pause()
            await settle(pilot, app)
        asked = [m.text for m in app.conversation.messages if m.role == "user"]
        assert asked == [f"message {n}" for n in range(6)]


async def test_enter_while_answering_keeps_the_text_with_the_cursor_at_the_end(
    tmp_path: Path,
) -> None:
    reply = " ".join(f"word{i}" for i in range(400))
    app = make_app(tmp_path, [reply, "short"], token_delay_s=0.02)
    async with app.run_test(size=SIZE) as pilot:
        burst(app, *"first", "\r")
        await wait_until(pilot, lambda: app.runner.running)
        burst(app, *"second", "\r", *" more", "\r")
        await wait_until(pilot, lambda: app.composer.text == "second more")
        assert app.runner.running
        assert app.composer.text == "second more"
        assert app.composer.cursor_location == (0, len("second more"))
        assert [m.text for m in app.conversation.messages if m.role == "user"] == ["first"]
        await pilot.press("escape")
        await settle(pilot, app)
        await pilot.press("enter")
        await pilot.pause()
        await settle(pilot, app)
        asked = [m.text for m in app.conversation.messages if m.role == "user"]
        assert asked == ["first", "second more"]
        assert app.composer.text == ""


async def test_a_message_taken_back_goes_before_what_was_typed_since(tmp_path: Path) -> None:
    from phichat.errors import ModelNotAvailable
    from phichat.models.scripted import ScriptedModel

    model = ScriptedModel(["x"], load_delay_s=0.5, load_error=ModelNotAvailable("no weights"))
    app = make_app(tmp_path, model=model)
    async with app.run_test(size=SIZE) as pilot:
        burst(app, *"asked early", "\r", *"typed later")
        await pilot.pause()
        await settle(pilot, app)
        assert app.composer.text == "asked early\ntyped later"
        assert app.composer.cursor_location == (1, len("typed later"))
        assert not app.conversation.messages


# ---- [keys] problems are reported, not accepted silently ------------------------------------
def test_keymap_problems_name_each_bad_entry_and_keep_the_good_ones() -> None:
    from phichat.ui.keys import keymap_problems

    usable, problems = keymap_problems(
        {"toggle_search": "ctrl+r", "help": "ctlr+h", "compare": "f6", "nonsense": "f11"}
    )
    assert usable == {"compare": "f6"}
    assert problems == [
        "unknown key id 'nonsense'",
        "'ctlr+h' for help is not a key name",
        "ctrl+r for toggle_search is already the key of regenerate; ignored",
    ]
    # Moving the other binding away first makes the key free.
    usable, problems = keymap_problems({"toggle_search": "ctrl+r", "regenerate": "ctrl+shift+r"})
    assert problems == [] and usable["toggle_search"] == "ctrl+r"


async def test_the_app_warns_about_a_conflicting_key_and_keeps_the_builtin(tmp_path: Path) -> None:
    app = make_app(tmp_path, ["first", "second"], keys={"toggle_search": "ctrl+r"})
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        notes = [str(n.message) for n in app._notifications]
        assert any("already the key of regenerate" in note for note in notes), notes
        await send(pilot, app, "question")
        await pilot.press("ctrl+r")
        await settle(pilot, app)
        assert shown_answers(app) == ["second"]  # Ctrl+R still regenerates
