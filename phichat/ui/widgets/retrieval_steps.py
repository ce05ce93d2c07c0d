"""The live steps of one answer: the search query, searching, reading n of m, ranking."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from phichat.textsafe import one_line

_LABELS = {
    "loading": "Model",
    "query": "Query",
    "searching": "Search",
    "fetching": "Fetch",
    "reading": "Read",
    "ranking": "Rank",
    "thinking": "Think",
    "writing": "Write",
}


class RetrievalSteps(Static):
    """One line per stage; a repeated stage (reading 2 of 6, 3 of 6...) replaces its line."""

    def __init__(self) -> None:
        super().__init__("", markup=False, classes="steps")
        self._steps: dict[str, str] = {}
        self._finished = False

    @property
    def steps(self) -> dict[str, str]:
        return dict(self._steps)

    def add_step(self, stage: str, detail: str) -> None:
        self._steps[stage] = one_line(detail, 160)
        self.display = True
        self._render_steps()

    def finish(self) -> None:
        self._finished = True
        self._render_steps()

    def _render_steps(self) -> None:
        text = Text()
        stages = list(self._steps)
        for index, stage in enumerate(stages):
            current = index == len(stages) - 1 and not self._finished
            marker = "… " if current else "✓ "
            text.append(marker, style="bold yellow" if current else "green")
            text.append(f"{_LABELS.get(stage, stage.title())}: ", style="bold")
            text.append(self._steps[stage] or stage)
            if index < len(stages) - 1:
                text.append("\n")
        self.update(text)
