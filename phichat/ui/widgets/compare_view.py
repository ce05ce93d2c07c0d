"""A compare: one question answered without and with search, in two columns, then a summary."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical

from phichat.domain import Message, Side
from phichat.features.compare_summary import summarize
from phichat.ui.widgets.answer import Answer
from phichat.ui.widgets.compare_summary_view import CompareSummaryView


class CompareView(Vertical):
    def __init__(
        self,
        without: Message | None = None,
        with_search: Message | None = None,
        question: str = "",
    ) -> None:
        super().__init__(classes="compare")
        self._saved = {"without": without, "with": with_search}
        self._question = question  # what both answered: its facts are never "only in one"
        self._reopened = without is not None or with_search is not None

    def compose(self) -> ComposeResult:
        with Horizontal(classes="compare-columns"):
            for side in ("without", "with"):
                message = self._saved[side]
                yield Answer(search=side == "with", message=message).set_class(
                    True, f"compare-{side}"
                )
        yield CompareSummaryView()

    def on_mount(self) -> None:
        if self._reopened:
            self.show_summary_of(self._saved["without"], self._saved["with"], self._question)

    def answer(self, side: str) -> Answer:
        return self.query_one(f".compare-{side}", Answer)

    def show_summary_of(
        self, without: Message | None, with_search: Message | None, question: str = ""
    ) -> None:
        self.query_one(CompareSummaryView).show(summarize(without, with_search, question))

    @property
    def sides(self) -> tuple[Side, Side]:
        return ("without", "with")
