"""A one-time note above the status bar when Phi-3 runs through transformers on a CPU.

It says what an answer will cost and how to get the faster path. The speed is a real
measurement: the decode speed of the last answer on this machine, remembered in the
preferences; before any answer has been measured, the figure measured for the README's
benchmark, named as such. Dismissed once (its button), it never shows again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Button, Static

from phichat.domain import TurnStats

DISMISSED_PREFERENCE = "cpu_notice_dismissed"
SPEED_PREFERENCE = "cpu_tokens_per_s"
# Decode speed of Phi-3-mini through transformers in the README's benchmark (Benchmarks,
# benchmarks/generation.py: a 2-core VM), by precision.
BENCHMARK_TOKENS_PER_S = {"bfloat16": 1.96, "float32": 1.28}
# How much faster the 4-bit GGUF decodes on the same machine (README: Benchmarks).
GGUF_SPEEDUP = "about 5×"
GGUF_COMMAND = "pip install 'phichat[gguf]' && phichat download --gguf && phichat --backend gguf"
# Answers shorter than this say little about decode speed.
MIN_MEASURED_TOKENS = 8


def applies(backend: str, facts: Mapping[str, str]) -> bool:
    return backend == "transformers" and facts.get("device") == "cpu"


def measured_speed(stats: TurnStats) -> float | None:
    """The decode speed an answer measured, when it is long enough to mean something."""
    speed = stats.tokens_per_s or 0.0
    if (stats.new_tokens or 0) >= MIN_MEASURED_TOKENS and speed > 0:
        return speed
    return None


def notice_text(dtype: str, measured: float | None, max_new_tokens: int) -> str:
    if measured is not None:
        speed, where = measured, "on this CPU (measured on your last answer)"
    else:
        speed = BENCHMARK_TOKENS_PER_S.get(dtype, BENCHMARK_TOKENS_PER_S["float32"])
        where = f"in {dtype} on the 2-core CPU of the README's benchmark"
    minutes = max_new_tokens / speed / 60
    return (
        f"Running on the CPU: about {speed:.1f} tokens/s {where}, so a "
        f"{max_new_tokens}-token answer can take {minutes:.0f} min. "
        f"{GGUF_SPEEDUP} faster: {GGUF_COMMAND}"
    )


class CpuNotice(Horizontal):
    DEFAULT_CSS = """
    CpuNotice { height: auto; background: $warning 15%; padding: 0 1; }
    CpuNotice > Static { width: 1fr; }
    CpuNotice > Button { min-width: 10; height: 1; border: none; }
    """

    def __init__(self, text: str, remember_dismissal: Callable[[], None]) -> None:
        super().__init__(id="cpu-notice")
        self._text = text
        self._remember_dismissal = remember_dismissal

    def compose(self) -> ComposeResult:
        yield Static(Text(self._text), id="cpu-notice-text")
        yield Button("Got it", id="cpu-notice-dismiss", compact=True)

    async def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self._remember_dismissal()
        await self.remove()
