"""Write a trip plan as an iCalendar file (RFC 5545), one event per time slot.

Each event carries the slot's place as LOCATION, its cited source's address as URL, and
the activity, practical note and every cited source in DESCRIPTION. Times are "floating"
(no time zone): a plan for Lisbon means 09:00 in Lisbon, wherever the calendar is opened.
Slots named only by the time of day get conventional hours (morning 09:00–12:00, ...).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from urllib.parse import urlsplit

from phichat.domain import Conversation, Message, Source
from phichat.errors import NoItinerary
from phichat.features.itinerary import Itinerary, Slot, parse_itinerary
from phichat.textsafe import one_line, strip_control

PRODUCT_ID = "-//phichat//trip plan//EN"

# When a slot names a part of the day but no clock time: (start, end) as HH:MM.
PERIOD_HOURS: dict[str, tuple[str, str]] = {
    "breakfast": ("08:00", "09:00"),
    "early morning": ("07:30", "09:00"),
    "morning": ("09:00", "12:00"),
    "late morning": ("10:30", "12:30"),
    "midday": ("12:00", "13:30"),
    "noon": ("12:00", "13:30"),
    "lunch": ("12:30", "14:00"),
    "lunchtime": ("12:30", "14:00"),
    "early afternoon": ("13:00", "15:00"),
    "afternoon": ("14:00", "17:30"),
    "late afternoon": ("16:00", "18:00"),
    "early evening": ("17:30", "19:00"),
    "evening": ("18:30", "21:30"),
    "dinner": ("19:30", "21:00"),
    "night": ("21:00", "23:00"),
}
DEFAULT_LENGTH = timedelta(minutes=90)


def _at(day: date, hhmm: str) -> datetime:
    hours, minutes = (int(part) for part in hhmm.split(":"))
    return datetime.combine(day, time(hours, minutes))


def slot_times(slot: Slot, day: date, next_start: datetime | None) -> tuple[datetime, datetime]:
    """When a slot starts and ends on ``day``."""
    hours = PERIOD_HOURS.get(slot.label.lower())
    start = _at(day, slot.start) if slot.start else _at(day, hours[0] if hours else "09:00")
    if slot.end:
        end = _at(day, slot.end)
    elif slot.start is None and hours:
        end = _at(day, hours[1])
    elif next_start is not None and next_start > start:
        end = min(next_start, start + timedelta(hours=3))
    else:
        end = start + DEFAULT_LENGTH
    if end <= start:
        end = start + DEFAULT_LENGTH
    return start, end


def _web_url(url: str) -> str | None:
    cleaned = strip_control(url).strip()
    parts = urlsplit(cleaned)
    if parts.scheme.lower() in ("http", "https") and parts.netloc and " " not in cleaned:
        return cleaned
    return None


def itinerary_to_ics(
    plan: Itinerary,
    sources: list[Source],
    first_day: date,
    *,
    uid_prefix: str,
    stamp: datetime,
    title: str = "",
) -> str:
    """The plan as iCalendar text; day N of the plan falls on ``first_day`` + N - 1."""
    from icalendar import Calendar, Event

    by_number = {source.n: source for source in sources}
    calendar = Calendar()
    calendar.add("prodid", PRODUCT_ID)
    calendar.add("version", "2.0")
    if title:
        calendar.add("x-wr-calname", one_line(title, 120))
    for day in plan.days:
        on = first_day + timedelta(days=day.number - 1)
        starts = [
            _at(on, slot.start) if slot.start else slot_times(slot, on, None)[0]
            for slot in day.slots
        ]
        for index, slot in enumerate(day.slots):
            following = starts[index + 1] if index + 1 < len(starts) else None
            start, end = slot_times(slot, on, following)
            places = [item.place for item in slot.items if item.place]
            activities = [item.activity for item in slot.items if item.activity]
            summary = " · ".join(places) or "; ".join(activities) or slot.label
            lines = []
            for item in slot.items:
                line = ": ".join(part for part in (item.place, item.activity) if part)
                if item.note:
                    line += f" ({item.note})"
                lines.append(line)
            cited = [by_number[n] for item in slot.items for n in item.citations if n in by_number]
            lines += [f"[{s.n}] {one_line(s.title, 200)} {one_line(s.url, 2000)}" for s in cited]
            event = Event()
            event.add("uid", f"{uid_prefix}-d{day.number}-s{index + 1}@phichat")
            event.add("dtstamp", stamp)
            event.add("dtstart", start)
            event.add("dtend", end)
            event.add("summary", one_line(f"{slot.label}: {summary}", 200))
            if places:
                event.add("location", one_line("; ".join(places), 300))
            if lines:
                event.add("description", strip_control("\n".join(lines)))
            url = next((u for u in (_web_url(s.url) for s in cited) if u), None)
            if url is not None:
                event.add("url", url)
            if day.title:
                event.add("categories", [one_line(f"Day {day.number}: {day.title}", 120)])
            calendar.add_component(event)
    return calendar.to_ical().decode("utf-8")


def latest_plan(conversation: Conversation) -> tuple[Message, Itinerary] | None:
    """The newest answer in the conversation that reads as a trip plan, with its plan."""
    for message in reversed(conversation.messages):
        if message.role != "assistant" or not message.text:
            continue
        plan = parse_itinerary(message.text)
        if plan is not None:
            return message, plan
    return None


def conversation_to_ics(conversation: Conversation, first_day: date | None = None) -> str:
    """The conversation's newest trip plan as iCalendar text (``NoItinerary`` if none).

    The plan starts on ``first_day``, by default the day after today.
    """
    found = latest_plan(conversation)
    if found is None:
        raise NoItinerary(
            "no answer in this conversation reads as a day-by-day plan; "
            "ask again with --preset itinerary, or export it as md"
        )
    message, plan = found
    first_day = first_day or (date.today() + timedelta(days=1))
    return itinerary_to_ics(
        plan,
        message.sources,
        first_day,
        uid_prefix=f"{conversation.id}-{message.id}",
        stamp=datetime.fromtimestamp(message.created_at, UTC),
        title=conversation.title,
    )
