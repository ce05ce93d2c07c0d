"""The contract every chat backend implements.

A backend turns a list of chat messages into a stream of text pieces. It counts tokens
with its own tokenizer, so that prompt assembly can keep every prompt inside the window.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol, TypedDict


class ChatMessage(TypedDict):
    role: str  # "system", "user" or "assistant"
    content: str


# progress(description, fraction done or None when unknown)
ProgressCallback = Callable[[str, float | None], None]


@dataclass(frozen=True)
class GenerationOptions:
    max_new_tokens: int = 512
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None


@dataclass
class GenerationStats:
    """Filled in by ``stream()`` as it runs; read after the stream ends."""

    prompt_tokens: int = 0
    # prompt tokens served from a cached prefix; prefilled = prompt_tokens - reused_tokens
    reused_tokens: int = 0
    new_tokens: int = 0
    ttft_s: float = 0.0
    total_s: float = 0.0

    @property
    def tokens_per_s(self) -> float:
        decode_time = self.total_s - self.ttft_s
        if self.new_tokens <= 1 or decode_time <= 0:
            return 0.0
        return (self.new_tokens - 1) / decode_time


class ChatModel(Protocol):
    """What ``chat.Session`` needs from a model backend."""

    name: str

    @property
    def context_window(self) -> int: ...

    @property
    def loaded(self) -> bool: ...

    def describe(self) -> dict[str, str]:
        """Facts for the status bar and ``--json``: at least ``device`` and ``dtype``."""
        ...

    def load(self, progress: ProgressCallback | None = None) -> None: ...

    def count_tokens(self, messages: list[ChatMessage]) -> int:
        """Tokens the chat template produces for ``messages`` plus the generation prompt."""
        ...

    def count_text_tokens(self, text: str) -> int:
        """Tokens in a piece of plain text (no chat template)."""
        ...

    def stream(
        self,
        messages: list[ChatMessage],
        options: GenerationOptions,
        stop: threading.Event,
        stats: GenerationStats | None = None,
    ) -> Iterator[str]:
        """Yield the answer piece by piece; return early once ``stop`` is set."""
        ...
