"""A scripted stand-in model: replies with given text, token by token, without any weights.

It exists for UI tests, demos and screenshots, where the point is the app's behaviour,
not Phi-3's answers. It never claims to be Phi-3: ``describe()`` says "scripted".
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator

from phichat.models.base import ChatMessage, GenerationOptions, GenerationStats, ProgressCallback

Reply = str | Callable[[list[ChatMessage]], str]


class ScriptedModel:
    def __init__(
        self,
        replies: list[Reply] | None = None,
        *,
        context_window: int = 4096,
        token_delay_s: float = 0.0,
        load_delay_s: float = 0.0,
        load_error: Exception | None = None,
    ) -> None:
        self.name = "scripted"
        self._replies = list(replies or ["This is a scripted answer."])
        self._window = context_window
        self.token_delay_s = token_delay_s
        self.load_delay_s = load_delay_s
        self.load_error = load_error
        self._loaded = False
        self.load_s = 0.0
        self.prompts: list[list[ChatMessage]] = []  # every prompt it was given, for assertions

    @property
    def context_window(self) -> int:
        return self._window

    @property
    def loaded(self) -> bool:
        return self._loaded

    def describe(self) -> dict[str, str]:
        return {"model": self.name, "device": "none", "dtype": "scripted"}

    def load(self, progress: ProgressCallback | None = None) -> None:
        if self._loaded:
            return
        if progress:
            progress("loading scripted model", 0.0)
        time.sleep(self.load_delay_s)
        if self.load_error is not None:
            raise self.load_error
        self._loaded = True
        if progress:
            progress("ready", 1.0)

    @staticmethod
    def tokenize(text: str) -> list[str]:
        """Words with their leading space, so joining the pieces gives the text back."""
        return re.findall(r"\s*\S+|\s+", text)

    def count_text_tokens(self, text: str) -> int:
        return len(self.tokenize(text))

    def count_tokens(self, messages: list[ChatMessage]) -> int:
        # Two tokens of chat-template overhead per message, plus the generation prompt.
        return sum(self.count_text_tokens(m["content"]) + 2 for m in messages) + 1

    def stream(
        self,
        messages: list[ChatMessage],
        options: GenerationOptions,
        stop: threading.Event,
        stats: GenerationStats | None = None,
    ) -> Iterator[str]:
        self.prompts.append(list(messages))
        reply = self._replies.pop(0) if len(self._replies) > 1 else self._replies[0]
        text = reply(messages) if callable(reply) else reply
        stats = stats if stats is not None else GenerationStats()
        stats.prompt_tokens = self.count_tokens(messages)
        started = time.perf_counter()
        for index, piece in enumerate(self.tokenize(text)[: options.max_new_tokens]):
            if stop.is_set():
                break
            if self.token_delay_s:
                # Wait in small steps so a stop request is noticed quickly.
                stop.wait(self.token_delay_s)
                if stop.is_set():
                    break
            if index == 0:
                stats.ttft_s = time.perf_counter() - started
            stats.new_tokens = index + 1
            yield piece
        stats.total_s = time.perf_counter() - started
