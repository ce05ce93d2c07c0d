"""A scripted stand-in model: replies with given text, token by token, without any weights.

It exists for UI tests, demos and screenshots, where the point is the app's behaviour,
not Phi-3's answers. It never claims to be Phi-3: ``describe()`` says "scripted".
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator

from phichat.models.base import (
    BackendBase,
    ChatMessage,
    Generation,
    ProgressCallback,
    Prompt,
)

Reply = str | Callable[[list[ChatMessage]], str]


class ScriptedModel(BackendBase):
    # Tests run its streams side by side (a stopped turn still saving, a served queue).
    one_generation_at_a_time = False

    def __init__(
        self,
        replies: list[Reply] | None = None,
        *,
        context_window: int = 4096,
        token_delay_s: float = 0.0,
        load_delay_s: float = 0.0,
        load_error: Exception | None = None,
    ) -> None:
        super().__init__("scripted")
        self._replies = list(replies or ["This is a scripted answer."])
        self._window = context_window
        self.token_delay_s = token_delay_s
        self.load_delay_s = load_delay_s
        self.load_error = load_error
        self._loaded = False
        self.prompts: list[list[ChatMessage]] = []  # every prompt it was given, for assertions

    @property
    def context_window(self) -> int:
        return self._window

    @property
    def loaded(self) -> bool:
        return self._loaded

    def describe(self) -> dict[str, str]:
        return {"model": self.name, "device": "none", "dtype": "scripted"}

    def _require(self) -> None:
        """Nothing to require: with no weights, it answers whether loaded or not."""

    def _load(self, progress: ProgressCallback) -> None:
        progress("loading scripted model", 0.0)
        time.sleep(self.load_delay_s)
        if self.load_error is not None:
            raise self.load_error
        self._loaded = True

    @staticmethod
    def tokenize(text: str) -> list[str]:
        """Words with their leading space, so joining the pieces gives the text back."""
        return re.findall(r"\s*\S+|\s+", text)

    def count_text_tokens(self, text: str) -> int:
        return len(self.tokenize(text))

    def count_tokens(self, messages: list[ChatMessage]) -> int:
        # Two tokens of chat-template overhead per message, plus the generation prompt.
        return sum(self.count_text_tokens(m["content"]) + 2 for m in messages) + 1

    def _prompt(self, messages: list[ChatMessage]) -> Prompt:
        return Prompt(list(messages), self.count_tokens(messages))

    def _generate(self, job: Generation) -> Iterator[str]:
        messages, stop = job.prompt.messages, job.stop
        self.prompts.append(list(messages))
        reply = self._replies.pop(0) if len(self._replies) > 1 else self._replies[0]
        text = reply(messages) if callable(reply) else reply
        for piece in self.tokenize(text)[: job.options.max_new_tokens]:
            if stop.is_set():
                break
            if self.token_delay_s:
                # Wait in small steps so a stop request is noticed quickly.
                stop.wait(self.token_delay_s)
                if stop.is_set():
                    break
            yield piece
