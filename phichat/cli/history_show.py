"""``phichat history show ID``: one conversation on stdout.

Plain text when stdout is a pipe or a file; on a terminal the same content is rendered
with Rich (headings, dimmed notes, citations coloured). Either way the answers' ``[n]``
citations are kept, a number that points at no source is flagged ``[n?]``, a link that is
not one of the answer's sources is marked unverified, and each answer's sources follow it.
``--json`` prints the stored records instead.

Every piece of stored text (model output, page titles, URLs) is data: control characters
are stripped and Rich is handed ``Text`` objects, never markup.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

from phichat.citations import find_citations
from phichat.domain import Conversation, Message, Source
from phichat.links import mark_unverified
from phichat.textsafe import one_line, strip_control

_UNVERIFIED = "\x00"
ROLE_NAMES = {"user": "You", "assistant": "phichat"}
COMPARE_NAMES = {"without": "compare, without search", "with": "compare, with search"}

# What each piece of a rendered line is, so the terminal renderer can style it.
Style = Literal["title", "heading", "note", "text", "citation", "unknown", "source", "warning"]


@dataclass(frozen=True)
class Piece:
    text: str
    style: Style = "text"


Line = list[Piece]


def conversation_json(conversation: Conversation) -> dict[str, Any]:
    """The stored records: the conversation and every message with all its fields."""
    return {
        "id": conversation.id,
        "title": conversation.title,
        "created_at": conversation.created_at,
        "messages": [dataclasses.asdict(message) for message in conversation.messages],
    }


def conversation_lines(conversation: Conversation) -> Iterator[Line]:
    """The conversation as lines of styled pieces (the one layout both outputs share)."""
    count = len(conversation.messages)
    yield [Piece(one_line(conversation.title, 200) or "(untitled)", "title")]
    started = datetime.fromtimestamp(conversation.created_at, UTC).strftime("%Y-%m-%d %H:%M UTC")
    yield [
        Piece(
            f"conversation {conversation.id}, started {started}, "
            f"{count} message{'s' * (count != 1)}",
            "note",
        )
    ]
    for message in conversation.messages:
        yield []
        yield from _message_lines(message)


def _message_lines(message: Message) -> Iterator[Line]:
    heading = ROLE_NAMES.get(message.role, message.role)
    if message.compare_side in COMPARE_NAMES:
        heading += f" ({COMPARE_NAMES[message.compare_side]})"
    notes = []
    if message.role == "assistant":
        if message.grounded:
            count = len(message.sources)
            notes.append(f"web search, {count} source{'s' * (count != 1)}")
        elif message.search_used:
            notes.append("web search, no sources")
        if message.stopped:
            notes.append("stopped")
    yield [Piece(heading, "heading"), *([Piece(f"  [{', '.join(notes)}]", "note")] * bool(notes))]
    if message.query and message.search_used:
        yield [Piece(f"searched for: {one_line(message.query)}", "note")]
    text = strip_control(message.text).strip()
    if message.role == "assistant":
        # Control characters are gone, so one can mark where each unverified link ends.
        text = mark_unverified(text, message.sources, lambda _link: _UNVERIFIED)
    for text_line in text.split("\n"):
        line: Line = []
        for index, part in enumerate(text_line.split(_UNVERIFIED)):
            if index:
                line.append(Piece(" [⚠ unverified link]", "warning"))
            if part or index == 0:
                line.extend(_annotated(part, message.sources))
        yield line
    if message.error:
        yield [Piece(f"error: {one_line(message.error, 500)}", "warning")]
    if message.sources:
        yield []
        yield [Piece("Sources:", "note")]
        for source in message.sources:
            yield [Piece(f"  [{source.n}] ", "citation"), *_source_pieces(source)]


def _annotated(text: str, sources: list[Source]) -> Iterator[Piece]:
    """One line of an answer, its citations split out (unknown numbers flagged)."""
    numbers = {source.n for source in sources}
    position = 0
    for citation in find_citations(text):
        if citation.start > position:
            yield Piece(text[position : citation.start])
        for number in citation.numbers:
            if number in numbers:
                yield Piece(f"[{number}]", "citation")
            else:
                yield Piece(f"[{number}?]", "unknown")
        position = citation.end
    if position < len(text) or not text:
        yield Piece(text[position:])


def _source_pieces(source: Source) -> list[Piece]:
    title = one_line(source.title, 200) or source.site or "untitled page"
    return [Piece(title), Piece(f" <{one_line(source.url, 2000)}>", "source")]


def plain_text(conversation: Conversation) -> str:
    return "\n".join("".join(p.text for p in line) for line in conversation_lines(conversation))


_RICH_STYLES: dict[Style, str] = {
    "title": "bold",
    "heading": "bold cyan",
    "note": "dim",
    "text": "",
    "citation": "cyan",
    "unknown": "bold red",
    "source": "dim underline",
    "warning": "bold red",
}


def print_rich(conversation: Conversation, out: TextIO) -> None:
    """The same lines, styled for a terminal (Text objects: stored text is never markup)."""
    from rich.console import Console
    from rich.text import Text

    console = Console(file=out, highlight=False, emoji=False, markup=False)
    for line in conversation_lines(conversation):
        text = Text()
        for piece in line:
            text.append(piece.text, style=_RICH_STYLES[piece.style])
        console.print(text)


def show(conversation: Conversation, out: TextIO, *, as_json: bool) -> None:
    if as_json:
        json.dump(conversation_json(conversation), out, ensure_ascii=False)
        out.write("\n")
    elif out.isatty():
        print_rich(conversation, out)
    else:
        out.write(plain_text(conversation) + "\n")
    out.flush()
