"""Read a trip-plan answer into days, time slots, items and citations: pure functions.

The itinerary preset asks for ``### Day 1: Title`` headings and one bullet per slot, such
as ``- Morning — **Place**: what to do. Tip: opening hours. [1]``. A small model does not
always comply, so the parser is forgiving: bold or not, a time range instead of a slot
name, items as sub-bullets under a bare ``**Afternoon**`` line, no day heading at all for
a one-day plan. When too little of the answer looks like a plan, ``parse_itinerary``
returns None and the answer is shown as plain text: nothing is lost either way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from phichat.citations import cited_numbers
from phichat.textsafe import strip_control

# Fewer slots than this and the answer is prose that merely mentions "morning".
MIN_SLOTS = 2

_DAY = re.compile(
    r"^(?:#{1,6}\s*)?(?:\*\*|__)?\s*(?:day|tag|jour|d[ií]a|giorno|dag)\s+(?P<n>\d{1,2})\b"
    r"\s*(?:\*\*|__)?\s*[:.)\-–—]?\s*(?P<title>.*)$",
    re.IGNORECASE,
)
_BULLET = re.compile(r"^(?P<indent>\s*)(?:[-*+•]|\d{1,2}[.)])\s+(?P<body>.*)$")
_PERIOD = (
    r"early morning|late morning|morning|midday|noon|lunch(?:time)?|early afternoon|"
    r"late afternoon|afternoon|early evening|evening|dinner|night|breakfast"
)
_CLOCK = r"\d{1,2}(?:[:.h]\d{2})?\s*(?:am|pm|a\.m\.|p\.m\.)?"


def _range(first: str, second: str) -> str:
    return rf"(?P<{first}>{_CLOCK})(?:\s*(?:-|–|—|to|until)\s*(?P<{second}>{_CLOCK}))?"


_SLOT = re.compile(
    rf"^(?:\*\*|__)?\s*(?:(?P<period>{_PERIOD})(?:\s*\(\s*{_range('p1', 'p2')}\s*\))?"
    rf"|{_range('t1', 't2')})"
    r"\s*(?:\*\*|__)?\s*(?:[:|\-–—]+\s*|\s+|$)(?P<rest>.*)$",
    re.IGNORECASE,
)
_NOTE = re.compile(
    r"\b(?:tip|note|practical(?: note)?|good to know|hours|cost|price)s?\s*:\s*", re.IGNORECASE
)
_CITATION_RUN = re.compile(r"\s*(?:\[\s*\d{1,3}\s*(?:,\s*\d{1,3}\s*)*\]\s*)+")
_BOLD = re.compile(r"\*\*(?P<b>[^*]+)\*\*|__(?P<u>[^_]+)__")


@dataclass(frozen=True)
class PlanItem:
    place: str
    activity: str
    note: str = ""
    citations: tuple[int, ...] = ()


@dataclass(frozen=True)
class Slot:
    label: str  # "Morning", or the time as written when only a time was given
    start: str | None = None  # "09:30" (24-hour) when a clock time was given
    end: str | None = None
    items: tuple[PlanItem, ...] = ()


@dataclass(frozen=True)
class Day:
    number: int
    title: str
    slots: tuple[Slot, ...]


@dataclass(frozen=True)
class Itinerary:
    days: tuple[Day, ...]

    @property
    def slot_count(self) -> int:
        return sum(len(day.slots) for day in self.days)

    def citations(self) -> list[int]:
        seen: dict[int, None] = {}
        for day in self.days:
            for slot in day.slots:
                for item in slot.items:
                    for number in item.citations:
                        seen.setdefault(number, None)
        return list(seen)


def clock_time(raw: str | None) -> str | None:
    """ "9:30 am" → "09:30", "2 pm" → "14:00", "14h30" → "14:30"; None if not a time."""
    if not raw:
        return None
    match = re.fullmatch(
        r"(\d{1,2})(?:[:.h](\d{2}))?\s*(am|pm|a\.m\.|p\.m\.)?", raw.strip(), re.IGNORECASE
    )
    if match is None:
        return None
    hours, minutes, half = int(match.group(1)), int(match.group(2) or 0), match.group(3)
    if half:
        if not 1 <= hours <= 12:
            return None
        hours = hours % 12 + (12 if half.lower().startswith("p") else 0)
    elif match.group(2) is None:
        return None  # a bare number is not a time ("3 museums")
    if hours > 23 or minutes > 59:
        return None
    return f"{hours:02d}:{minutes:02d}"


def _clean(text: str) -> str:
    return " ".join(text.replace("**", "").replace("__", "").split()).strip(" -–—:|;,")


def parse_item(text: str) -> PlanItem | None:
    """One bullet's text: **Place**: activity. Tip: note. [n]"""
    citations = tuple(cited_numbers(text))
    body = _CITATION_RUN.sub(" ", text)
    note = ""
    note_match = _NOTE.search(body)
    if note_match is not None:
        note = _clean(body[note_match.end() :])
        body = body[: note_match.start()]
    bold = _BOLD.search(body)
    if bold is not None:
        place = _clean(bold.group("b") or bold.group("u"))
        activity = _clean(body[: bold.start()] + " " + body[bold.end() :])
    else:
        split = re.split(r":\s+|\s+[—–-]\s+", body, maxsplit=1)
        place, activity = (split[0], split[1]) if len(split) == 2 else ("", body)
        place, activity = _clean(place), _clean(activity)
        if len(place) > 60:  # a sentence, not a place: keep it all as the activity
            place, activity = "", _clean(body)
    if not (place or activity or note):
        return None
    return PlanItem(place, activity.rstrip("."), note.rstrip("."), citations)


