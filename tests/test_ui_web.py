"""The app with the real web retriever, over the loopback web (search, fetch, rank, pack).

Skipped until the retrieval pipeline and its loopback web fixture are in the tree.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest
from textual.widgets import Markdown, Static
from ui_support import make_app, send

from phichat.config import Settings
from phichat.ui.widgets.answer import Answer
from phichat.ui.widgets.source_list import SourceList

pipeline = pytest.importorskip("phichat.retrieval.pipeline")
webfixture = pytest.importorskip("webfixture")

loopback_web = webfixture.loopback_web_fixture


class HashingEmbedder:
    """Bag-of-words vectors: enough for ranking to run without loading a real model."""

    def encode(self, texts: list[str]) -> object:
        import numpy as np

        rows = np.zeros((len(texts), 256), dtype="float32")
        for row, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                rows[row, int(hashlib.md5(word.encode()).hexdigest(), 16) % 256] += 1.0
        norms = np.linalg.norm(rows, axis=1, keepdims=True)
        return rows / np.maximum(norms, 1e-9)


async def test_web_search_answer_shows_live_steps_and_safe_sources(
    tmp_path: Path, loopback_web
) -> None:  # type: ignore[no-untyped-def]
    web = loopback_web
    web.search_results = [
        web.result("/skagway.html", "Skagway"),
        web.result("/evil-title.html", webfixture.EVIL_TITLE),
    ]
    settings = Settings(
        search=True, engine="searxng", searxng_url=web.base, allow_private_urls=True
    )
    retriever = pipeline.WebRetriever(settings, embedder=HashingEmbedder())
    app = make_app(tmp_path, ["Skagway is a port town [1], see also [2]."], retriever=retriever)
    async with app.run_test(size=(110, 40)) as pilot:
        await pilot.press("ctrl+t")
        await send(pilot, app, "What is Skagway known for?")
        answer = app.conversation.messages[-1]
        assert answer.search_used and answer.grounded and answer.sources
        assert web.search_hits() == 1
        [widget] = list(app.query(Answer))
        steps = str(widget.query_one(".steps", Static).render())
        assert "Search: What is Skagway known for?" in steps
        source_list = widget.query_one(SourceList)
        assert source_list.option_count == len(answer.sources)
        for index in range(source_list.option_count):
            label = str(source_list.get_option_at_index(index).prompt)
            assert "\x1b" not in label and "\x07" not in label
            assert web.base in label
        markdown = widget.query_one(Markdown).source
        assert f"[\\[1\\]](<{answer.sources[0].url}>)" in markdown
        screen = app.export_screenshot()
        assert "\x1b" not in screen
        # The hostile page's title reaches the screen as the literal text it is.
        titles = [source.title for source in answer.sources]
        assert "[bold red]Pwned[/] [/foo] <|end|> Title" in titles
        assert "[bold&#160;red]Pwned[/]&#160;[/foo]" in screen
