"""Under a compare: timings, sources used and cited, and facts found in only one answer."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from phichat.domain import Side
from phichat.features.compare_summary import CompareSummary
from phichat.textsafe import one_line

SIDE_NAMES = {"without": "without search", "with": "with search"}


def _seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f} s"


def summary_renderable(summary: CompareSummary) -> Table:
    """One grid: a timings block on the left, the differing facts on the right."""
    timings = Table(box=None, padding=(0, 1), show_edge=False, header_style="bold")
    timings.add_column("")
    timings.add_column("first token", justify="right")
    timings.add_column("total", justify="right")
    sides_figures = (("without search", summary.without), ("with search", summary.with_search))
    for name, figures in sides_figures:
        timings.add_row(Text(name), Text(_seconds(figures.ttft_s)), Text(_seconds(figures.total_s)))
    counts = Text(f"{summary.sources_used} sources packed · {summary.sources_cited} cited")
    if summary.unknown_citations:
        missing = ", ".join(f"[{n}]" for n in summary.unknown_citations)
        counts.append(f" · cites missing {missing}", style="red")
    if summary.retrieval_s is not None:
        counts.append(
            f"\nsearch took {summary.retrieval_s:.1f} s, alongside the first answer", style="dim"
        )

    facts = Text()
    for conflict in summary.conflicts:
        facts.append("⚠ disagree: ", style="bold yellow")
        facts.append(f"{one_line(conflict.without, 40)} (without) vs ")
        facts.append(f"{one_line(conflict.with_search, 40)} (with)")
        if conflict.backed is not None:
            backed = conflict.without if conflict.backed == "without" else conflict.with_search
            facts.append(f"; source [{conflict.source}] says {one_line(backed, 40)}", "dim")
        facts.append("\n")
    if not summary.unique_facts and summary.conflicts:
        facts.append("Otherwise the same numbers, dates, names and places.", "dim")
    elif not summary.unique_facts:
        facts.append("Both answers name the same numbers, dates, names and places.", "dim")
    else:
        facts.append("Only in one answer ", style="bold")
        facts.append("(✓ in the sources, ✗ not)", style="dim")
        sides: tuple[Side, Side] = ("without", "with")
        for side in sides:
            listed = summary.facts_for(side)
            if not listed:
                continue
            facts.append(f"\n{SIDE_NAMES[side]}: ", style="italic")
            for index, fact in enumerate(listed[:12]):
                if index:
                    facts.append(" · ")
                mark, style = ("✓", "green") if fact.supported else ("✗", "red")
                facts.append(mark + " ", style=style)
                facts.append(one_line(fact.text, 60))
            if len(listed) > 12:
                facts.append(f" · and {len(listed) - 12} more", style="dim")

    grid = Table.grid(expand=True, padding=(0, 2))
    grid.add_column(ratio=2)
    grid.add_column(ratio=3)
    left = Table.grid()
    left.add_row(timings)
    left.add_row(counts)
    grid.add_row(left, facts)
    return grid


class CompareSummaryView(Static):
    DEFAULT_CSS = "CompareSummaryView { height: auto; }"

    def __init__(self) -> None:
        super().__init__(Text("Summary: when both answers are done.", style="dim"))
        self.summary: CompareSummary | None = None
        self.border_title = "What search changed"

    def show(self, summary: CompareSummary) -> None:
        self.summary = summary
        self.update(summary_renderable(summary))
