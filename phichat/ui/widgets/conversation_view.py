"""The scrolling list of messages; it follows new text while the reader is at the bottom."""

from __future__ import annotations

from textual.containers import VerticalScroll
from textual.widgets import Static

from phichat.domain import Conversation, Message
from phichat.ui.widgets.answer import Answer
from phichat.ui.widgets.compare_view import CompareView
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
        widgets: list[Static | UserMessage | Answer | CompareView] = []
        widgets.extend(message_widgets(conversation.messages))
        if not widgets:
            widgets.append(Static(WELCOME, classes="welcome", markup=False))
        await self.mount_all(widgets)
        self.anchor()

    async def show_answers(self, messages: list[Message]) -> None:
        """Show saved answers again at the end (those a failed regenerate kept)."""
        await self.mount_all(message_widgets(messages))
        self.anchor()

    async def add_user(self, message: Message) -> None:
        await self.query(".welcome").remove()
        await self.mount(UserMessage(message))
        self.anchor()

    async def start_answer(self, search: bool) -> Answer:
        answer = Answer(search=search)
        await self.mount(answer)
        return answer

    async def start_compare(self) -> CompareView:
        compare = CompareView()
        await self.mount(compare)
        return compare

    def last_answer(self) -> Answer | None:
        answers = self.query(Answer)
        return answers.last() if answers else None

    async def remove_trailing_answers(self) -> None:
        """Drop the answers after the last user message (before answering it again)."""
        children = list(self.children)
        while children and isinstance(children[-1], Answer | CompareView):
            await children.pop().remove()


def message_widgets(messages: list[Message]) -> list[UserMessage | Answer | CompareView]:
    """One widget per message, except that a compare's two answers share one view."""
    widgets: list[UserMessage | Answer | CompareView] = []
    index = 0
    question = ""  # the latest user message: what a compare after it answered
    while index < len(messages):
        message = messages[index]
        index += 1
        if message.role == "user":
            question = message.text
            widgets.append(UserMessage(message))
        elif message.compare_side is not None:
            # A compare: its "without" answer, then (normally) its "with" answer.
            pair = {message.compare_side: message}
            following = messages[index] if index < len(messages) else None
            other_side = following.compare_side if following is not None else None
            if following is not None and other_side is not None and other_side not in pair:
                pair[other_side] = following
                index += 1
            widgets.append(CompareView(pair.get("without"), pair.get("with"), question))
        else:
            widgets.append(Answer(search=message.search_used, message=message))
    return widgets
