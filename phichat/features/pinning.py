"""Pin the sources of a grounded answer, to ask again without searching again.

A grounded answer keeps the exact sources block it was given (``Message.context``), so
pinning hands the very same text to the next prompt. Answers saved before phichat kept
that block are rebuilt from their stored passages in the same shape.
"""

from __future__ import annotations

from phichat.domain import Message
from phichat.retrieval.pack import render_source
from phichat.retrieval.types import Retrieval


def can_pin(message: Message) -> bool:
    return message.role == "assistant" and bool(message.sources)


def rebuilt_context(message: Message) -> str:
    """The sources block rebuilt from stored passages, through packing's own renderer."""
    blocks = [
        render_source(
            source.n, source.title, source.url, "\n…\n".join(p.text for p in source.passages)
        )
        for source in message.sources
    ]
    return "\n\n".join(blocks)


def pinned_retrieval(message: Message) -> Retrieval | None:
    """The answer's sources as a ``Retrieval`` for ``Session.respond(pinned_sources=...)``."""
    if not can_pin(message):
        return None
    return Retrieval(
        query=message.query or "",
        sources=list(message.sources),
        context_text=message.context or rebuilt_context(message),
    )


def last_pinnable(messages: list[Message]) -> Message | None:
    """The newest answer with sources (in a compare, that is the one with search)."""
    return next((m for m in reversed(messages) if can_pin(m)), None)
