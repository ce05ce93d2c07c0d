"""Pilot tests: compare (F5): two columns, the summary, reopening, and its failure paths."""

from __future__ import annotations

from pathlib import Path

from ui_support import FakeRetriever, make_app, plain, send, settle
from webfixture import loopback_web_fixture  # noqa: F401

from phichat.errors import ModelNotAvailable
from phichat.models.scripted import ScriptedModel
from phichat.ui.widgets.answer import Answer
from phichat.ui.widgets.compare_summary_view import CompareSummaryView, summary_renderable
from phichat.ui.widgets.compare_view import CompareView
from phichat.ui.widgets.conversation_list import ConversationList
from phichat.ui.widgets.turn_runner import TurnRunner
from phichat.ui.widgets.user_message import UserMessage

SIZE = (120, 44)


def sides(posted: list[object]) -> dict[str, str]:
    unique = {id(m): m for m in posted if isinstance(m, TurnRunner.TokenArrived)}
    text: dict[str, str] = {}
    for message in unique.values():
        text[message.side] = text.get(message.side, "") + message.text
    return text


def summary_text(app) -> str:  # type: ignore[no-untyped-def]
    summary = app.query_one(CompareSummaryView).summary
    assert summary is not None
    return plain(summary_renderable(summary))


async def test_f5_streams_two_columns_then_a_summary_and_the_compare_reopens(
    tmp_path: Path,
) -> None:
    posted: list[object] = []
    retriever = FakeRetriever()
    app = make_app(
        tmp_path, ["It is about 5 km away.", "It is 7 km away [1]."], retriever=retriever
    )
    async with app.run_test(size=SIZE, message_hook=posted.append) as pilot:
        await settle(pilot, app)
        app.composer.load_text("How far is the lighthouse?")
        await pilot.press("f5")
        await settle(pilot, app)
        assert sides(posted) == {
            "without": "It is about 5 km away.",
            "with": "It is 7 km away [1].",
        }
        compare = app.query_one(CompareView)
        assert compare.answer("without").text == "It is about 5 km away."
        assert compare.answer("with").sources and not compare.answer("without").sources
        text = summary_text(app)
        assert "first token" in text and "2 sources packed · 1 cited" in text
        assert "5 km" in text and "7 km" in text
        assert retriever.queries == ["How far is the lighthouse?"]
        assert app.composer.text == ""
        conversation_id = app.conversation.id
        saved = app.store.load(conversation_id)
        assert [m.compare_side for m in saved.messages] == [None, "without", "with"]
        # Reopen it: a new conversation, then back through the sidebar's open path.
        await pilot.press("ctrl+n")
        await settle(pilot, app)
        assert not app.query(CompareView)
        app.post_message(ConversationList.Opened(conversation_id))
        await settle(pilot, app)
        reopened = app.query_one(CompareView)
        assert reopened.answer("with").text == "It is 7 km away [1]."
        assert "1 cited" in summary_text(app)


async def test_f5_with_an_empty_box_compares_the_last_question_again(tmp_path: Path) -> None:
    app = make_app(tmp_path, ["First.", "Off.", "On [1]."], retriever=FakeRetriever())
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, app, "Q?")
        assert len(app.query(Answer)) == 1
        await pilot.press("f5")
        await settle(pilot, app)
        assert [m.text for m in app.conversation.messages] == ["Q?", "Off.", "On [1]."]
        assert len(app.query(Answer)) == 2 and len(app.query(CompareView)) == 1


async def test_f5_with_nothing_to_compare_says_how(tmp_path: Path) -> None:
    posted: list[object] = []
    app = make_app(tmp_path, ["x"], retriever=FakeRetriever())
    async with app.run_test(size=SIZE, message_hook=posted.append) as pilot:
        await settle(pilot, app)
        await pilot.press("f5")
        await pilot.pause()
        assert not app.query(CompareView) and not app.runner.running


async def test_a_compare_that_never_starts_gives_the_question_back(tmp_path: Path) -> None:
    model = ScriptedModel(
        ["x"], load_delay_s=0.3, load_error=ModelNotAvailable("no weights on this machine")
    )
    app = make_app(tmp_path, model=model, retriever=FakeRetriever())
    async with app.run_test(size=SIZE) as pilot:
        app.composer.load_text("Is it worth the trip?")
        await pilot.press("f5")  # the model is still loading: the compare waits, then fails
        await settle(pilot, app)
        assert not app.query(CompareView) and app.conversation.messages == []
        assert app.composer.text == "Is it worth the trip?"
        assert not app.query(UserMessage)


class WordBucketEmbedder:
    """Words counted into 64 buckets: ranking runs without loading a sentence model."""

    def encode(self, texts: list[str]) -> object:
        import zlib

        import numpy as np

        rows = np.zeros((len(texts), 64), dtype="float32")
        for row, text in enumerate(texts):
            for word in text.lower().split():
                rows[row, zlib.crc32(word.encode()) % 64] += 1.0
        return rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-9)


async def test_compare_over_the_loopback_web_with_the_real_retriever(
    tmp_path: Path, loopback_web
) -> None:  # type: ignore[no-untyped-def]
    from phichat.config import Settings
    from phichat.retrieval.pipeline import WebRetriever

    web = loopback_web
    web.search_results = [web.result("/skagway.html", "Skagway")]
    settings = Settings(engine="searxng", searxng_url=web.base, allow_private_urls=True)
    retriever = WebRetriever(settings, embedder=WordBucketEmbedder())
    app = make_app(tmp_path, ["A quiet port.", "A gold-rush port town [1]."], retriever=retriever)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        app.composer.load_text("What is Skagway known for?")
        await pilot.press("f5")
        await settle(pilot, app)
        assert web.search_hits() == 1
        compare = app.query_one(CompareView)
        grounded = compare.answer("with")
        assert grounded.sources and grounded.sources[0].url == web.url("/skagway.html")
        assert not compare.answer("without").sources
        assert "1 cited" in summary_text(app)


async def test_compare_summary_skips_the_question_and_shows_a_conflict(tmp_path: Path) -> None:
    from phichat.domain import Source, SourcePassage

    sources = [
        Source(1, "Tower facts", "https://facts.example/", (SourcePassage("It is 330 m high."),))
    ]
    app = make_app(
        tmp_path,
        ["The Eiffel Tower is 300 metres tall.", "The Eiffel Tower is 330 m tall [1]."],
        retriever=FakeRetriever(sources),
    )
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        app.composer.load_text("How tall is the Eiffel Tower?")
        await pilot.press("f5")
        await settle(pilot, app)
        text = summary_text(app)
        summary = app.query_one(CompareSummaryView).summary
        assert summary is not None and summary.unique_facts == ()
        assert [(c.without, c.with_search, c.backed, c.source) for c in summary.conflicts] == [
            ("300 metres", "330 m", "with", 1)
        ]
        assert "⚠ disagree: 300 metres (without) vs" in text and "source [1] says" in text
        assert "Eiffel Tower" not in text
        # Reopened from the database, the summary still knows the question.
        conversation_id = app.conversation.id
        await pilot.press("ctrl+n")
        await settle(pilot, app)
        app.post_message(ConversationList.Opened(conversation_id))
        await settle(pilot, app)
        assert "Eiffel Tower" not in summary_text(app)
        assert "disagree" in summary_text(app)
