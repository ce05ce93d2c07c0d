"""``phichat ask QUESTION``: one answer, streamed to stdout."""

from __future__ import annotations

import argparse
import json
import sys
import threading

from phichat.chat.events import Done, Event, Failed, SourcesReady, Status, Token
from phichat.cli.common import (
    EXIT_INTERRUPTED,
    add_model_flags,
    answer_json,
    in_conversation,
    read_question,
    settings_from_args,
    status,
    stop_on_ctrl_c,
    unverified_urls,
    write_sources,
    write_unverified_links,
)
from phichat.cli.conversations import ShellConversation, add_conversation_flags, say_where_saved
from phichat.config import Settings
from phichat.domain import Message
from phichat.errors import PhichatError
from phichat.textsafe import strip_control


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "ask",
        help="ask one question and stream the answer",
        description="Ask one question; the answer streams to stdout, progress to stderr.",
    )
    parser.add_argument("question", help="the question, or - to read it from stdin")
    parser.add_argument("--json", action="store_true", help="print one JSON object at the end")
    add_conversation_flags(parser)
    add_model_flags(parser, on_subcommand=True)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    question = read_question(args.question)
    return in_conversation(
        args, settings, lambda shell: answer(args, settings, question, shell), settings.search
    )


def answer(
    args: argparse.Namespace, settings: Settings, question: str, shell: ShellConversation
) -> int:
    from phichat.chat.factory import create_session

    session = create_session(settings, store=shell.store)
    conversation = shell.conversation
    stop = threading.Event()
    printer = JsonPrinter() if args.json else StreamPrinter()
    with stop_on_ctrl_c(stop):
        status("loading model " + session.model.name)
        session.handle.wait(progress=lambda description, _fraction: status(description))
        finished: Message | None = None
        for event in session.respond(conversation, question, settings.search, stop):
            printer.show(event)
            if isinstance(event, Done):
                finished = event.message
            elif isinstance(event, Failed):
                say_where_saved(shell)
                raise PhichatError(event.error)
    assert finished is not None
    printer.conversation_id = conversation.id if shell.store is not None else None
    printer.finish(finished, session.model.describe())
    say_where_saved(shell)
    return EXIT_INTERRUPTED if finished.stopped else 0


class ProgressLines:
    """Status events as stderr lines, once each: the session and the retriever may both
    announce the same step (the search query), and one line is enough."""

    def __init__(self) -> None:
        self._last = ""

    def show(self, event: Status) -> None:
        line = f"{event.stage} {event.detail}".strip()
        if event.stage not in ("thinking", "writing") and line != self._last:
            status(line)
            self._last = line


class StreamPrinter:
    """Answer text to stdout as it arrives; progress and sources around it."""

    def __init__(self) -> None:
        self.progress = ProgressLines()
        self.conversation_id: str | None = None

    def show(self, event: Event) -> None:
        if isinstance(event, Token):
            sys.stdout.write(strip_control(event.text))
            sys.stdout.flush()
        elif isinstance(event, Status):
            self.progress.show(event)
        elif isinstance(event, SourcesReady):
            status(f"{len(event.sources)} sources packed ({event.context_chars} characters)")

    def finish(self, message: Message, model_facts: dict[str, str]) -> None:
        sys.stdout.write("\n")
        if message.stopped:
            sys.stdout.write("[stopped]\n")
        write_sources(message.sources)
        write_unverified_links(message)
        sys.stdout.flush()


class JsonPrinter:
    """Progress to stderr, then one JSON object on stdout."""

    def __init__(self) -> None:
        self.progress = ProgressLines()
        self.conversation_id: str | None = None  # where the answer was saved (None: not)

    def show(self, event: Event) -> None:
        if isinstance(event, Status):
            self.progress.show(event)

    def finish(self, message: Message, model_facts: dict[str, str]) -> None:
        data = {
            **answer_json(message, model_facts),
            "unverified_links": unverified_urls(message),
            "conversation_id": self.conversation_id,
        }
        json.dump(data, sys.stdout, ensure_ascii=False)
        sys.stdout.write("\n")
        sys.stdout.flush()
