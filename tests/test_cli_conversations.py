"""Conversations from the shell: `ask` and `compare` save to history, `-c` and `--cid`
continue one, `history show` prints one, `phichat --cid` opens the app on one.

The CLI runs in real subprocesses (the tiny random Phi-3, or the openai backend against a
loopback server); they share this test's private data folder through the environment.
"""

from __future__ import annotations

import json
import os
import pty
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from test_openai_errors import chunk, misbehaving, send, start_stream
from ui_support import make_app, settle

from phichat.cli import main
from phichat.domain import Conversation, Message, Source
from phichat.storage import ConversationStore


def phichat(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "phichat", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=os.environ.copy(),
    )


def ask(model: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return phichat("ask", "--model", str(model), "--max-new-tokens", "4", *args)


def stored() -> list[Conversation]:
    with ConversationStore() as store:
        return [store.load(summary.id) for summary in store.list_conversations()]


def test_ask_saves_the_question_and_the_answer_with_timings(tiny_phi3_path: Path) -> None:
    result = ask(tiny_phi3_path, "--json", "Where is Lisbon?")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    [conversation] = stored()
    assert data["conversation_id"] == conversation.id
    assert f"saved in conversation {conversation.id}" in result.stderr
    user, answer = conversation.messages
    assert (user.role, user.text) == ("user", "Where is Lisbon?")
    assert conversation.title == "Where is Lisbon?"
    assert answer.role == "assistant" and answer.text == data["answer"]
    assert answer.timings["new_tokens"] == 4
    assert answer.timings["load_s"] > 0 and answer.timings["total_s"] > 0


def test_no_save_flag_and_setting_save_nothing(
    tiny_phi3_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = ask(tiny_phi3_path, "--no-save", "--json", "hi")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["conversation_id"] is None
    monkeypatch.setenv("PHICHAT_SAVE_HISTORY", "false")
    assert ask(tiny_phi3_path, "hi").returncode == 0
    assert stored() == []


def test_continue_answers_with_the_history_like_the_app(tiny_phi3_path: Path) -> None:
    first = ask(tiny_phi3_path, "--json", "Plan a day in Lisbon")
    assert first.returncode == 0, first.stderr
    fresh = json.loads(ask(tiny_phi3_path, "--no-save", "--json", "and hotels?").stdout)
    followup = ask(tiny_phi3_path, "-c", "--json", "and hotels?")
    assert followup.returncode == 0, followup.stderr
    data = json.loads(followup.stdout)
    [conversation] = stored()
    assert data["conversation_id"] == conversation.id
    assert [m.text for m in conversation.messages if m.role == "user"] == [
        "Plan a day in Lisbon",
        "and hotels?",
    ]
    # The earlier turn went into the prompt: the same question costs more tokens.
    assert data["timings"]["prompt_tokens"] > fresh["timings"]["prompt_tokens"]


def test_continue_by_id_prefix_and_bad_prefixes(tiny_phi3_path: Path) -> None:
    with ConversationStore() as store:
        for cid in ("abcd00000001", "abcd00000002", "ffff00000003"):
            conversation = Conversation(id=cid, title=cid)
            message = Message(role="user", text=f"first of {cid}")
            conversation.messages.append(message)
            store.save_message(conversation, message)
    result = ask(tiny_phi3_path, "--cid", "abcd00000001", "again")
    assert result.returncode == 0, result.stderr
    by_id = {c.id: c for c in stored()}
    assert [(m.role, m.text) for m in by_id["abcd00000001"].messages][:2] == [
        ("user", "first of abcd00000001"),
        ("user", "again"),
    ]
    assert by_id["abcd00000001"].messages[2].role == "assistant"
    assert len(by_id["ffff00000003"].messages) == 1

    for prefix, expected in [("abcd", "matches 2 conversations"), ("zz", "no saved conversation")]:
        bad = ask(tiny_phi3_path, "--cid", prefix, "again")
        assert bad.returncode == 2
        assert bad.stdout == ""
        assert bad.stderr.count("\n") == 1 and bad.stderr.startswith("phichat: ")
        assert expected in bad.stderr


def test_continue_with_nothing_saved_is_one_line(tiny_phi3_path: Path) -> None:
    result = ask(tiny_phi3_path, "-c", "hi")
    assert result.returncode == 2
    assert result.stderr == "phichat: there is no saved conversation to continue yet\n"


def test_follow_up_search_query_is_the_sessions(tiny_phi3_path: Path, tiny_phi3) -> None:  # type: ignore[no-untyped-def]
    from webfixture import LoopbackWeb

    from phichat.chat.factory import create_session
    from phichat.config import load_settings

    web = LoopbackWeb().start()
    try:
        searx = ["--search", "--engine", "searxng", "--searxng-url", web.base]
        assert ask(tiny_phi3_path, "Plan a day in Lisbon").returncode == 0
        result = ask(tiny_phi3_path, "-c", "--json", *searx, "and hotels?")
        assert result.returncode == 0, result.stderr
    finally:
        web.stop()
    [conversation] = stored()
    history = conversation.messages[:2]
    session = create_session(load_settings({"model": str(tiny_phi3_path)}), model=tiny_phi3)
    expected = session.retrieval_query(history, "and hotels?", threading.Event())
    assert json.loads(result.stdout)["query"] == expected
    assert conversation.messages[-1].query == expected


def steady_answer(handler: BaseHTTPRequestHandler) -> None:
    """An answer that keeps coming, a word every 0.2 s (the process is killed meanwhile)."""
    start_stream(handler)
    for index in range(300):
        send(handler, chunk(f"word{index} "))
        time.sleep(0.2)


def test_kill_9_mid_answer_keeps_what_was_printed(tmp_path: Path) -> None:
    with misbehaving({"/v1/chat/completions": steady_answer}) as url:
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "phichat", "ask", "--backend", "openai"),
                *("--base-url", url, "--api-model", "m", "Tell me about Lisbon"),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=os.environ.copy(),
        )
        try:
            assert process.stdout is not None
            printed = b""
            while b"word2 " not in printed:
                printed += os.read(process.stdout.fileno(), 100)
            # The answer is checkpointed about once a second while it streams: wait for the
            # first checkpoint, then kill the process with no chance to clean up.
            for _ in range(400):
                answers = [m for c in stored() for m in c.messages if m.role == "assistant"]
                if answers and answers[0].text:
                    break
                time.sleep(0.05)
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)
            printed += process.stdout.read()
        finally:
            if process.poll() is None:
                process.kill()
    [conversation] = stored()
    user, answer = conversation.messages
    assert user.text == "Tell me about Lisbon"
    assert answer.text.startswith("word0 word1 ")
    assert printed.decode().startswith(answer.text)  # nothing but what was shown
    assert answer.stopped  # it never finished


