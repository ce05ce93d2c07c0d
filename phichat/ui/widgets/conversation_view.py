"""The scrolling list of messages; it follows new text while the reader is at the bottom."""

from __future__ import annotations

from textual.containers import VerticalScroll
from textual.widgets import Static

from phichat.domain import Conversation, Message
from phichat.ui.widgets.answer import Answer
from phichat.ui.widgets.user_message import UserMessage

WELCOME = (
    "Ask a question below. Turn on web search (Ctrl+T) to ground the answer in pages "
    "from the web, with numbered sources. F1 lists every key."
)


class ConversationView(VerticalScroll):
    def on_mount(self) -> None:
        # Anchored: stays at the bottom as text arrives, until the user scrolls up; it
        # re-anchors when they scroll back down.
        self.anchor()

    async def show_conversation(self, conversation: Conversation) -> None:
        await self.remove_children()
        widgets: list[Static | UserMessage | Answer] = []
        for message in conversation.messages:
            if message.role == "user":
                widgets.append(UserMessage(message))
            else:
                widgets.append(Answer(search=message.search_used, message=message))
        if not widgets:
            widgets.append(Static(WELCOME, classes="welcome", markup=False))
        await self.mount_all(widgets)
        self.anchor()

    async def add_user(self, message: Message) -> None:
        await self.query(".welcome").remove()
        await self.mount(UserMessage(message))
        self.anchor()

    async def start_answer(self, search: bool) -> Answer:
        answer = Answer(search=search)
        await self.mount(answer)
        return answer

    def last_answer(self) -> Answer | None:
        answers = self.query(Answer)
        return answers.last() if answers else None

    async def remove_trailing_answers(self) -> None:
        """Drop the answers after the last user message (before answering it again)."""
        children = list(self.children)
        while children and isinstance(children[-1], Answer):
            await children.pop().remove()
