"""A trip plan as a timeline table: day, time slot, place, what to do, note, sources."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from phichat.domain import Source
from phichat.features.itinerary import Itinerary, Slot
from phichat.textsafe import one_line


def _when(slot: Slot) -> str:
    if slot.start and slot.end:
        return f"{slot.start}–{slot.end}"
    if slot.start and slot.label != slot.start:
        return f"{slot.label} {slot.start}"
    return slot.label


def plan_table(plan: Itinerary, sources: list[Source]) -> Table:
    """Every cell is plain Text: place names and notes come from the model, not from us."""
    known = {source.n for source in sources}
    table = Table(expand=True, box=None, padding=(0, 1), show_edge=False, header_style="bold")
    table.add_column("When", style="bold", min_width=7)
    table.add_column("Place", style="italic", ratio=2)
    table.add_column("What", ratio=3)
    table.add_column("Src", no_wrap=True, min_width=3)
    for day in plan.days:
        if len(plan.days) > 1:
            table.add_row(Text(f"Day {day.number}", style="bold underline"), Text(""), Text(""))
        for slot in day.slots:
            items = slot.items or ()
            for index, item in enumerate(items or (None,)):
                when = Text(one_line(_when(slot), 24) if index == 0 else "")
                if item is None:
                    table.add_row(when, Text(""), Text(""), Text(""))
                    continue
                what = Text(one_line(item.activity, 200))
                if item.note:
                    what.append(f"\n{one_line(item.note, 200)}", style="dim")
                cited = Text()
                for number in item.citations:
                    cited.append(f"[{number}]", style="bold" if number in known else "red")
                table.add_row(when, Text(one_line(item.place, 80)), what, cited)
    return table


class ItineraryView(Static):
    """Shown beside (or, in a narrow compare column, under) an answer that reads as a plan."""

    DEFAULT_CSS = "ItineraryView { height: auto; }"

    def __init__(self, plan: Itinerary, sources: list[Source]) -> None:
        super().__init__(plan_table(plan, sources), classes="itinerary")
        self.plan = plan
        first = plan.days[0]
        title = f"Plan · Day 1: {one_line(first.title, 40)}" if first.title else "Plan"
        # A border title is parsed as markup unless it is a Text: the day's title is model output.
        self.border_title = Text(title if len(plan.days) == 1 else f"Plan · {len(plan.days)} days")
