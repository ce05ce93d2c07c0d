"""``phichat compare QUESTION``: the answer without search, the answer with it, what changed."""

from __future__ import annotations

import argparse
import json
import sys
import threading
from typing import Any

from phichat.chat.events import Failed, SourcesReady, Status, Token
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
from phichat.features.compare_summary import CompareSummary, summary_json
from phichat.textsafe import one_line, strip_control

HEADINGS = {"without": "Without search", "with": "With search"}
KIND_NAMES = {"number": "number", "date": "date", "name": "name", "place": "place"}


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "compare",
        help="answer a question without and with web search, and show what changed",
        description="Answer one question twice: without search (streamed while the web is "
        "searched), then grounded in the pages found. Prints both answers, then a summary: "
        "timings, sources cited, and the facts found in only one answer.",
    )
    parser.add_argument("question", help="the question, or - to read it from stdin")
    parser.add_argument("--json", action="store_true", help="print one JSON object at the end")
    add_conversation_flags(parser)
    add_model_flags(parser, on_subcommand=True)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    question = read_question(args.question)
    # A compare always searches.
    return in_conversation(
        args, settings, lambda shell: compare(args, settings, question, shell), True
    )


def compare(
    args: argparse.Namespace, settings: Settings, question: str, shell: ShellConversation
) -> int:
    from phichat.chat.factory import create_session
    from phichat.features.compare import CompareDone, SideEvent, run_compare

    session = create_session(settings, store=shell.store)
    stop = threading.Event()
    progress = SideProgress()
    printer = StreamPrinter(progress) if not args.json else None
    done: CompareDone | None = None
    failed = False  # an answer failed: the exit status says so
    with stop_on_ctrl_c(stop):
        status("loading model " + session.model.name)
        session.handle.wait(progress=lambda description, _fraction: status(description))
        for event in run_compare(session, shell.conversation, question, stop):
            if isinstance(event, Failed):
                raise PhichatError(event.error)
            if isinstance(event, SideEvent):
                if isinstance(event.event, Failed):
                    failed = True
                    if printer is None:
                        status(f"{HEADINGS[event.side].lower()}: failed: {event.event.error}")
                if printer is not None:
                    printer.show(event.side, event.event)
                elif isinstance(event.event, Status):
                    progress.show(event.side, event.event)
            else:
                done = event
    assert done is not None
    facts = session.model.describe()
    if printer is not None:
        printer.finish(done.with_search)
        sys.stdout.write("\n" + "\n".join(summary_lines(done.summary)) + "\n")
    else:
        json.dump(compare_json(done, facts), sys.stdout, ensure_ascii=False)
        sys.stdout.write("\n")
    sys.stdout.flush()
    say_where_saved(shell)
    stopped = any(m is not None and m.stopped for m in (done.without, done.with_search))
    if stopped:
        return EXIT_INTERRUPTED
    return 1 if failed else 0


class SideProgress:
    """Status lines on stderr, tagged with their side, each step once per side (the compare
    and the retriever may both announce the search query)."""

    def __init__(self) -> None:
        self._last: dict[str, str] = {}

    def show(self, side: str, event: Status) -> None:
        line = f"{HEADINGS[side].lower()}: {event.stage} {event.detail}".strip()
        if event.stage not in ("thinking", "writing") and self._last.get(side) != line:
            status(line)
            self._last[side] = line


def compare_json(done: Any, model_facts: dict[str, str]) -> dict[str, Any]:
    """The documented JSON shape: question, without_search, with_search, summary."""

    def side(message: Message | None) -> dict[str, Any]:
        if message is None:
            return {"answer": None, "timings": {}}
        full = answer_json(message, model_facts)
        return {
            "answer": full["answer"],
            "timings": full["timings"],
            "stopped": message.stopped,
            "unverified_links": unverified_urls(message),
        }

    with_search = side(done.with_search)
    message = done.with_search
    with_search["sources"] = (
        [{"n": s.n, "title": s.title, "url": s.url} for s in message.sources] if message else []
    )
    with_search["query"] = done.query
    return {
        "question": done.question,
        "model": model_facts.get("model", ""),
        "without_search": side(done.without),
        "with_search": with_search,
        "summary": summary_json(done.summary),
    }