def test_compare_saves_both_answers_and_can_continue(tiny_phi3_path: Path) -> None:
    from webfixture import LoopbackWeb

    web = LoopbackWeb().start()
    try:
        searx = ["--engine", "searxng", "--searxng-url", web.base]
        first = phichat(
            "compare", "--model", str(tiny_phi3_path), "--max-new-tokens", "3", *searx, "q one"
        )
        assert first.returncode == 0, first.stderr
        again = phichat(
            "compare",
            "--model",
            str(tiny_phi3_path),
            "--max-new-tokens",
            "3",
            "-c",
            *searx,
            "q two",
        )
        assert again.returncode == 0, again.stderr
    finally:
        web.stop()
    [conversation] = stored()
    assert [(m.role, m.compare_side) for m in conversation.messages] == [
        ("user", None),
        ("assistant", "without"),
        ("assistant", "with"),
    ] * 2


# ---- history show ------------------------------------------------------------------------


@pytest.fixture
def paris() -> Conversation:
    conversation = Conversation(id="aaaa11112222", title="Capital \x1b[2Jof France")
    messages = [
        Message(role="user", text="What is the capital of France?"),
        Message(
            role="assistant",
            text="Paris [1], on the Seine [2].\nSee [3].",
            search_used=True,
            grounded=True,
            query="capital of France",
            sources=[
                Source(1, "Paris [bold]guide[/]", "https://example.org/paris"),
                Source(2, "The Seine", "https://example.org/seine"),
            ],
        ),
    ]
    with ConversationStore() as store:
        for message in messages:
            conversation.messages.append(message)
            store.save_message(conversation, message)
    return conversation


