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
from phichat.domain import Conversation, Message
from phichat.errors import PhichatError
from phichat.textsafe import one_line, strip_control

EXIT_INTERRUPTED = 130


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = commands.add_parser(
        "ask",
        help="ask one question and stream the answer",
        description="Ask one question; the answer streams to stdout, progress to stderr.",
    )
    parser.add_argument("question", help="the question, or - to read it from stdin")
    parser.add_argument("--json", action="store_true", help="print one JSON object at the end")
    add_model_flags(parser, on_subcommand=True)
    parser.set_defaults(handler=run)


def read_question(raw: str) -> str:
    text = sys.stdin.read() if raw == "-" else raw
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
    from phichat.chat.factory import create_session

    session = create_session(settings)
    stop = threading.Event()
    printer = JsonPrinter() if args.json else StreamPrinter()
    with stop_on_ctrl_c(stop):
        status("loading model " + session.model.name)
        session.model.load(lambda description, _fraction: status(description))
        finished: Message | None = None
        for event in session.respond(Conversation(), question, settings.search, stop):
            printer.show(event)
            if isinstance(event, Done):
                finished = event.message
            elif isinstance(event, Failed):
                raise PhichatError(event.error)
    assert finished is not None
    finished.timings.setdefault("load_s", getattr(session.model, "load_s", 0.0))
    printer.finish(finished, session.model.describe())
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
        "timings": {
            "load_s": message.timings.get("load_s", 0.0),
            "ttft_s": message.timings.get("ttft_s", 0.0),
            "prompt_tokens": int(message.timings.get("prompt_tokens", 0)),
            "reused_tokens": int(message.timings.get("reused_tokens", 0)),
            "new_tokens": int(message.timings.get("new_tokens", 0)),
            "tokens_per_s": message.timings.get("tokens_per_s", 0.0),
            **{
                key: value
                for key, value in message.timings.items()
                if key.endswith("_s") and key not in ("load_s", "ttft_s", "tokens_per_s")
            },
        },
    }


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
        sys.stdout.flush()


class JsonPrinter:
    """Progress to stderr, then one JSON object on stdout."""

    def __init__(self) -> None:
        self.progress = ProgressLines()

    def show(self, event: Event) -> None:
        if isinstance(event, Status):
            self.progress.show(event)

    def finish(self, message: Message, model_facts: dict[str, str]) -> None:
        json.dump(answer_json(message, model_facts), sys.stdout, ensure_ascii=False)
        sys.stdout.write("\n")
        sys.stdout.flush()
