"""The list of sources on its own, inside an answer's styles: safe labels, links and keys."""

from __future__ import annotations

from widget_host import WidgetHost, posted_of, screen_lines, screen_text

from phichat.domain import Source
from phichat.ui.widgets.source_list import SourceList

SIZE = (100, 20)
SOURCES = [
    Source(1, "Guide\u202e [b]evil[/b]\x1b[2J", "javascript:alert(1)"),
    Source(2, "Spring and neap tides", "https://www.sea.example.com/spring-neap"),
]


def links_on_screen(app: WidgetHost) -> set[str]:
    return {
        segment.style.link
        for strip in app.screen._compositor.render_strips()
        for segment in strip
        if segment.style is not None and segment.style.link
    }


async def test_titles_show_as_text_and_only_safe_urls_are_links() -> None:
    app = WidgetHost(SourceList(SOURCES), within="answer")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        text = screen_text(app)
        top = next(line for line in screen_lines(app) if line.strip())
        assert "╭─ Sources ─" in top  # the round border .answer SourceList gives it
        assert "[1] Guide [b]evil[/b]" in text
        assert "\u202e" not in text and "\x1b" not in text
        assert "[2] Spring and neap tides — sea.example.com" in text
        assert "javascript:alert(1)" in text  # shown, so the reader sees it...
        assert links_on_screen(app) == {"https://www.sea.example.com/spring-neap"}  # ...not linked


async def test_open_copy_and_context_keys_ask_for_the_highlighted_source() -> None:
    sources = SourceList(SOURCES)
    app = WidgetHost(sources, within="answer")
    posted: list[object] = []
    async with app.run_test(size=SIZE, message_hook=posted.append) as pilot:
        sources.focus()
        sources.select_number(2)
        await pilot.press("o", "c", "x")
        await pilot.pause()
        opened = posted_of(posted, SourceList.OpenRequested)
        copied = posted_of(posted, SourceList.CopyRequested)
        context = posted_of(posted, SourceList.ContextRequested)
        assert [m.url for m in opened] == ["https://www.sea.example.com/spring-neap"]
        assert [m.url for m in copied] == ["https://www.sea.example.com/spring-neap"]
        assert [(m.number, m.sources) for m in context] == [(2, SOURCES)]


async def test_an_empty_list_cannot_take_the_focus() -> None:
    app = WidgetHost(SourceList([]), within="answer")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert app.focused is None