def test_history_show_prints_answers_citations_and_sources(paris: Conversation) -> None:
    result = phichat("history", "show", "aaaa1")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "Capital of France"
    assert lines[1].startswith("conversation aaaa11112222, started ")
    assert lines[2:] == [
        "",
        "You",
        "What is the capital of France?",
        "",
        "phichat  [web search, 2 sources]",
        "searched for: capital of France",
        "Paris [1], on the Seine [2].",
        "See [3?].",
        "",
        "Sources:",
        "  [1] Paris [bold]guide[/] <https://example.org/paris>",
        "  [2] The Seine <https://example.org/seine>",
    ]


def test_history_show_json_gives_the_stored_records(paris: Conversation) -> None:
    result = phichat("history", "show", "aaaa11112222", "--json")
    data = json.loads(result.stdout)
    assert data["id"] == "aaaa11112222"
    answer = data["messages"][1]
    assert answer["query"] == "capital of France" and answer["grounded"] is True
    assert answer["sources"][1] == {
        "n": 2,
        "title": "The Seine",
        "url": "https://example.org/seine",
        "passages": [],
    }


def test_history_show_on_a_terminal_is_rendered(paris: Conversation) -> None:
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "phichat", "history", "show", "aaaa1"],
        stdout=follower,
        stderr=subprocess.PIPE,
        env={**os.environ, "TERM": "xterm-256color", "COLUMNS": "100"},
    )
    os.close(follower)
    output = b""
    while True:
        try:
            piece = os.read(leader, 4096)
        except OSError:  # the other end closed
            break
        if not piece:
            break
        output += piece
    assert process.wait(timeout=60) == 0
    os.close(leader)
    text = output.decode()
    assert "\x1b[" in text  # styled
    assert "\x1b[2J" not in text  # the title's escape sequence is not passed on
    assert "Paris [bold]guide[/]" in text  # stored text stays literal
    assert "[3?]" in text


def test_history_show_with_an_unknown_id_is_one_line() -> None:
    result = phichat("history", "show", "nope")
    assert result.returncode == 2
    assert result.stderr == "phichat: no saved conversation has an id starting with 'nope'\n"


# ---- phichat --cid -----------------------------------------------------------------------


def test_cid_opens_the_app_on_that_conversation(
    paris: Conversation, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[Conversation | None] = []
    monkeypatch.setattr(
        "phichat.ui.app.run_app",
        lambda settings, conversation=None: opened.append(conversation) or 0,
    )
    assert main(["--cid", "aaaa1"]) == 0
    [conversation] = opened
    assert conversation is not None and conversation.id == "aaaa11112222"
    assert [m.text for m in conversation.messages] == [m.text for m in paris.messages]


def test_cid_with_an_unknown_id_does_not_open_the_app() -> None:
    result = phichat("--cid", "zzzz")
    assert result.returncode == 2
    assert result.stderr == "phichat: no saved conversation has an id starting with 'zzzz'\n"


async def test_the_app_shows_the_conversation_it_was_opened_on(
    paris: Conversation, tmp_path: Path
) -> None:
    from phichat.ui.app import PhichatApp
    from phichat.ui.widgets.answer import Answer

    wired = make_app(tmp_path, ["And it has 20 arrondissements."])
    store = ConversationStore()
    app = PhichatApp(
        wired.settings, session=wired.session, store=store, conversation=store.load("aaaa11112222")
    )
    wired.session.store = store
    async with app.run_test(size=(100, 40)) as pilot:
        await settle(pilot, app)
        [answer] = list(app.query(Answer))
        assert answer.message is not None and answer.message.text.startswith("Paris [1]")
        app.composer.load_text("How many districts?")
        await pilot.press("enter")
        await settle(pilot, app)
        assert [m.text for m in app.conversation.messages if m.role == "user"][-1] == (
            "How many districts?"
        )
        assert len(app.conversation.messages) == 4
