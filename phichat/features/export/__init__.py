"""Export a conversation: as Markdown (``markdown``), or its trip plan as iCalendar
(``calendar``). ``render`` is the one entry point the CLI and the app both use."""

from __future__ import annotations

from datetime import date

from phichat.domain import Conversation
from phichat.errors import PhichatError

# Formats ``history export --format`` accepts; ``render`` turns a conversation into each.
EXPORT_FORMATS = ["md", "ics"]


def render(conversation: Conversation, export_format: str, start: date | None = None) -> str:
    """The conversation as text in ``export_format`` (one of EXPORT_FORMATS).

    ``start`` is the calendar date of a trip plan's first day (ics only).
    """
    if export_format == "md":
        from phichat.features.export.markdown import to_markdown

        return to_markdown(conversation)
    if export_format == "ics":
        from phichat.features.export.calendar import conversation_to_ics

        return conversation_to_ics(conversation, start)
    raise PhichatError(f"unknown export format '{export_format}'")
