"""The panel shown when the model cannot be loaded: what went wrong and how to fix it."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static

from phichat.textsafe import strip_control


def fix_advice(model_name: str) -> str:
    return (
        "To fix it, either:\n"
        f"  • download the weights once:  phichat download {model_name}\n"
        "  • or point at a local copy:   phichat --model /path/to/folder\n"
        "  • or check --device and --dtype if the weights are present.\n"
        "Past conversations stay available: Ctrl+B opens the list, Ctrl+S exports one."
    )


class ModelProblem(Vertical):
    def __init__(self, model_name: str, error: str, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._model_name = model_name
        self._error = error

    def compose(self) -> ComposeResult:
        yield Static(Text("The model could not be loaded", style="bold"), classes="title")
        yield Static(strip_control(self._error), markup=False, classes="error")
        yield Static(fix_advice(strip_control(self._model_name)), markup=False, classes="advice")
