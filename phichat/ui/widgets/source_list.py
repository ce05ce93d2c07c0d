"""The numbered sources of one answer: title, site and URL; open, copy, or show context."""

from __future__ import annotations

from dataclasses import dataclass

from rich.style import Style
from rich.text import Text
from textual.message import Message
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from phichat.domain import Source
from phichat.textsafe import one_line
from phichat.ui.keys import bindings
from phichat.ui.untrusted import display_title, safe_url


def source_label(source: Source) -> Text:
    """``[n] Title — site`` over the URL; the URL is a terminal hyperlink when it is safe."""
    text = Text()
    text.append(f"[{source.n}] ", style="bold")
    text.append(display_title(source))
    if source.site:
        text.append(f" — {one_line(source.site, 60)}", style="dim")
    text.append("\n    ")
    url = safe_url(source.url)
    shown = one_line(source.url, 200)
    text.append(shown, style=Style(underline=True, link=url) if url else Style(dim=True))
    return text


class SourceList(OptionList):
    BINDINGS = bindings("sources")

    @dataclass
    class OpenRequested(Message):
        url: str

    @dataclass
    class CopyRequested(Message):
        url: str

    @dataclass
    class ContextRequested(Message):
        sources: list[Source]
        number: int | None

    def __init__(self, sources: list[Source]) -> None:
        super().__init__(*[Option(source_label(s), id=f"source-{s.n}") for s in sources])
        self.sources = list(sources)
        self.can_focus = bool(sources)
        self.border_title = "Sources"

    @property
    def current(self) -> Source | None:
        if self.highlighted is None or not self.sources:
            return None
        return self.sources[self.highlighted]

    def select_number(self, number: int) -> None:
        for index, source in enumerate(self.sources):
            if source.n == number:
                self.highlighted = index

    def action_open_source(self) -> None:
        source = self.current
        if source is not None:
            self.post_message(self.OpenRequested(source.url))

    def action_copy_source(self) -> None:
        source = self.current
        if source is not None:
            self.post_message(self.CopyRequested(source.url))

    def action_source_context(self) -> None:
        source = self.current
        self.post_message(self.ContextRequested(self.sources, source.n if source else None))

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        # A mouse click selects too; Enter is bound to open_source above.
        event.stop()
        self.action_open_source()
