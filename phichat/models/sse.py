"""Server-sent events: turn the lines of a ``text/event-stream`` body into event data.

Only the ``data`` field matters for chat completions. One event may span several
``data:`` lines (joined with newlines); a blank line ends it; comment lines (``:``) are
keep-alives and are skipped.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator


def event_data(lines: Iterable[str]) -> Iterator[str]:
    """Yield the data of each event, in order; a last event without its blank line counts."""
    data: list[str] = []
    for line in lines:
        if not line:
            if data:
                yield "\n".join(data)
                data = []
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        if field == "data":
            data.append(value.removeprefix(" "))
    if data:
        yield "\n".join(data)


def encode_event(data: str) -> bytes:
    """One event carrying ``data`` (which holds no newlines: it is compact JSON)."""
    return f"data: {data}\n\n".encode()
