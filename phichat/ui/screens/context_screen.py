"""The "show context" view: each source with the passages packed into the prompt, scored."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from phichat.domain import Source
from phichat.textsafe import one_line, strip_control
from phichat.ui.untrusted import display_title


def context_text(sources: list[Source], query: str | None) -> Text:
    text = Text()
    if query:
        text.append("Query: ", style="bold")
        text.append(one_line(query, 300) + "\n\n")
    if not sources:
        text.append("This answer used no web passages.", style="italic")
    for source in sources:
        text.append(f"[{source.n}] ", style="bold")
        text.append(display_title(source), style="bold")
        text.append("\n" + one_line(source.url, 300) + "\n", style="dim")
        if not source.passages:
            text.append("  (no passages recorded)\n", style="italic")
        for passage in source.passages:
            text.append(f"  score {passage.score:.3f}", style="bold cyan")
            if passage.heading:
                text.append(f" · {one_line(passage.heading, 120)}", style="italic")
            text.append("\n")
            body = strip_control(passage.text).strip()
            text.append("  " + body.replace("\n", "\n  ") + "\n\n")
    return text


class ContextScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,f4", "close", "Close", id="close_context", tooltip="Close")
    ]

    def __init__(self, sources: list[Source], query: str | None, focus: int | None = None) -> None:
        super().__init__()
        self._sources = sources
        self._query = query
        self._focus = focus

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="context-panel", classes="dialog"):
            yield Static(Text("Passages packed into the prompt", style="bold"))
            shown = [s for s in self._sources if self._focus in (None, s.n)]
            yield Static(context_text(shown, self._query), id="context-text")

    def action_close(self) -> None:
        self.dismiss(None)
