"""Export a conversation as Markdown, with each answer's sources as footnotes.

``[n]`` citations in an answer become footnote references, but only for numbers that
exist among that answer's sources; in an answer with sources, a number that matches none
is flagged ``[n?]``, as the app shows it. A link that is not one of the answer's sources
is marked unverified (with its address, for a link whose text hides it), and a note under
the answer lists both. Code spans and fenced code blocks are left alone, so ``items[1]``
in a code sample stays code.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from phichat.citations import CITATION, check_citations
from phichat.domain import Conversation, Message, Source
from phichat.links import CODE, Link, mark_unverified, unverified_links
from phichat.textsafe import one_line, strip_control

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
    if text and message.role == "assistant":
        text = mark_unverified(text, message.sources, _unverified_marker)
    if text:
        lines.append(
            link_citations(text, numbers, label_prefix, flag_unknown=bool(message.sources))
        )
    if message.role == "assistant":
        lines += _warnings(message)
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


def link_citations(
    text: str, numbers: set[int], label_prefix: str = "", *, flag_unknown: bool = False
) -> str:
    """Turn ``[n]`` into ``[^n]`` wherever n is in ``numbers``, outside code.

    With ``flag_unknown``, a number not in ``numbers`` becomes ``[n?]``; without, a bracket
    citing no known number is left as written.
    """
    unknown = "[{n}?]" if flag_unknown else "[{n}]"

    def convert(match: re.Match[str]) -> str:
        cited = [int(part) for part in match.group(1).split(",")]
        if not flag_unknown and not any(n in numbers for n in cited):
            return match.group(0)
        return "".join(
            f"[^{label_prefix}{n}]" if n in numbers else unknown.format(n=n) for n in cited
        )

    pieces: list[str] = []
    done = 0
    for code in CODE.finditer(text):
        pieces.append(CITATION.sub(convert, text[done : code.start()]))
        pieces.append(code.group(0))
        done = code.end()
    pieces.append(CITATION.sub(convert, text[done:]))
    return "".join(pieces)


def _unverified_marker(link: Link) -> str:
    # A labelled link hides its address: show it, in code so that it is not a link itself.
    shown = f" `{link.url.replace('`', '%60')}`" if link.label is not None else ""
    return f" *(⚠ unverified link{shown})*"


def _warnings(message: Message) -> list[str]:
    """A note under an answer naming what its reader should not trust blindly."""
    problems = []
    if message.sources:
        unknown = check_citations(message.text, message.sources).unknown
        problems += [f"[{n}] points at no source" for n in unknown]
    for link in unverified_links(strip_control(message.text), message.sources):
        problems.append(
            f"`{one_line(link.url, 500).replace('`', '%60')}` is not one of its sources"
        )
    if not problems:
        return []
    return ["", "> ⚠ Check before trusting: " + "; ".join(problems) + "."]


def _footnote(source: Source, label_prefix: str) -> str:
    label = f"[^{label_prefix}{source.n}]"
    parts = [one_line(source.title, 200), one_line(source.url, 2000)]
    return f"{label}: " + " — ".join(part for part in parts if part)


def _utc(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M UTC")
