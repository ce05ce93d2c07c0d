"""Trip plans: parsing well-formed, partial and malformed answers, and the iCalendar export."""

from __future__ import annotations

from datetime import date, datetime

import pytest
from icalendar import Calendar

from phichat.domain import Conversation, Message, Source
from phichat.errors import NoItinerary
from phichat.features.export.calendar import conversation_to_ics, itinerary_to_ics, latest_plan
from phichat.features.itinerary import PlanItem, clock_time, parse_itinerary

WELL_FORMED = """\
Here is a relaxed two-day plan for Lisbon.

### Day 1: Alfama and Baixa
- Morning — **Castelo de São Jorge**: walk the walls. Tip: opens 09:00, €15. [1]
- Afternoon (13:00–16:00) — **Tram 28**: ride it to Estrela. [2]
- Evening: **Time Out Market** - dinner at the food hall. Note: busy after 19:00 [1][3]

### Day 2: Belém
- 09:30 – **Jerónimos Monastery**: see the cloister. Tip: closed on Mondays [2]
- **Afternoon**
  - **Pastéis de Belém**: taste the custard tarts
  - Tip: expect a queue
- 7 pm: Fado show in Bairro Alto

Enjoy your trip!
"""

SOURCES = [
    Source(1, "Castle of São Jorge: hours and tickets", "https://castelo.example.pt/visit"),
    Source(2, "Lisbon trams", "https://trams.example.com/28"),
    Source(3, "Time Out Market", "javascript:alert(1)"),  # never becomes a URL
]


def test_a_well_formed_plan_gives_days_slots_items_and_citations() -> None:
    plan = parse_itinerary(WELL_FORMED)
    assert plan is not None
    assert [(d.number, d.title) for d in plan.days] == [(1, "Alfama and Baixa"), (2, "Belém")]
    first, second = plan.days
    assert [s.label for s in first.slots] == ["Morning", "Afternoon", "Evening"]
    assert first.slots[0].items == (
        PlanItem("Castelo de São Jorge", "walk the walls", "opens 09:00, €15", (1,)),
    )
    assert (first.slots[1].start, first.slots[1].end) == ("13:00", "16:00")
    assert first.slots[2].items[0].citations == (1, 3)
    assert first.slots[2].items[0].note == "busy after 19:00"
    assert [(s.label, s.start) for s in second.slots] == [
        ("09:30", "09:30"),
        ("Afternoon", None),
        ("7 pm", "19:00"),
    ]
    # A bare slot line takes its sub-bullets as items, and a "Tip:" bullet as their note.
    assert second.slots[1].items == (
        PlanItem("Pastéis de Belém", "taste the custard tarts", "expect a queue"),
    )
    assert second.slots[2].items == (PlanItem("", "Fado show in Bairro Alto"),)
    assert plan.citations() == [1, 2, 3]


def test_a_one_day_plan_without_a_day_heading_is_day_one() -> None:
    plan = parse_itinerary(
        "1. **Morning:** Walk the Ribeira. [1]\n2. **Lunch:** Francesinha at Café Santiago\n"
        "3. **Evening:** Sunset from the Dom Luís I Bridge [2]"
    )
    assert plan is not None and len(plan.days) == 1 and plan.days[0].number == 1
    assert [s.label for s in plan.days[0].slots] == ["Morning", "Lunch", "Evening"]
    assert plan.days[0].slots[2].items[0].activity == "Sunset from the Dom Luís I Bridge"


def test_a_plan_cut_off_mid_answer_keeps_what_was_written() -> None:
    partial = WELL_FORMED.split("### Day 2")[0] + "### Day 2: Belém\n- 09:30 – **Jerón"
    plan = parse_itinerary(partial)
    assert plan is not None
    assert [len(d.slots) for d in plan.days] == [3, 1]
    assert "Jerón" in plan.days[1].slots[0].items[0].activity


