"""Map domain dataclasses to database rows and back.

``phichat.domain`` knows nothing of SQLite; this module is the only place that knows both.
Sources (with their passages and scores) and timings are stored as JSON text.
"""

from __future__ import annotations

import json
import math
import sqlite3
from typing import Any

from phichat.domain import Message, Side, Source, SourcePassage, TurnStats


def sources_to_json(sources: list[Source]) -> str:
    return json.dumps(
        [
            {
                "n": source.n,
                "title": source.title,
                "url": source.url,
                "passages": [
                    {"text": p.text, "score": p.score, "heading": p.heading}
                    for p in source.passages
                ],
            }
            for source in sources
        ],
        ensure_ascii=False,
    )


def sources_from_json(text: str | None) -> list[Source]:
    """The saved sources; a damaged one (edited or corrupted by hand) is left out."""
    sources = []
    for item in _load_json(text, []):
        try:
            sources.append(
                Source(
                    n=int(item["n"]),
                    title=str(item.get("title", "")),
                    url=str(item.get("url", "")),
                    passages=tuple(
                        SourcePassage(
                            text=str(p.get("text", "")),
                            score=float(p.get("score", 0.0)),
                            heading=str(p.get("heading", "")),
                        )
                        for p in item.get("passages", ())
                    ),
                )
            )
        except (AttributeError, KeyError, TypeError, ValueError):
            continue
    return sources


def timings_to_json(timings: TurnStats) -> str:
    """The stats as one flat JSON object (token counts stay integers).

    JSON has no NaN or infinity; a figure that is not a finite number is dropped.
    """
    finite = {key: value for key, value in timings.as_dict().items() if math.isfinite(value)}
    return json.dumps(finite)


def timings_from_json(text: str | None) -> TurnStats:
    """The stats of a stored row, old or new: every row keeps the same flat shape, and a
    figure that is not a finite number (edited or damaged by hand) is left out."""
    flat: dict[str, float] = {}
    for key, value in _load_json(text, {}).items():
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            flat[str(key)] = value
    return TurnStats.from_mapping(flat)


def message_to_row(message: Message, conversation_id: str, position: int) -> dict[str, Any]:
    """The column values for ``message``, keyed by column name."""
    return {
        "id": message.id,
        "conversation_id": conversation_id,
        "position": position,
        "role": message.role,
        "text": message.text,
        "created_at": message.created_at,
        "search_used": int(message.search_used),
        "grounded": int(message.grounded),
        "query": message.query,
        "sources": sources_to_json(message.sources),
        "timings": timings_to_json(message.timings),
        "stopped": int(message.stopped),
        "error": message.error,
        "context": message.context,
        "compare_side": message.compare_side,
    }


def message_from_row(row: sqlite3.Row) -> Message:
    return Message(
        id=row["id"],
        role=row["role"],
        text=row["text"],
        created_at=row["created_at"],
        search_used=bool(row["search_used"]),
        grounded=bool(row["grounded"]),
        query=row["query"],
        sources=sources_from_json(row["sources"]),
        timings=timings_from_json(row["timings"]),
        stopped=bool(row["stopped"]),
        error=row["error"],
        context=row["context"] or "",
        compare_side=_side(row["compare_side"]),
    )


def _side(value: object) -> Side | None:
    """A stored compare side; anything else (damage) reads as no side."""
    if value == "without":
        return "without"
    if value == "with":
        return "with"
    return None


def _load_json(text: str | None, empty: Any) -> Any:
    """The JSON value of ``text`` if it has ``empty``'s type, else ``empty`` (damage too)."""
    if not text or not isinstance(text, str):
        return empty
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return empty
    return value if isinstance(value, type(empty)) else empty
