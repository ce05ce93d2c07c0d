"""Export a conversation as Markdown, with each answer's sources as footnotes.

``[n]`` citations in an answer become footnote references, but only for numbers that
exist among that answer's sources; any other bracket is left as written. Code spans and
fenced code blocks are left alone, so ``items[1]`` in a code sample stays code.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from phichat.citations import CITATION
from phichat.domain import Conversation, Message, Source
from phichat.textsafe import one_line, strip_control

# Fenced code blocks (``` or ~~~, to the matching fence or the end) and inline code spans.
_CODE = re.compile(
    r"^(?P<fence>`{3,}|~{3,})[^\n]*\n.*?(?:^(?P=fence)[ \t]*$|\Z)|(?P<ticks>`+)[^`]*?(?P=ticks)",
    re.MULTILINE | re.DOTALL,
)

ROLE_HEADINGS = {"user": "User", "assistant": "Assistant"}
COMPARE_HEADINGS = {"without": "compare: without search", "with": "compare: with search"}


def to_markdown(conversation: Conversation) -> str:
    """The whole conversation as one Markdown document (ending in a newline)."""
    title = one_line(conversation.title, 200) or "Untitled conversation"
    started = _utc(conversation.created_at)
    count = len(conversation.messages)
    lines = [
        f"# {title}",
        "",
        f"*Exported from phichat. Started {started}; {count} message{'s' * (count != 1)}.*",
    ]
    # Footnote labels must be unique in the document. With one sourced answer they are the
    # source numbers themselves ([^1]); with several, answer k's source n is [^k-n].
    sourced = [id(m) for m in conversation.messages if m.role == "assistant" and m.sources]
    for message in conversation.messages:
        prefix = ""
        if len(sourced) > 1 and id(message) in sourced:
            prefix = f"{sourced.index(id(message)) + 1}-"
        lines += ["", *_message_lines(message, prefix)]
    return "\n".join(lines).rstrip() + "\n"


def _message_lines(message: Message, label_prefix: str) -> list[str]:
    heading = f"## {ROLE_HEADINGS.get(message.role, message.role.title())}"
    if message.compare_side in COMPARE_HEADINGS:
        # One of the two answers of a compare: say which, so the pair reads side by side.
        heading += f" — {COMPARE_HEADINGS[message.compare_side]}"
    if message.role == "assistant":
        if message.grounded:
            heading += " `search`"
        elif message.search_used:
            heading += " `search: no sources`"
    lines = [heading, ""]
    if message.query and message.search_used:
        lines += [f"*Searched for:* {one_line(message.query)}", ""]
    text = strip_control(message.text).strip()
    numbers = {source.n for source in message.sources}
    if text:
        lines.append(link_citations(text, numbers, label_prefix))
    if message.stopped:
        lines += ["", "*(stopped before the end)*"]
    if message.error:
        lines += ["", f"> **Error:** {one_line(message.error, 500)}"]
    if message.sources:
        # A definition nobody references is dropped by most renderers, so list every
        # source once, cited or not, before defining them.
        references = " ".join(f"[^{label_prefix}{s.n}]" for s in message.sources)
        lines += ["", f"Sources: {references}", ""]
        lines += [_footnote(source, label_prefix) for source in message.sources]
    return lines


def link_citations(text: str, numbers: set[int], label_prefix: str = "") -> str:
    """Turn ``[n]`` into ``[^n]`` wherever n is in ``numbers``, outside code."""

    def convert(match: re.Match[str]) -> str:
        cited = [int(part) for part in match.group(1).split(",")]
        if not any(n in numbers for n in cited):
            return match.group(0)
        # Known numbers become references; unknown ones stay visible as plain [n].
        return "".join(f"[^{label_prefix}{n}]" if n in numbers else f"[{n}]" for n in cited)

    pieces: list[str] = []
    done = 0
    for code in _CODE.finditer(text):
        pieces.append(CITATION.sub(convert, text[done : code.start()]))
        pieces.append(code.group(0))
        done = code.end()
    pieces.append(CITATION.sub(convert, text[done:]))
    return "".join(pieces)


def _footnote(source: Source, label_prefix: str) -> str:
    label = f"[^{label_prefix}{source.n}]"
    parts = [one_line(source.title, 200), one_line(source.url, 2000)]
    return f"{label}: " + " — ".join(part for part in parts if part)


def _utc(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M UTC")