@pytest.mark.parametrize(
    "text",
    [
        "",
        "Lisbon is lovely in spring. The morning light on the river is famous, and in the "
        "evening the miradouros fill up.",
        "Morning: just one slot is not a plan.",
        "### Day 1\n### Day 2\nNothing planned yet.",
        "- apples\n- pears\n- 3 museums",
        "\x1b[2J[bold red]Morning[/] \x00",
    ],
)
def test_text_that_is_not_a_plan_gives_none_without_raising(text: str) -> None:
    assert parse_itinerary(text) is None


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("9:30 am", "09:30"),
        ("2 pm", "14:00"),
        ("12 am", "00:00"),
        ("14h30", "14:30"),
        ("7.15", "07:15"),
        ("3", None),
        ("25:00", None),
        ("13 pm", None),
    ],
)
def test_clock_times(raw: str, expected: str | None) -> None:
    assert clock_time(raw) == expected


def events(ics: str) -> list:  # type: ignore[type-arg]
    return list(Calendar.from_ical(ics).walk("VEVENT"))


def test_ics_round_trips_each_slot_with_place_times_and_source_url() -> None:
    plan = parse_itinerary(WELL_FORMED)
    assert plan is not None
    ics = itinerary_to_ics(
        plan,
        SOURCES,
        date(2026, 5, 1),
        uid_prefix="conv-msg",
        stamp=datetime(2026, 4, 1, 12, 0),
        title="Lisbon in two days",
    )
    assert ics.startswith("BEGIN:VCALENDAR\r\n") and "\r\nVERSION:2.0\r\n" in ics
    parsed = events(ics)
    assert len(parsed) == 6
    castle = parsed[0]
    assert castle.get("dtstart").dt == datetime(2026, 5, 1, 9, 0)
    assert castle.get("dtend").dt == datetime(2026, 5, 1, 12, 0)
    assert str(castle.get("location")) == "Castelo de São Jorge"
    assert str(castle.get("url")) == "https://castelo.example.pt/visit"
    description = str(castle.get("description"))
    assert "walk the walls (opens 09:00, €15)" in description
    assert "[1] Castle of São Jorge: hours and tickets https://castelo.example.pt/visit" in (
        description
    )
    assert str(castle.get("summary")) == "Morning: Castelo de São Jorge"
    tram = parsed[1]
    assert (tram.get("dtstart").dt.hour, tram.get("dtend").dt.hour) == (13, 16)
    # Only an http(s) address becomes the URL: the market's source is javascript:.
    market = parsed[2]
    assert market.get("url") is None or "javascript" not in str(market.get("url"))
    # Day 2 is the next calendar day; a clock-time slot ends when the next one starts.
    monastery = parsed[3]
    assert monastery.get("dtstart").dt == datetime(2026, 5, 2, 9, 30)
    assert monastery.get("dtend").dt == datetime(2026, 5, 2, 12, 30)  # capped at 3 hours
    fado = parsed[5]
    assert fado.get("dtstart").dt == datetime(2026, 5, 2, 19, 0)
    assert fado.get("location") is None  # no place was named
    assert len({str(e.get("uid")) for e in parsed}) == 6


def conversation_with(*answers: str) -> Conversation:
    conversation = Conversation(id="c0ffee123456", title="Lisbon")
    for text in answers:
        conversation.messages.append(Message(role="user", text="Plan Lisbon"))
        conversation.messages.append(Message(role="assistant", text=text, sources=SOURCES))
    return conversation


def test_the_conversation_export_uses_the_newest_answer_that_is_a_plan() -> None:
    conversation = conversation_with(WELL_FORMED, "Sure! Anything else?")
    found = latest_plan(conversation)
    assert found is not None and found[0] is conversation.messages[1]
    ics = conversation_to_ics(conversation, date(2026, 6, 10))
    assert events(ics)[0].get("dtstart").dt == datetime(2026, 6, 10, 9, 0)


def test_exporting_a_conversation_without_a_plan_is_a_clear_error() -> None:
    with pytest.raises(NoItinerary, match="itinerary"):
        conversation_to_ics(conversation_with("Tides come from the Moon."))
