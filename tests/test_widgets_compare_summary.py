"""The compare summary on its own, inside a compare's styles: a placeholder, then the figures."""

from __future__ import annotations

from widget_host import WidgetHost, screen_lines, screen_text

from phichat.chat.compare_summary import CompareSummary, Conflict, SideTimings, UniqueFact
from phichat.ui.widgets.compare_summary_view import CompareSummaryView

SIZE = (160, 20)  # wide enough that no line of the grid wraps

SUMMARY = CompareSummary(
    without=SideTimings(ttft_s=1.25, total_s=6.0),
    with_search=SideTimings(ttft_s=3.5, total_s=None),
    retrieval_s=2.0,
    sources_used=2,
    sources_cited=1,
    unknown_citations=(3,),
    unique_facts=(
        UniqueFact("with", "name", "[b]Trocadéro[/b]", supported=True),
        UniqueFact("without", "date", "1887", supported=False),
    ),
    conflicts=(Conflict("number", "300 metres", "330 m", backed="with", source=1),),
)


async def test_before_both_answers_end_it_says_so_under_its_title() -> None:
    app = WidgetHost(CompareSummaryView(), within="compare")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        top = next(line for line in screen_lines(app) if line.strip())
        assert "╭─ What search changed ─" in top
        assert "Summary: when both answers are done." in screen_text(app)


async def test_the_summary_shows_timings_counts_conflicts_and_one_sided_facts() -> None:
    view = CompareSummaryView()
    app = WidgetHost(view, within="compare")
    async with app.run_test(size=SIZE) as pilot:
        view.show(SUMMARY)
        await pilot.pause()
        lines = screen_lines(app)
        text = "\n".join(lines)
        assert "Summary: when both answers are done." not in text
        [without] = [line for line in lines if "without search" in line and "1.2" in line]
        assert "6.0 s" in without
        [with_search] = [line for line in lines if "with search" in line and "3.5 s" in line]
        assert "—" in with_search  # no total yet
        assert "2 sources packed · 1 cited · cites missing [3]" in text
        assert "search took 2.0 s, alongside the first answer" in text
        assert "⚠ disagree: 300 metres (without) vs 330 m (with); source [1] says 330 m" in text
        assert "with search: ✓ [b]Trocadéro[/b]" in text  # a fact's text is never markup
        assert "without search: ✗ 1887" in text
