"""The message box on its own, under the real stylesheet: sending, holding, recall, give-back."""

from __future__ import annotations

from widget_host import WidgetHost, posted_of, screen_text

from phichat.ui.widgets.composer import BUSY, Composer

SIZE = (70, 16)


def host() -> tuple[WidgetHost, Composer]:
    composer = Composer(id="composer")
    return WidgetHost(composer), composer


async def test_the_stylesheet_sizes_the_box_to_its_text_between_three_and_ten_rows() -> None:
    app, composer = host()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert "Ask anything. Enter sends, Shift+Enter adds a line." in screen_text(app)
        assert composer.outer_size.height == 3  # one line inside its border
        composer.load_text("\n".join(f"line {n}" for n in range(20)))
        await pilot.pause()
        assert composer.outer_size.height == 10  # #composer's max-height


async def test_enter_sends_the_stripped_text_then_holds_until_released() -> None:
    app, composer = host()
    posted: list[object] = []
    async with app.run_test(size=SIZE, message_hook=posted.append) as pilot:
        composer.focus()
        composer.load_text("  How far is it?  \n")
        await pilot.press("enter")
        await pilot.pause()
        assert [m.text for m in posted_of(posted, Composer.Submitted)] == ["How far is it?"]
        assert composer.text == ""
        # The app has not started the turn yet: a second Enter keeps the text and says why.
        composer.load_text("And back?")
        await pilot.press("enter")
        await pilot.pause()
        assert len(posted_of(posted, Composer.Submitted)) == 1
        assert composer.text == "And back?"
        assert [n.message for n in app._notifications] == [BUSY]
        composer.release()
        await pilot.press("enter")
        await pilot.pause()
        assert [m.text for m in posted_of(posted, Composer.Submitted)][-1] == "And back?"


async def test_shift_enter_adds_a_line_and_nothing_is_sent() -> None:
    app, composer = host()
    posted: list[object] = []
    async with app.run_test(size=SIZE, message_hook=posted.append) as pilot:
        composer.focus()
        await pilot.press("a", "shift+enter", "b")
        await pilot.pause()
        assert composer.text == "a\nb"
        assert posted_of(posted, Composer.Submitted) == []


async def test_up_and_down_walk_the_earlier_prompts_and_come_back_to_the_draft() -> None:
    app, composer = host()
    async with app.run_test(size=SIZE) as pilot:
        composer.remember(["first", "  ", "second"])
        composer.focus()
        await pilot.press("d", "r", "a", "f", "t")
        await pilot.press("up")
        assert composer.text == "second"
        await pilot.press("up")
        assert composer.text == "first"
        await pilot.press("up")  # the oldest: stays
        assert composer.text == "first"
        await pilot.press("down", "down")
        assert composer.text == "draft"


async def test_text_given_back_goes_before_what_was_typed_since() -> None:
    app, composer = host()
    async with app.run_test(size=SIZE) as pilot:
        composer.hold("busy")
        composer.load_text("typed meanwhile")
        composer.give_back("the question that was not sent")
        await pilot.pause()
        assert composer.text == "the question that was not sent\ntyped meanwhile"
        assert composer.cursor_location == composer.document.end
        lines = screen_text(app)
        assert "the question that was not sent" in lines and "typed meanwhile" in lines
