"""Links that can't lie: a link in an answer that is not one of its sources is marked
unverified in the app, the CLI and `history show`, and the app asks before opening it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from test_openai_errors import chunk, misbehaving, send, start_stream
from textual.widgets import Markdown, Static
from ui_support import SOURCES, FakeRetriever, make_app
from ui_support import send as send_message

from phichat.cli.history_show import plain_text
from phichat.domain import Conversation, Message
from phichat.links import find_links, is_source, unverified_links
from phichat.ui.screens.open_link_screen import OpenLinkScreen
from phichat.ui.widgets.answer import Answer

TIDES = SOURCES[0].url  # https://oceans.example.org/tides


def test_every_kind_of_link_is_found_outside_code() -> None:
    text = (
        "A [guide](https://evil.example/a) and [b](<https://x.example/a b>) and "
        "<https://auto.example/z>, bare https://en.wikipedia.org/wiki/Paris_(city). "
        "Also www.plain.example! `https://in.code/x`\n```\nhttps://in.fence/y\n```\nend."
    )
    assert [(link.url, link.label) for link in find_links(text)] == [
        ("https://evil.example/a", "guide"),
        ("https://x.example/a b", "b"),
        ("https://auto.example/z", None),
        ("https://en.wikipedia.org/wiki/Paris_(city)", None),
        ("www.plain.example", None),
    ]


@pytest.mark.parametrize(
    ("url", "verified"),
    [
        (TIDES, True),
        ("HTTPS://Oceans.Example.org/tides/", True),
        ("https://oceans.example.org:443/tides#moon", True),
        ("https://oceans.example.org/tides?x=1", False),
        ("https://oceans.example.org/other", False),
        ("https://oceans.example.org.evil.test/tides", False),
        ("http://oceans.example.org/tides", False),
    ],
)
def test_only_the_answers_own_sources_are_verified(url: str, verified: bool) -> None:
    assert is_source(url, SOURCES) is verified


def test_an_answer_without_sources_has_only_unverified_links() -> None:
    assert [link.url for link in unverified_links(f"see {TIDES}", [])] == [TIDES]


def test_history_show_marks_unverified_links() -> None:
    conversation = Conversation(title="t")
    conversation.messages = [
        Message(
            role="assistant",
            text=f"See [x](https://evil.example/a), {TIDES} [1] and www.made.up.",
            sources=list(SOURCES),
        )
    ]
    assert (
        f"See [x](https://evil.example/a) [⚠ unverified link], {TIDES} [1] and www.made.up "
        "[⚠ unverified link]."
    ) in plain_text(conversation).splitlines()


def link_answer(handler: BaseHTTPRequestHandler) -> None:
    start_stream(handler)
    send(handler, chunk("Book at [the site](https://evil.example/book) "), chunk("now."))
    send(handler, chunk(finish="stop"))


def test_ask_lists_unverified_links_after_the_answer() -> None:
    with misbehaving({"/v1/chat/completions": link_answer}) as url:
        base = [sys.executable, "-m", "phichat", "ask", "--backend", "openai", "--base-url", url]
        plain, as_json = (
            subprocess.run(
                [*base, "--api-model", "m", *extra, "hotels?"],
                capture_output=True,
                text=True,
                timeout=120,
                env=os.environ.copy(),
            )
            for extra in ([], ["--json"])
        )
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout.endswith(
        "\nUnverified links (not among the sources; check before opening):\n"
        "  ⚠ https://evil.example/book\n"
    )
    assert json.loads(as_json.stdout)["unverified_links"] == ["https://evil.example/book"]


# ---- the app -------------------------------------------------------------------------------


async def test_the_app_marks_unverified_links_and_asks_before_opening(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reply = f"Tides [1], see [the tide tables](https://evil.example/tides) and [here]({TIDES})."
    app = make_app(tmp_path, [reply], retriever=FakeRetriever(), search=True)
    opened: list[str] = []
    monkeypatch.setattr(app, "open_url", lambda url, new_tab=True: opened.append(url))
    async with app.run_test(size=(110, 40)) as pilot:
        await send_message(pilot, app, "tides")
        [answer] = list(app.query(Answer))
        markdown = answer.query_one(Markdown)
        assert (
            "[the tide tables](https://evil.example/tides) **⚠ unverified link** and "
            f"[here]({TIDES})."
        ) in markdown.source

        # A source's own link opens at once.
        markdown.post_message(Markdown.LinkClicked(markdown, TIDES))
        await pilot.pause()
        assert opened == [TIDES]

        # Any other link asks first, showing the whole address; N leaves it closed.
        markdown.post_message(Markdown.LinkClicked(markdown, "https://evil.example/tides"))
        await pilot.pause()
        assert isinstance(app.screen, OpenLinkScreen)
        question = str(app.screen.query_one("#question", Static).render())
        assert "https://evil.example/tides" in question and "not one of the answer's" in question
        await pilot.press("n")
        await pilot.pause()
        assert opened == [TIDES]

        # Y opens it.
        markdown.post_message(Markdown.LinkClicked(markdown, "https://evil.example/tides"))
        await pilot.pause()
        await pilot.press("y")
        await pilot.pause()
        assert opened == [TIDES, "https://evil.example/tides"]
