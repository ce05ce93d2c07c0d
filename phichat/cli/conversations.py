"""Which conversation a shell command answers in, and whether it is saved.

``phichat ask`` and ``phichat compare`` save to the app's database unless ``--no-save``
(or ``save_history = false``); ``-c`` continues the most recent conversation and
``--cid ID`` (any unique prefix) a given one, so a follow-up from the shell gets the same
history trimming and follow-up search query as in the app: it goes through the same
``Session`` with the loaded conversation.
"""

from __future__ import annotations

import argparse
import sys
from contextlib import suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING

from phichat.config import Settings
from phichat.domain import Conversation
from phichat.errors import NotFound, PhichatError
from phichat.textsafe import one_line

if TYPE_CHECKING:
    from phichat.storage import ConversationStore


def add_conversation_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("history")
    group.add_argument(
        "--no-save",
        action="store_true",
        help="do not save this answer to the conversation history",
    )
    which = group.add_mutually_exclusive_group()
    which.add_argument(
        "-c",
        "--continue",
        dest="continue_last",
        action="store_true",
        help="continue the most recent conversation",
    )
    which.add_argument(
        "--cid",
        metavar="ID",
        default=argparse.SUPPRESS,
        help="continue the conversation ID (any unique prefix; see `phichat history`)",
    )


@dataclass
class ShellConversation:
    """The conversation a command answers in; ``store`` is None when nothing is saved."""

    conversation: Conversation
    store: ConversationStore | None

    def close(self) -> None:
        if self.store is not None:
            self.store.close()


def load_conversation(store: ConversationStore, cid: str | None) -> Conversation:
    """Conversation ``cid`` (a unique prefix), or the most recent one when ``cid`` is None."""
    if cid is not None:
        return store.load(store.resolve_id(cid))
    recent = store.list_conversations()
    if not recent:
        raise NotFound("there is no saved conversation to continue yet")
    return store.load(recent[0].id)


def open_conversation(args: argparse.Namespace, settings: Settings) -> ShellConversation:
    """The conversation for this command, opened as its flags and the settings say.

    Continuing needs the database (a damaged one is an error); a fresh question that only
    wants saving carries on unsaved if the database cannot be opened, and says so.
    """
    from phichat.storage import ConversationStore

    save = settings.save_history and not getattr(args, "no_save", False)
    cid: str | None = getattr(args, "cid", None)
    continuing = cid is not None or getattr(args, "continue_last", False)
    if not continuing:
        if not save:
            return ShellConversation(Conversation(), None)
        try:
            return ShellConversation(Conversation(), ConversationStore())
        except PhichatError as exc:
            note(f"not saving this answer: {exc}")
            return ShellConversation(Conversation(), None)
    store = ConversationStore()
    try:
        conversation = load_conversation(store, cid)
    except BaseException:
        store.close()
        raise
    if not save:
        store.close()
        return ShellConversation(conversation, None)
    return ShellConversation(conversation, store)


def note(text: str) -> None:
    print(f"· {one_line(text)}", file=sys.stderr, flush=True)


def say_where_saved(shell: ShellConversation) -> None:
    """One stderr line naming the conversation, so the next command can continue it."""
    if shell.store is None or not shell.conversation.messages:
        return
    with suppress(BrokenPipeError):
        note(f"saved in conversation {shell.conversation.id} (continue it: phichat ask -c …)")
