"""Cut streamed text at stop sequences, without ever showing part of one.

Servers apply ``stop`` themselves, but not all of them do it reliably for special-token
strings such as ``<|end|>``; cutting again on our side makes every backend end an answer
at the same place. Text that might be the start of a stop sequence is held back until the
next piece shows whether it is one.
"""

from __future__ import annotations

from collections.abc import Sequence

# Phi-3 ends an answer with <|end|>; <|endoftext|> ends a document, and a model that
# starts a new <|assistant|> turn has finished its own. Every backend stops at these: the
# transformers backend looks their ids up in its tokenizer (32007, 32000 and 32001 in the
# real one), llama.cpp's worker in the file's vocabulary, and servers are sent them as
# ``stop`` strings.
STOP_TOKENS = ("<|end|>", "<|endoftext|>", "<|assistant|>")


class StopScanner:
    """Feed streamed pieces in; get back the text to show, cut before the first stop."""

    def __init__(self, stops: Sequence[str]) -> None:
        self._stops = [stop for stop in stops if stop]
        self._held = ""
        self.stopped = False

    def feed(self, piece: str) -> str:
        """The text that is safe to show now; after a stop sequence, nothing more."""
        if self.stopped:
            return ""
        text = self._held + piece
        cut = min((i for i in (text.find(s) for s in self._stops) if i >= 0), default=-1)
        if cut >= 0:
            self.stopped = True
            self._held = ""
            return text[:cut]
        keep = self._longest_partial_stop(text)
        self._held = text[len(text) - keep :] if keep else ""
        return text[: len(text) - keep]

    def flush(self) -> str:
        """At the end of the stream, held-back text turned out not to be a stop: show it."""
        rest, self._held = self._held, ""
        return "" if self.stopped else rest

    def _longest_partial_stop(self, text: str) -> int:
        """Length of the longest tail of ``text`` that begins some stop sequence."""
        best = 0
        for stop in self._stops:
            for size in range(min(len(stop) - 1, len(text)), best, -1):
                if text.endswith(stop[:size]):
                    best = size
                    break
        return best
