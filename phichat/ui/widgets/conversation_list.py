"""The sidebar list of saved conversations, newest first, titled from their first message."""

from __future__ import annotations

import time
from dataclasses import dataclass

from rich.text import Text
from textual.message import Message
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from phichat.storage.conversations import ConversationSummary
from phichat.textsafe import one_line


def _when(timestamp: float) -> str:
    local = time.localtime(timestamp)
    if time.strftime("%Y-%m-%d", local) == time.strftime("%Y-%m-%d"):
        return time.strftime("%H:%M", local)
    return time.strftime("%d %b", local)


class ConversationList(OptionList):
    @dataclass
    class Opened(Message):
        conversation_id: str

    def show(self, summaries: list[ConversationSummary], current_id: str | None) -> None:
        self.clear_options()
        options = []
        for summary in summaries:
            label = Text(one_line(summary.title or "untitled", 40))
            label.append(
                f"\n{_when(summary.updated_at)} · {summary.message_count} messages", style="dim"
            )
            options.append(Option(label, id=summary.id))
        self.add_options(options)
        ids = [summary.id for summary in summaries]
        if ids:
            # The open conversation, or else the newest, so Enter opens something.
            self.highlighted = ids.index(current_id) if current_id in ids else 0

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        if event.option.id is not None:
            self.post_message(self.Opened(event.option.id))
