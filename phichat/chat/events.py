"""What ``Session.respond`` yields: small frozen records the TUI and CLI both consume."""

from __future__ import annotations

from dataclasses import dataclass

from phichat.domain import Message, Source, Stage

__all__ = ["Done", "Event", "Failed", "SourcesReady", "Stage", "Status", "Token"]


@dataclass(frozen=True)
class Status:
    """A progress step; ``detail`` is plain text such as the query or "reading 5 of 6 pages"."""

    stage: Stage
    detail: str = ""


@dataclass(frozen=True)
class SourcesReady:
    sources: tuple[Source, ...]
    query: str
    context_chars: int = 0


@dataclass(frozen=True)
class Token:
    text: str


@dataclass(frozen=True)
class Done:
    message: Message


@dataclass(frozen=True)
class Failed:
    """The turn could not finish; ``error`` is one line meant for the user."""

    error: str


Event = Status | SourcesReady | Token | Done | Failed
