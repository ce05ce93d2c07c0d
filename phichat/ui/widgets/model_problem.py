"""The panel shown when the model cannot be loaded: what went wrong and how to fix it."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static

from phichat.textsafe import strip_control

_HISTORY_HINT = "Past conversations stay available: Ctrl+B opens the list, Ctrl+S exports one."


def fix_advice(model_name: str, backend: str = "transformers") -> str:
    """What to try next, for the backend in use (each fails for its own reasons)."""
    if backend == "openai":
        steps = (
            "  • check that the server is running and --base-url points at it\n"
            "  • check --api-model, and api_key (config file or PHICHAT_API_KEY)\n"
        )
    elif backend == "gguf":
        steps = (
            "  • download the 4-bit file once:  phichat download --gguf\n"
            "  • or set gguf_file to a .gguf file, and install phichat[gguf]\n"
        )
    else:
        steps = (
            f"  • download the weights once:  phichat download {model_name}\n"
            "  • or point at a local copy:   phichat --model /path/to/folder\n"
            "  • or check --device and --dtype if the weights are present\n"
        )
    return "To fix it, either:\n" + steps + _HISTORY_HINT


class ModelProblem(Vertical):
    def __init__(
        self, model_name: str, error: str, *, backend: str = "transformers", id: str | None = None
    ) -> None:
        super().__init__(id=id)
        self._model_name = model_name
        self._error = error
        self._backend = backend

    def compose(self) -> ComposeResult:
        yield Static(Text("The model could not be loaded", style="bold"), classes="title")
        yield Static(strip_control(self._error), markup=False, classes="error")
        yield Static(
            fix_advice(strip_control(self._model_name), self._backend),
            markup=False,
            classes="advice",
        )