class StreamPrinter:
    """Each answer streams under its heading; the search-on side starts when the first ends."""

    def __init__(self, progress: SideProgress) -> None:
        self._shown: set[str] = set()
        self._progress = progress

    def _heading(self, side: str) -> None:
        if side in self._shown:
            return
        if self._shown:
            sys.stdout.write("\n")
        self._shown.add(side)
        sys.stdout.write(f"## {HEADINGS[side]}\n\n")

    def show(self, side: str, event: Any) -> None:
        if isinstance(event, Token):
            self._heading(side)
            sys.stdout.write(strip_control(event.text))
            sys.stdout.flush()
        elif isinstance(event, Status):
            self._progress.show(side, event)
        elif isinstance(event, SourcesReady):
            packed = f"{len(event.sources)} sources packed ({event.context_chars} characters)"
            status(f"with search: {packed}")
        elif isinstance(event, Failed):
            self._heading(side)
            sys.stdout.write(f"[failed: {one_line(event.error, 300)}]")
        else:  # Done
            self._heading(side)
            if event.message.stopped:
                sys.stdout.write("\n[stopped]")
            sys.stdout.write("\n")
            write_unverified_links(event.message)

    def finish(self, grounded: Message | None) -> None:
        if grounded is not None:
            write_sources(grounded.sources)


def _seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f} s"


def summary_lines(summary: CompareSummary) -> list[str]:
    """The summary as plain text lines (model and web text made safe for the terminal)."""
    lines = [
        "## Summary",
        "",
        f"{'':16}{'first token':>13}{'total':>10}",
        f"{'without search':16}{_seconds(summary.without.ttft_s):>13}"
        f"{_seconds(summary.without.total_s):>10}",
        f"{'with search':16}{_seconds(summary.with_search.ttft_s):>13}"
        f"{_seconds(summary.with_search.total_s):>10}",
    ]
    if summary.retrieval_s is not None:
        lines.append(f"(searching took {summary.retrieval_s:.1f} s, while the first answer ran)")
    cited = f"sources: {summary.sources_used} packed, {summary.sources_cited} cited"
    if summary.unknown_citations:
        cited += ", cites missing " + ", ".join(f"[{n}]" for n in summary.unknown_citations)
    lines += ["", cited, ""]
    lines += conflict_lines(summary)
    if not summary.unique_facts:
        same = "Otherwise the" if summary.conflicts else "Both answers name the"
        lines.append(f"{same} same numbers, dates, names and places.")
        return lines
    lines.append("Only in one answer (✓ the sources mention it, ✗ they do not):")
    for side in ("without", "with"):
        facts = summary.facts_for(side)
        if not facts:
            continue
        lines.append(f"  {HEADINGS[side].lower()}:")
        for fact in facts:
            mark = "✓" if fact.supported else "✗"
            lines.append(f"    {mark} {KIND_NAMES[fact.kind]:6} {one_line(fact.text, 80)}")
    return lines


def conflict_lines(summary: CompareSummary) -> list[str]:
    """The values the answers contradict each other on, and which side a source backs."""
    if not summary.conflicts:
        return []
    lines = ["The answers disagree:"]
    for conflict in summary.conflicts:
        left, right = one_line(conflict.without, 80), one_line(conflict.with_search, 80)
        if conflict.backed is None:
            verdict = "no source gives either"
        else:
            backed = left if conflict.backed == "without" else right
            verdict = f"source [{conflict.source}] says {backed}"
        lines.append(f"  ⚠ {left} (without search) vs {right} (with search): {verdict}")
    return [*lines, ""]
