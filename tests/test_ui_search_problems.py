"""In the app, search trouble is one line in the answer's steps, and the turn still answers
(a damaged SearxNG reply used to fail it with "unexpected error: TypeError")."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import Static
from ui_support import make_app, send
from webfixture import LoopbackWeb, loopback_web_fixture  # noqa: F401

from phichat.config import Settings
from phichat.retrieval import search as search_module
from phichat.retrieval.pipeline import WebRetriever
from phichat.ui.widgets.answer import Answer


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(search_module.with_retry, "__defaults__", ((0.0,),))
    monkeypatch.setattr(search_module, "RATE_LIMIT_WAIT_S", 0.0)


@pytest.mark.parametrize(
    ("setup", "line"),
    [
        ({"search_body": b'{"results": null}'}, "search unavailable: SearxNG at"),
        ({"search_status": 429}, "rate-limited: SearxNG at"),
        ({"search_status": 403}, "search engine misconfigured: SearxNG at"),
        ({}, "no results for this query; answering without sources"),
    ],
)
async def test_search_trouble_is_one_line_and_the_answer_still_comes(
    tmp_path: Path, loopback_web: LoopbackWeb, setup: dict[str, object], line: str
) -> None:
    for name, value in setup.items():
        setattr(loopback_web, name, value)
    settings = Settings(
        search=True, engine="searxng", searxng_url=loopback_web.base, allow_private_urls=True
    )
    app = make_app(tmp_path, ["An answer anyway."], retriever=WebRetriever(settings))
    async with app.run_test(size=(110, 40)) as pilot:
        await pilot.press("ctrl+t")
        await send(pilot, app, "Skagway?")
        answer = app.conversation.messages[-1]
        assert answer.role == "assistant" and answer.text == "An answer anyway."
        assert answer.error is None and not answer.grounded
        [widget] = list(app.query(Answer))
        steps = " ".join(str(widget.query_one(".steps", Static).render()).split())
        assert line in steps
        assert "unexpected error" not in steps and not widget.has_class("failed")
