"""The web search query for a turn: the user's text, or a standalone rewrite of a follow-up."""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence

from phichat import prompts
from phichat.domain import Message
from phichat.models.base import ChatModel, GenerationOptions

MAX_QUERY_TOKENS = 32
# Only the last few turns help resolve "there" or "it"; more would cost prefill time.
HISTORY_TURNS = 3
_HISTORY_CHARS = 600


def first_line_query(raw: str) -> str:
    """Clean a model's reply down to a query: first line, no label, no quotes."""
    line = next((part for part in raw.strip().splitlines() if part.strip()), "")
    line = re.sub(r"^\s*(search\s+)?query\s*:\s*", "", line, flags=re.IGNORECASE)
    return line.strip().strip("\"'`").strip()


def looks_usable(query: str) -> bool:
    """Reject empty or garbled rewrites: too short, too long, or mostly not words."""
    if len(query) < 3 or len(query) > 200:
        return False
    letters = sum(ch.isalnum() or ch.isspace() for ch in query)
    return letters / len(query) >= 0.8 and any(ch.isalpha() for ch in query)


def _history_text(history: Sequence[Message]) -> str:
    recent = [m for m in history if m.text.strip() and not m.error][-2 * HISTORY_TURNS :]
    lines = []
    for message in recent:
        text = " ".join(message.text.split())
        if len(text) > _HISTORY_CHARS:
            text = text[:_HISTORY_CHARS] + "…"
        lines.append(f"{message.role}: {text}")
    return "\n".join(lines)


def needs_rewrite(history: Sequence[Message]) -> bool:
    """A follow-up (any earlier answer) is rewritten; a first question is used as it is."""
    return any(m.role == "assistant" and m.text.strip() for m in history)


def search_query(
    model: ChatModel, history: Sequence[Message], question: str, stop: threading.Event
) -> str:
    """The user's text on a first turn; on a follow-up, the model's standalone rewrite.

    The rewrite falls back to the user's own text whenever the model's reply is unusable.
    """
    question = " ".join(question.split())
    if not needs_rewrite(history):
        return question
    prompt = prompts.render("search_query", history=_history_text(history), question=question)
    options = GenerationOptions(max_new_tokens=MAX_QUERY_TOKENS, temperature=0.0)
    raw = "".join(model.stream([{"role": "user", "content": prompt}], options, stop))
    rewritten = first_line_query(raw)
    return rewritten if looks_usable(rewritten) else question
