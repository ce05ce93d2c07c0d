"""``phichat ask QUESTION``: one answer, streamed to stdout."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from phichat.chat.events import Done, Event, Failed, SourcesReady, Status, Token
from phichat.cli.common import add_model_flags, settings_from_args
from phichat.cli.conversations import (
    ShellConversation,
    add_conversation_flags,
    open_conversation,
    say_where_saved,
)
from phichat.config import Settings
from phichat.domain import Message, TurnStats
from phichat.errors import PhichatError
from phichat.textsafe import one_line, replace_lone_surrogates, strip_control

EXIT_INTERRUPTED = 130


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


def read_question(raw: str) -> str:
    """The question from the argument, or stdin for ``-``; undecodable bytes become U+FFFD."""
    if raw == "-":
        buffer = getattr(sys.stdin, "buffer", None)  # absent on a replaced (text) stdin
        if buffer is not None:
            text = buffer.read().decode(sys.stdin.encoding or "utf-8", "replace")
        else:
            text = replace_lone_surrogates(sys.stdin.read())
    else:
        text = replace_lone_surrogates(raw)  # argv bytes that are not UTF-8 arrive as surrogates
    if not text.strip():
        raise PhichatError("the question is empty")
    return text


@contextmanager
def stop_on_ctrl_c(stop: threading.Event) -> Iterator[None]:
    """First Ctrl+C asks generation to stop (keeping the partial answer); a second one quits."""

    def handle(signum: int, frame: Any) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    previous = signal.signal(signal.SIGINT, handle)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def run(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    question = read_question(args.question)
    from phichat.retrieval.search import check_search_settings

    if settings.search:
        check_search_settings(settings)

    shell = open_conversation(args, settings)
    try:
        return answer(args, settings, question, shell)
    finally:
        shell.close()


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


def status(text: str) -> None:
    print(f"· {one_line(text)}", file=sys.stderr, flush=True)


def answer_json(message: Message, model_facts: dict[str, str]) -> dict[str, Any]:
    return {
        "answer": message.text,
        "model": model_facts.get("model", ""),
        "device": model_facts.get("device", ""),
        "dtype": model_facts.get("dtype", ""),
        "search_used": message.search_used,
        "grounded": message.grounded,
        "query": message.query,
        "sources": [{"n": s.n, "title": s.title, "url": s.url} for s in message.sources],
        "stopped": message.stopped,
        "timings": timings_json(message.timings),
    }


def timings_json(stats: TurnStats) -> dict[str, float]:
    """The documented figures first (0 where a turn has none), then every other time."""
    first = {
        "load_s": stats.load_s or 0.0,
        "ttft_s": stats.ttft_s or 0.0,
        "prompt_tokens": stats.prompt_tokens or 0,
        "reused_tokens": stats.reused_tokens or 0,
        "new_tokens": stats.new_tokens or 0,
        "tokens_per_s": stats.tokens_per_s or 0.0,
    }
    rest = {k: v for k, v in stats.as_dict().items() if k.endswith("_s") and k not in first}
    return {**first, **rest}


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
        if message.sources:
            sys.stdout.write("\nSources:\n")
            for source in message.sources:
                sys.stdout.write(
                    f"[{source.n}] {one_line(source.title)} <{one_line(source.url)}>\n"
                )
        write_unverified_links(message)
        sys.stdout.flush()


def unverified_urls(message: Message) -> list[str]:
    """The links in the answer that are not among its sources (once each, in order)."""
    from phichat.links import unverified_links

    urls = [one_line(link.url, 2000) for link in unverified_links(message.text, message.sources)]
    return list(dict.fromkeys(urls))


def write_unverified_links(message: Message) -> None:
    urls = unverified_urls(message)
    if urls:
        sys.stdout.write("\nUnverified links (not among the sources; check before opening):\n")
        sys.stdout.writelines(f"  ⚠ {url}\n" for url in urls)


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
