"""A small app that mounts one widget under phichat's real stylesheet, as oterm's tests do.

The widget keeps the id the app gives it (``#composer`` and so on), so the stylesheet's rules
for it apply; what the screen shows is read back as plain lines of text.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

from textual.app import App, ComposeResult
from textual.containers import Vertical
from textual.widget import Widget

import phichat.ui

T = TypeVar("T")

STYLESHEET = Path(phichat.ui.__file__).parent / "app.tcss"


class WidgetHost(App[None]):
    CSS_PATH = STYLESHEET

    def __init__(self, widget: Widget, *, within: str = "") -> None:
        super().__init__()
        self.widget = widget
        self.within = within  # classes of a container around it, for rules such as .answer X

    def compose(self) -> ComposeResult:
        if self.within:
            with Vertical(classes=self.within):
                yield self.widget
        else:
            yield self.widget


def screen_lines(app: App[object]) -> list[str]:
    """The screen as plain text, one string per row (trailing blanks removed)."""
    return [strip.text.rstrip() for strip in app.screen._compositor.render_strips()]


def screen_text(app: App[object]) -> str:
    return "\n".join(screen_lines(app))


def posted_of(posted: list[object], kind: type[T]) -> list[T]:
    """The messages of one kind among those a ``run_test(message_hook=...)`` recorded, once each."""
    unique = {id(m): m for m in posted if isinstance(m, kind)}
    return list(unique.values())