def _slot_from(match: re.Match[str]) -> tuple[Slot, str]:
    period = match.group("period")
    first = match.group("p1") or match.group("t1")
    start, end = clock_time(first), clock_time(match.group("p2") or match.group("t2"))
    label = period.strip().capitalize() if period else (match.group("t1") or "").strip()
    return Slot(label=label, start=start, end=end), match.group("rest").strip()


def parse_itinerary(text: str) -> Itinerary | None:
    """The plan in ``text``, or None when it does not read as one."""
    days: list[tuple[int, str, list[tuple[Slot, list[PlanItem]]]]] = []
    current_slot: tuple[Slot, list[PlanItem]] | None = None
    slot_indent = 0

    def day_for_slot() -> list[tuple[Slot, list[PlanItem]]]:
        if not days:
            days.append((1, "", []))  # a one-day plan often has no day heading
        return days[-1][2]

    for raw_line in strip_control(text).splitlines():
        line = raw_line.rstrip()
        if not line.strip():
            continue
        day = _DAY.match(line.strip())
        if day is not None:
            days.append((int(day.group("n")), _clean(day.group("title").lstrip("#")), []))
            current_slot = None
            continue
        bullet = _BULLET.match(line)
        indent = len(bullet.group("indent")) if bullet else len(line) - len(line.lstrip())
        body = (bullet.group("body") if bullet else line).strip()
        heading = re.match(r"^#{1,6}\s*(.*)$", body)
        if heading is not None:
            body = heading.group(1)
        slot_match = _SLOT.match(body)
        if slot_match is not None and not (current_slot and indent > slot_indent and bullet):
            slot, rest = _slot_from(slot_match)
            current_slot = (slot, [])
            slot_indent = indent
            day_for_slot().append(current_slot)
            item = parse_item(rest) if rest else None
            if item is not None:
                current_slot[1].append(item)
            continue
        if current_slot is None or bullet is None:
            continue  # prose around the plan: kept in the answer, not part of the table
        items = current_slot[1]
        if _NOTE.match(body) and items:
            note = _clean(_NOTE.sub("", body, count=1))
            last = items[-1]
            joined = f"{last.note}; {note}" if last.note else note
            extra = tuple(n for n in cited_numbers(body) if n not in last.citations)
            items[-1] = PlanItem(last.place, last.activity, joined, last.citations + extra)
            continue
        if indent > slot_indent or not items:
            item = parse_item(body)
            if item is not None:
                items.append(item)
    plan = Itinerary(
        tuple(
            Day(number, title, tuple(Slot(s.label, s.start, s.end, tuple(i)) for s, i in slots))
            for number, title, slots in days
            if slots
        )
    )
    return plan if plan.slot_count >= MIN_SLOTS else None
