"""Pilot tests: the real app, driven by keys, with a scripted model and a fake retriever."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
from textual.widgets import Markdown, Static, Switch
from ui_support import SOURCES, FakeRetriever, make_app, send, settle

from phichat.errors import ModelNotAvailable
from phichat.models.scripted import ScriptedModel
from phichat.storage.conversations import ConversationStore
from phichat.ui.widgets.answer import Answer
from phichat.ui.widgets.model_problem import ModelProblem
from phichat.ui.widgets.source_list import SourceList
from phichat.ui.widgets.turn_runner import TurnRunner
from phichat.ui.widgets.user_message import UserMessage

SIZE = (110, 40)


def answers(app) -> list[Answer]:  # type: ignore[no-untyped-def]
    return list(app.query(Answer))


def sent(posted: list[object], kind: type) -> list:  # type: ignore[type-arg]
    """Messages of one kind, once each (the hook sees a message at every node it bubbles to)."""
    unique = {id(m): m for m in posted if isinstance(m, kind)}
    return list(unique.values())


def badge(answer: Answer, name: str) -> str:
    return str(answer.query_one(f".badge-{name}", Static).render())


async def test_send_streams_tokens_and_renders_once_at_the_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    full_renders: list[str] = []
    original_update = Markdown.update

    def counting_update(self: Markdown, markdown: str):  # type: ignore[no-untyped-def]
        if self.has_class("body") and markdown:
            full_renders.append(markdown)
        return original_update(self, markdown)

    monkeypatch.setattr(Markdown, "update", counting_update)
    posted: list[object] = []
    app = make_app(tmp_path, ["Tides are **mostly** caused by the Moon."])
    async with app.run_test(size=SIZE, message_hook=posted.append) as pilot:
        await send(pilot, app, "What causes tides?")
        tokens = sent(posted, TurnRunner.TokenArrived)
        assert [t.text for t in tokens] == ScriptedModel.tokenize(
            "Tides are **mostly** caused by the Moon."
        )
        # Tokens went through the stream; the whole answer was rendered exactly once.
        assert full_renders == ["Tides are **mostly** caused by the Moon."]
        [answer] = answers(app)
        assert answer.query_one(Markdown).source == "Tides are **mostly** caused by the Moon."
        assert [m.role for m in app.conversation.messages] == ["user", "assistant"]
        assert str(app.query_one(UserMessage).query_one(".body", Static).render()) == (
            "What causes tides?"
        )
        saved = app.store.load(app.conversation.id)
        assert [m.text for m in saved.messages] == [
            "What causes tides?",
            "Tides are **mostly** caused by the Moon.",
        ]
        assert app.composer.text == ""


async def test_search_toggle_switch_key_and_badges(tmp_path: Path) -> None:
    retriever = FakeRetriever()
    app = make_app(tmp_path, ["Grounded [1].", "Offline."], retriever=retriever)
    async with app.run_test(size=SIZE) as pilot:
        switch = app.query_one("#search-switch", Switch)
        assert switch.value is False
        await pilot.press("ctrl+t")
        assert switch.value is True
        await send(pilot, app, "tides")
        await pilot.press("ctrl+t")
        assert switch.value is False
        await send(pilot, app, "and waves")
        assert retriever.queries == ["tides"]
        first, second = answers(app)
        assert badge(first, "search") == "web search"
        assert badge(second, "offline") == "no search"
        assert [m.search_used for m in app.conversation.messages if m.role == "assistant"] == [
            True,
            False,
        ]


async def test_retrieval_steps_sources_citations_and_context(tmp_path: Path) -> None:
    posted: list[object] = []
    app = make_app(
        tmp_path,
        ["The Moon pulls the sea [1], spring tides follow [2], see also [9]."],
        retriever=FakeRetriever(),
        search=True,
    )
    async with app.run_test(size=SIZE, message_hook=posted.append) as pilot:
        await send(pilot, app, "why tides")
        stages = [m.stage for m in sent(posted, TurnRunner.StepChanged)]
        assert {"searching", "fetching", "reading", "ranking"} <= set(stages)
        [answer] = answers(app)
        steps = str(answer.query_one(".steps", Static).render())
        assert "Search: why tides" in steps
        assert "Read: reading 2 of 2 pages" in steps
        source_list = answer.query_one(SourceList)
        assert source_list.option_count == 2
        first = str(source_list.get_option_at_index(0).prompt)
        assert "[1] Tides explained" in first
        assert "oceans.example.org" in first
        assert "https://oceans.example.org/tides" in first
        markdown = answer.query_one(Markdown).source
        assert "[\\[1\\]](<https://oceans.example.org/tides>)" in markdown
        assert "[\\[2\\]](<https://www.sea.example.com/spring-neap>)" in markdown
        assert "**\\[9?\\]**" in markdown  # unknown number: flagged, not linked
        await pilot.press("f4")
        context = str(app.screen.query_one("#context-text", Static).render())
        assert "The Moon's gravity pulls the oceans into two bulges." in context
        assert "score 0.820" in context
        assert "Causes" in context
        await pilot.press("escape")
        assert not app.screen.query("#context-text")


async def test_sources_open_and_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = make_app(tmp_path, ["See [1]."], retriever=FakeRetriever(), search=True)
    opened: list[str] = []
    copied: list[str] = []
    monkeypatch.setattr(app, "open_url", lambda url, new_tab=True: opened.append(url))
    monkeypatch.setattr(app, "copy_to_clipboard", copied.append)
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, app, "tides")
        await pilot.press("ctrl+o")
        assert isinstance(app.focused, SourceList)
        await pilot.press("down", "o")
        await pilot.press("c")
        await pilot.pause()
        assert opened == [SOURCES[1].url]
        assert copied == [SOURCES[1].url]


async def test_escape_stops_generation_and_keeps_partial_answer(tmp_path: Path) -> None:
    reply = " ".join(f"word{i}" for i in range(400))
    app = make_app(tmp_path, [reply], token_delay_s=0.02)
    posted: list[object] = []
    async with app.run_test(size=SIZE, message_hook=posted.append) as pilot:
        app.composer.load_text("long answer please")
        await pilot.press("enter")
        for _ in range(200):
            await pilot.pause(0.02)
            if len(sent(posted, TurnRunner.TokenArrived)) >= 3:
                break
        await pilot.press("escape")
        await settle(pilot, app)
        answer = app.conversation.messages[-1]
        assert answer.stopped
        assert answer.text.startswith("word0 word1 word2")
        assert len(answer.text) < len(reply)
        [widget] = answers(app)
        assert badge(widget, "stopped") == "stopped"
        assert widget.has_class("stopped")
        assert app.store.load(app.conversation.id).messages[-1].stopped
        # The next turn starts cleanly and nothing from the stopped one leaks into it.
        app.session.model._replies = ["fresh"]  # type: ignore[attr-defined]
        await send(pilot, app, "again")
        assert app.conversation.messages[-1].text == "fresh"
        assert answers(app)[-1].query_one(Markdown).source == "fresh"


async def test_escape_stops_retrieval(tmp_path: Path) -> None:
    gate = threading.Event()
    retriever = FakeRetriever(gate=gate)
    app = make_app(tmp_path, ["never said"], retriever=retriever, search=True)
    posted: list[object] = []
    async with app.run_test(size=SIZE, message_hook=posted.append) as pilot:
        app.composer.load_text("tides")
        await pilot.press("enter")
        for _ in range(200):
            await pilot.pause(0.02)
            if any(m.stage == "fetching" for m in sent(posted, TurnRunner.StepChanged)):
                break
        await pilot.press("escape")
        await settle(pilot, app)
        answer = app.conversation.messages[-1]
        assert answer.role == "assistant" and answer.stopped and answer.text == ""
        assert not sent(posted, TurnRunner.TokenArrived)


async def test_regenerate_and_regenerate_with_search_flipped(tmp_path: Path) -> None:
    retriever = FakeRetriever()
    app = make_app(tmp_path, ["first", "second", "third [1]"], retriever=retriever)
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, app, "question")
        await pilot.press("ctrl+r")
        await settle(pilot, app)
        assert [m.text for m in app.conversation.messages] == ["question", "second"]
        assert len(answers(app)) == 1
        assert retriever.queries == []
        await pilot.press("ctrl+g")
        await settle(pilot, app)
        assert [m.text for m in app.conversation.messages] == ["question", "third [1]"]
        assert app.conversation.messages[-1].search_used
        assert retriever.queries == ["question"]
        [answer] = answers(app)
        assert badge(answer, "search") == "web search"
        saved = app.store.load(app.conversation.id)
        assert [m.text for m in saved.messages] == ["question", "third [1]"]


async def test_conversations_persist_across_a_restart(tmp_path: Path) -> None:
    first = make_app(tmp_path, ["Paris."])
    async with first.run_test(size=SIZE) as pilot:
        await send(pilot, first, "Capital of France?")
        conversation_id = first.conversation.id
    second = make_app(tmp_path, ["unused"])
    async with second.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+b")
        sidebar = second.query_one("#conversation-list")
        assert sidebar.option_count == 1
        assert "Capital of France?" in str(sidebar.get_option_at_index(0).prompt)
        await pilot.press("enter")
        await pilot.pause()
        assert second.conversation.id == conversation_id
        assert [m.text for m in second.conversation.messages] == ["Capital of France?", "Paris."]
        assert answers(second)[0].query_one(Markdown).source == "Paris."
        # Up recalls the prompts of the opened conversation.
        second.composer.focus()
        await pilot.press("up")
        assert second.composer.text == "Capital of France?"


async def test_new_rename_and_delete_conversations(tmp_path: Path) -> None:
    app = make_app(tmp_path, ["one", "two"])
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, app, "first chat")
        await pilot.press("ctrl+n")
        await send(pilot, app, "second chat")
        assert len(app.store.list_conversations()) == 2
        await pilot.press("f2")
        app.screen.query_one("#title-input").value = ""  # type: ignore[attr-defined]
        await pilot.press(*"Renamed", "enter")
        await pilot.pause()
        titles = {s.title for s in app.store.list_conversations()}
        assert titles == {"first chat", "Renamed"}
        doomed = app.conversation.id
        await pilot.press("f8")
        await pilot.press("y")
        await pilot.pause()
        assert [s.title for s in app.store.list_conversations()] == ["first chat"]
        assert app.conversation.id != doomed and app.conversation.messages == []


async def test_delete_asks_first(tmp_path: Path) -> None:
    app = make_app(tmp_path, ["one"])
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, app, "keep me")
        await pilot.press("f8")
        await pilot.press("n")
        await pilot.pause()
        assert len(app.store.list_conversations()) == 1


async def test_export_to_markdown(tmp_path: Path) -> None:
    app = make_app(tmp_path, ["The Moon [1]."], retriever=FakeRetriever(), search=True)
    target = tmp_path / "tides.md"
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, app, "tides?")
        await pilot.press("ctrl+s")
        field = app.screen.query_one("#path-input")
        field.value = str(target)  # type: ignore[attr-defined]
        await pilot.press("enter")
        await pilot.pause()
    text = target.read_text(encoding="utf-8")
    assert "tides?" in text
    assert "The Moon" in text
    assert "https://oceans.example.org/tides" in text


async def test_markup_and_control_sequences_show_literally(tmp_path: Path) -> None:
    payload = "[bold red]x[/] [/foo] \x1b[2Jcleared"
    app = make_app(tmp_path, [payload])
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, app, payload)
        user = str(app.query_one(UserMessage).query_one(".body", Static).render())
        assert user == "[bold red]x[/] [/foo] cleared"  # the escape sequence is dropped
        screen = app.export_screenshot()
        assert "\x1b" not in screen
        # Shown twice, once as the question and once in the answer, as literal text.
        literal = "[bold&#160;red]x[/]&#160;[/foo]&#160;cleared"
        assert screen.count(literal) == 2


async def test_message_sent_before_the_model_is_ready_waits(tmp_path: Path) -> None:
    model = ScriptedModel(["ready now"], load_delay_s=2.0)
    app = make_app(tmp_path, model=model)
    posted: list[object] = []
    async with app.run_test(size=SIZE, message_hook=posted.append) as pilot:
        assert not model.loaded
        app.composer.load_text("hello early")
        await pilot.press("enter")
        await settle(pilot, app)
        waits = [m for m in sent(posted, TurnRunner.StepChanged) if m.stage == "loading"]
        assert waits and "waiting for the model" in waits[0].detail
        assert app.conversation.messages[-1].text == "ready now"
        assert "scripted" in str(app.query_one("#model-status", Static).render())


async def test_model_that_cannot_load_explains_and_history_still_works(tmp_path: Path) -> None:
    seed = make_app(tmp_path, ["old answer"])
    async with seed.run_test(size=SIZE) as pilot:
        await send(pilot, seed, "old question")
    problem = ModelNotAvailable("no weights for microsoft/Phi-3-mini-4k-instruct [here]")
    app = make_app(tmp_path, model=ScriptedModel(load_error=problem))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        panel = app.query_one(ModelProblem)
        shown = " ".join(str(s.render()) for s in panel.query(Static))
        assert "could not be loaded" in shown
        assert "no weights for microsoft/Phi-3-mini-4k-instruct [here]" in shown
        assert "phichat download" in shown
        app.composer.load_text("will this send?")
        await pilot.press("enter")
        await pilot.pause()
        assert app.composer.text == "will this send?"  # kept, not lost
        await pilot.press("ctrl+b", "enter")
        await pilot.pause()
        assert [m.text for m in app.conversation.messages] == ["old question", "old answer"]


async def test_composer_newline_and_recall(tmp_path: Path) -> None:
    app = make_app(tmp_path, ["ok"])
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press(*"line one", "shift+enter", *"two", "ctrl+j", *"three")
        assert app.composer.text == "line one\ntwo\nthree"
        await pilot.press("enter")
        await settle(pilot, app)
        assert app.conversation.messages[0].text == "line one\ntwo\nthree"
        await send(pilot, app, "second prompt")
        await pilot.press("up")
        assert app.composer.text == "second prompt"
        await pilot.press("up")
        assert app.composer.text == "line one\ntwo\nthree"
        await pilot.press("down")
        assert app.composer.text == "second prompt"
        await pilot.press("down")
        assert app.composer.text == ""


async def test_keys_can_be_remapped_and_help_shows_them(tmp_path: Path) -> None:
    app = make_app(tmp_path, ["ok"], keys={"toggle_search": "f10", "nonsense": "f11"})
    async with app.run_test(size=SIZE) as pilot:
        switch = app.query_one("#search-switch", Switch)
        await pilot.press("f10")
        assert switch.value is True
        await pilot.press("ctrl+t")
        assert switch.value is True  # the old key no longer toggles
        await pilot.press("f1")
        table = app.screen.query_one("#key-table", Static)
        rendered = app.export_screenshot()
        assert table is not None
        assert "F10" in rendered and "Web&#160;search&#160;on&#160;or&#160;off" in rendered


async def test_theme_choice_is_remembered(tmp_path: Path) -> None:
    app = make_app(tmp_path, ["ok"])
    async with app.run_test(size=SIZE) as pilot:
        app.theme = "nord"
        await pilot.pause()
    assert ConversationStore(tmp_path / "phichat.db").get_preference("theme") == "nord"
    again = make_app(tmp_path, ["ok"])
    async with again.run_test(size=SIZE):
        assert again.theme == "nord"


async def test_command_palette_offers_every_action(tmp_path: Path) -> None:
    from phichat.ui.keys import KEYS

    app = make_app(tmp_path, ["See [1]."], retriever=FakeRetriever(), search=True)
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, app, "tides")
        titles = {command.title for command in app.get_system_commands(app.screen)}
        for spec in KEYS:
            if spec.scope == "app" and spec.id not in ("quit", "theme"):
                assert spec.description in titles
        assert {"Quit", "Theme"} <= titles
        assert "Open source 1: Tides explained" in titles


async def test_quit_while_answering_does_not_hang(tmp_path: Path) -> None:
    app = make_app(tmp_path, ["slow " * 500], token_delay_s=0.05)
    async with app.run_test(size=SIZE) as pilot:
        app.composer.load_text("go")
        await pilot.press("enter")
        await pilot.pause(0.2)
        await pilot.press("ctrl+q")
    assert app.return_value == 0
    saved = ConversationStore(tmp_path / "phichat.db").list_conversations()
    assert saved and saved[0].message_count == 2  # the partial answer was saved


async def test_tiny_phi3_answers_through_the_app(tmp_path: Path, tiny_phi3) -> None:  # type: ignore[no-untyped-def]
    app = make_app(tmp_path, model=tiny_phi3, max_new_tokens=24)
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, app, "Hello there")
        answer = app.conversation.messages[-1]
        assert answer.role == "assistant" and answer.error is None
        assert answer.timings["new_tokens"] >= 1
        assert answers(app)[0].query_one(Markdown).source == answer.text.replace("\x1b", "")


async def test_view_follows_the_stream_at_the_bottom_and_stays_put_when_scrolled_up(
    tmp_path: Path,
) -> None:
    reply = "\n\n".join(f"Paragraph {i} of a long answer." for i in range(120))
    app = make_app(tmp_path, [reply], token_delay_s=0.01)
    async with app.run_test(size=(100, 24)) as pilot:
        view = app.view
        app.composer.load_text("tell me a lot")
        await pilot.press("enter")
        for _ in range(400):
            await pilot.pause(0.02)
            if view.max_scroll_y > 10:
                break
        await pilot.pause(0.1)
        assert view.max_scroll_y > 10
        assert view.scroll_y == pytest.approx(view.max_scroll_y, abs=2)  # following the tail
        view.scroll_home(animate=False, immediate=True)  # the reader scrolls up
        grown_from = view.max_scroll_y
        for _ in range(400):
            await pilot.pause(0.02)
            if view.max_scroll_y > grown_from + 10:
                break
        assert view.max_scroll_y > grown_from + 10
        assert view.scroll_y == 0  # stayed where the reader put it
        await pilot.press("escape")
        await settle(pilot, app)


async def test_quit_while_the_model_is_still_loading_does_not_wait_for_it(
    tmp_path: Path,
) -> None:
    # The load would take ten minutes; quitting must not wait for it. The bound below
    # turns a hang into a failure instead of a stuck test run.
    model = ScriptedModel(["never"], load_delay_s=600)
    app = make_app(tmp_path, model=model)

    async def run() -> None:
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause(0.1)
            assert not app.loader.ready.is_set()
            await pilot.press("ctrl+q")

    await asyncio.wait_for(run(), timeout=60)
    assert app.return_value == 0


async def test_an_abandoned_turn_never_writes_into_the_next_conversation(tmp_path: Path) -> None:
    reply = " ".join(f"old{i}" for i in range(300))
    model = ScriptedModel([reply, "new answer"], token_delay_s=0.02)
    app = make_app(tmp_path, model=model)
    posted: list[object] = []
    async with app.run_test(size=SIZE, message_hook=posted.append) as pilot:
        app.composer.load_text("first question")
        await pilot.press("enter")
        for _ in range(200):
            await pilot.pause(0.02)
            if len(sent(posted, TurnRunner.TokenArrived)) >= 3:
                break
        old_id = app.conversation.id
        await pilot.press("ctrl+n")  # switch away while the answer is still streaming
        await send(pilot, app, "second question")
        [answer] = answers(app)
        assert answer.query_one(Markdown).source == "new answer"
        assert "old" not in answer.text
        assert [m.text for m in app.conversation.messages] == ["second question", "new answer"]
        old = app.store.load(old_id)
        assert old.messages[-1].stopped and old.messages[-1].text.startswith("old0")


async def test_hostile_source_titles_and_urls_are_shown_as_text_and_never_linked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from phichat.domain import Source, SourcePassage

    hostile = [
        Source(1, "[bold red]Evil[/] [/foo]\x1b]0;pwned\x07 page", "javascript:alert(1)", ()),
        Source(2, "Fine", "https://ok.example.org/", (SourcePassage("[/x] text", 0.5),)),
    ]
    app = make_app(tmp_path, ["Look [1] and [2]."], retriever=FakeRetriever(hostile), search=True)
    opened: list[str] = []
    monkeypatch.setattr(app, "open_url", lambda url, new_tab=True: opened.append(url))
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, app, "q")
        [answer] = answers(app)
        source_list = answer.query_one(SourceList)
        label = source_list.get_option_at_index(0).prompt
        assert str(label).startswith("[1] [bold red]Evil[/] [/foo] page")
        assert "\x1b" not in str(label) and "\x07" not in str(label)
        markdown = answer.query_one(Markdown).source
        assert "javascript:" not in markdown  # cited, but not turned into a link
        assert "[\\[2\\]](<https://ok.example.org/>)" in markdown
        source_list.focus()
        await pilot.press("o")  # the javascript: URL must not reach the browser
        await pilot.pause()
        assert opened == []
        await pilot.press("down", "x")  # the context of source 2 alone
        assert "[/x] text" in str(app.screen.query_one("#context-text", Static).render())


async def test_a_waiting_message_comes_back_if_the_model_then_fails_to_load(
    tmp_path: Path,
) -> None:
    problem = ModelNotAvailable("the weights are missing")
    app = make_app(tmp_path, model=ScriptedModel(load_delay_s=0.3, load_error=problem))
    async with app.run_test(size=SIZE) as pilot:
        app.composer.load_text("sent too early")
        await pilot.press("enter")
        await settle(pilot, app)
        assert app.composer.text == "sent too early"  # given back, not lost
        assert app.conversation.messages == []
        assert not app.query(UserMessage) and not answers(app)
        assert app.query(ModelProblem)


def test_model_problem_advice_fits_the_backend() -> None:
    from phichat.ui.widgets.model_problem import fix_advice

    assert "phichat download microsoft/Phi-3-mini-4k-instruct" in fix_advice(
        "microsoft/Phi-3-mini-4k-instruct"
    )
    assert "--base-url" in fix_advice("x", "openai") and "phichat download" not in fix_advice(
        "x", "openai"
    )
    assert "phichat download --gguf" in fix_advice("x", "gguf")
