"""The plain data that flows between layers: conversations, messages and their sources.

These are deliberately free of any storage or UI concern; ``storage/`` maps them to rows
and ``ui/`` renders them.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Literal

Role = Literal["user", "assistant"]


@dataclass(frozen=True)
class SourcePassage:
    """One passage of a web page that was packed into the prompt, with its ranking score."""

    text: str
    score: float = 0.0
    heading: str = ""


@dataclass(frozen=True)
class Source:
    """A numbered web source; ``[n]`` in an answer refers to ``Source.n``."""

    n: int
    title: str
    url: str
    passages: tuple[SourcePassage, ...] = ()

    @property
    def site(self) -> str:
        from urllib.parse import urlsplit

        host = urlsplit(self.url).hostname or ""
        return host.removeprefix("www.")


def new_id() -> str:
    return uuid.uuid4().hex[:12]


@dataclass
class Message:
    """One turn of a conversation.

    ``stopped`` marks an answer cut short by the user; ``search_used`` records whether the
    search toggle was on, and ``grounded`` whether sources actually reached the prompt.
    ``context`` is the exact sources block the answer was given, so its sources can be
    pinned and asked again without searching. ``compare_side`` is "without" or "with" for
    the two answers of a compare (one question answered without and with search).
    """

    role: Role
    text: str
    id: str = field(default_factory=new_id)
    created_at: float = field(default_factory=time.time)
    search_used: bool = False
    grounded: bool = False
    query: str | None = None
    sources: list[Source] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    stopped: bool = False
    error: str | None = None
    context: str = ""
    compare_side: str | None = None


@dataclass
class Conversation:
    """An ordered list of messages with a title taken from the first user message."""

    id: str = field(default_factory=new_id)
    title: str = ""
    created_at: float = field(default_factory=time.time)
    messages: list[Message] = field(default_factory=list)

    def title_from(self, text: str, limit: int = 60) -> str:
        flat = " ".join(text.split())
        return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"
