"""A question and an answer on their own, under the real stylesheet: untrusted text stays text."""

from __future__ import annotations

from widget_host import WidgetHost, screen_text

from phichat.domain import Message, Source, SourcePassage
from phichat.ui.widgets.answer import Answer
from phichat.ui.widgets.source_list import SourceList
from phichat.ui.widgets.user_message import UserMessage

SIZE = (100, 30)
MARKUP = "[bold]loud[/bold] [@click=app.quit]quit[/]"
TOWER = Source(1, "[b]Tower[/b] facts", "https://facts.example/tower", (SourcePassage("330 m"),))


async def test_a_question_shows_markup_literally_and_drops_terminal_escapes() -> None:
    app = WidgetHost(UserMessage(Message("user", f"{MARKUP} \x1b[31mred\x1b[0m \u202eflip")))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        text = screen_text(app)
        assert "You" in text
        assert f"{MARKUP} red flip" in text
        assert "\x1b" not in text and "\u202e" not in text
        assert app.is_running  # the [@click=app.quit] was never an action


async def test_a_finished_answer_shows_its_text_badge_citation_and_safe_sources() -> None:
    message = Message(
        "assistant",
        "It is [red]330 m[/red] tall [1], or so says [2].",
        search_used=True,
        grounded=True,
        sources=[TOWER],
    )
    app = WidgetHost(Answer(search=True, message=message))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        text = screen_text(app)
        assert "Assistant" in text and "web search" in text
        assert "It is [red]330 m[/red] tall [1], or so says [2?]." in text
        assert "[1] [b]Tower[/b] facts — facts.example" in text
        assert app.query_one(SourceList).sources == [TOWER]


async def test_a_streamed_answer_keeps_each_piece_and_drops_control_characters() -> None:
    answer = Answer(search=False)
    app = WidgetHost(answer)
    async with app.run_test(size=SIZE) as pilot:
        for piece in ["Tides ", "[i]follow[/i]\x07 ", "the \x1b[2JMoon."]:
            await answer.append(piece)
        await answer.finish(Message("assistant", answer.text))
        await pilot.pause()
        assert answer.text == "Tides [i]follow[/i] the Moon."
        text = screen_text(app)
        assert "no search" in text and "Tides [i]follow[/i] the Moon." in text


async def test_a_stopped_answer_is_badged_and_says_the_partial_text_is_kept() -> None:
    message = Message("assistant", "Half an answer", stopped=True)
    app = WidgetHost(Answer(search=False, message=message))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        text = screen_text(app)
        [header] = [line for line in text.splitlines() if "Assistant" in line]
        assert "no search" in header and "stopped" in header
        assert "Stopped by you; the partial answer is kept." in text


async def test_a_failed_turn_keeps_what_was_streamed_and_shows_the_error_as_text() -> None:
    answer = Answer(search=False)
    app = WidgetHost(answer)
    async with app.run_test(size=SIZE) as pilot:
        await answer.append("Partly there")
        await answer.fail(f"model server said {MARKUP}\nsecond line")
        await pilot.pause()
        text = screen_text(app)
        assert "Partly there" in text
        assert f"✖ model server said {MARKUP} second line" in text
        assert answer.has_class("failed")
