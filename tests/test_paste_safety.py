"""A paste never runs a command: raw terminal bytes through the guarded parser, and the app."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual import events
from textual.drivers import linux_driver
from textual.drivers.linux_driver import LinuxDriver
from ui_support import make_app, send, settle

from phichat.ui.pastesafe import (
    PASTE_END,
    PASTE_START,
    PasteGuard,
    PasteSafeParser,
    clean_paste,
    install_paste_guard,
)

SIZE = (110, 40)

HOSTILE_PASTES = [
    "abc\x1b]0;T\x07def",  # copied shell-prompt output: an OSC title ending in BEL
    "abc\x1b[2Jdef",  # clear the screen
    "x\x1b\rsent",  # ESC then CR: Enter
    "abc\x1b" + "y" * 40 + "\x12z",  # longer than the parser's sequence search
    "one\x1b\x1b[201",  # ESCs and most of a closing marker
]


def parse(chunks: list[str]) -> list[object]:
    parser = PasteSafeParser()
    parsed: list[object] = []
    for chunk in chunks:
        parsed.extend(parser.feed(chunk))
    parsed.extend(parser.tick())
    return parsed


@pytest.mark.parametrize("payload", HOSTILE_PASTES)
def test_a_bracketed_paste_parses_as_one_paste_and_no_keys(payload: str) -> None:
    parsed = parse([PASTE_START + payload + PASTE_END])
    assert [type(e) for e in parsed] == [events.Paste]
    [paste] = parsed
    assert isinstance(paste, events.Paste)
    assert clean_paste(paste.text) == clean_paste(payload)
    assert "\x1b" not in clean_paste(paste.text) and "\x07" not in clean_paste(paste.text)


def test_a_paste_split_across_reads_anywhere_is_still_one_paste() -> None:
    stream = PASTE_START + "abc\x1b]0;T\x07def" + PASTE_END + "k"
    for cut in range(1, len(stream)):
        parsed = parse([stream[:cut], stream[cut:]])
        kinds = [type(e) for e in parsed]
        assert kinds == [events.Paste, events.Key], cut
        assert clean_paste(parsed[0].text) == "abcdef"  # type: ignore[attr-defined]


def test_keys_outside_a_paste_are_untouched() -> None:
    guard = PasteGuard()
    typed = "hi\x1b[A\x07\x1b"
    assert guard.filter(typed) == typed
    parsed = parse(["\x07", "\x1b[A"])
    assert [getattr(e, "key", None) for e in parsed] == ["ctrl+g", "up"]


def test_clean_paste_keeps_text_newlines_and_tabs() -> None:
    assert clean_paste("a\r\nb\rc\td\x1b[31mred\x1b[0m") == "a\nb\nc\tdred"


def test_the_guard_is_what_textuals_terminal_driver_builds() -> None:
    # The driver looks the parser up by this module-level name: if Textual changes that,
    # the guard no longer applies and this fails.
    assert "XTermParser" in LinuxDriver.run_input_thread.__code__.co_names
    install_paste_guard()
    assert linux_driver.XTermParser is PasteSafeParser


def test_terminal_input_that_is_not_utf8_is_replaced_not_fatal() -> None:
    # The driver builds its decoder from this module-level name, as with the parser.
    assert "getincrementaldecoder" in LinuxDriver.run_input_thread.__code__.co_names
    install_paste_guard()
    decode = linux_driver.getincrementaldecoder("utf-8")().decode
    assert decode(b"caf\xe9 \xff ok", final=False) == "caf\ufffd \ufffd ok"
    # A character split across two reads still decodes whole.
    assert decode(b"\xc3", final=False) == ""
    assert decode(b"\xa9!", final=False) == "\u00e9!"


async def test_a_hostile_paste_after_an_answer_fires_no_binding(tmp_path: Path) -> None:
    app = make_app(tmp_path, ["The Moon.", "replaced!"])
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, app, "What causes tides?")
        raw = PASTE_START + "abc\x1b]0;T\x07def \x1b[2Jghi" + PASTE_END
        for event in parse([raw]):
            app.post_message(event)  # type: ignore[arg-type]
        await pilot.pause()
        await settle(pilot, app)
        assert app.composer.text == "abcdef ghi"
        assert app.composer.cursor_location == (0, len("abcdef ghi"))
        assert [m.text for m in app.conversation.messages] == ["What causes tides?", "The Moon."]


async def test_a_paste_event_with_control_sequences_becomes_inert_text(tmp_path: Path) -> None:
    app = make_app(tmp_path, ["The Moon."])
    async with app.run_test(size=SIZE) as pilot:
        app.post_message(events.Paste("abc\x1b]0;T\x07def\r\nline two\x1b[2J\x00"))
        await pilot.pause()
        assert app.composer.text == "abcdef\nline two"


@pytest.mark.parametrize("screen_kind", ["rename", "export"])
async def test_a_paste_into_a_dialog_field_keeps_only_its_text(
    tmp_path: Path, screen_kind: str
) -> None:
    from textual.widgets import Input

    from phichat.ui.screens.export_screen import ExportScreen
    from phichat.ui.screens.rename_screen import RenameScreen

    app = make_app(tmp_path, ["The Moon."])
    async with app.run_test(size=SIZE) as pilot:
        screen = RenameScreen("") if screen_kind == "rename" else ExportScreen(Path(""))
        await app.push_screen(screen)
        await pilot.pause()
        field = screen.query_one(Input)
        field.value = ""
        field.focus()
        await pilot.pause()
        field.post_message(events.Paste("Trip\x1b]0;T\x07 to\u202e Rome\x1b[2J\r\nsecond line"))
        await pilot.pause()
        assert field.value == "Trip to Rome"


async def test_a_renamed_title_keeps_no_control_characters(tmp_path: Path) -> None:
    from phichat.ui.screens.rename_screen import RenameScreen

    app = make_app(tmp_path, ["The Moon."])
    results: list[str | None] = []
    async with app.run_test(size=SIZE) as pilot:
        await app.push_screen(RenameScreen("Old\x07 title\u200b"), results.append)
        await pilot.pause()
        await pilot.press("end", "enter")
        await pilot.pause()
    assert results == ["Old title"]
