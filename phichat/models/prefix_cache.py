"""Keep the attention (KV) cache of recent prompts, so the next prompt prefills only what is new.

A follow-up's prompt starts with the previous prompt and answer, token for token, when
prompts are laid out for it (chat/prompt.py). The keys and values of a position depend
only on the tokens up to it (causal attention), so the cached states of a shared token
prefix are exactly what a fresh prefill of that prefix computes; only the tokens after
the longest common prefix need a forward pass. The match is made on token ids, never on
text or on which conversation asked, so a stale entry can only ever give a shorter match,
never a wrong one: switching conversation, regenerating or a stopped answer need no
special case for correctness.

The cache object is anything with ``get_seq_length()`` and ``crop(negative count)``
(transformers' ``DynamicCache``); this module itself never imports torch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol


class Croppable(Protocol):
    def get_seq_length(self) -> int: ...

    def crop(self, tokens_to_remove: int) -> None: ...


@dataclass
class _Entry:
    tokens: list[int]  # exactly the tokens whose states ``cache`` holds
    cache: Any


def common_prefix_length(left: Sequence[int], right: Sequence[int]) -> int:
    length = 0
    for a, b in zip(left, right, strict=False):
        if a != b:
            break
        length += 1
    return length


class PrefixCache:
    """A few KV caches, most recent first, holding at most ``max_tokens`` tokens together.

    A few entries rather than one: a short prompt evaluated between two turns of a
    conversation (a search-query rewrite, the first half of a compare) would otherwise
    evict the conversation's long prefix. The token cap keeps memory at one window's worth
    of states, which is what a single long prompt needs anyway.

    When the shared prefix is less than half of an entry, the prefix is copied (``fork``)
    and the entry stays whole: a short prompt that shares little more than the start of
    the chat template (a query rewrite, another conversation) must not destroy a long
    prefix that the conversation's next prompt continues. Otherwise the entry itself is
    cropped and extended, with no copy.

    Not thread-safe by itself: the backend calls it under its one-generation lock.
    """

    def __init__(
        self,
        max_tokens: int,
        fork: Callable[[Any, int], Any],
        max_entries: int = 2,
    ) -> None:
        self.max_tokens = max_tokens
        self.max_entries = max_entries
        # fork(cache, n): a new cache holding copies of the first n positions of ``cache``.
        self._fork = fork
        self._entries: list[_Entry] = []

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        self._entries.clear()

    def take(self, prompt: Sequence[int]) -> tuple[Any | None, int]:
        """A cache holding the longest prefix shared with ``prompt``, and its length.

        Generation extends the returned cache in place; ``put`` stores it back. At least
        the prompt's last token is always left to prefill, because the next token's
        logits come from a forward pass over it. Returns ``(None, 0)`` when nothing matches.
        """
        best, best_length = None, 0
        for entry in self._entries:
            length = min(common_prefix_length(entry.tokens, prompt), len(prompt) - 1)
            if length > best_length:
                best, best_length = entry, length
        if best is None:
            return None, 0
        if 2 * best_length < len(best.tokens):
            return self._fork(best.cache, best_length), best_length
        self._entries.remove(best)
        cache: Croppable = best.cache
        cache.crop(best_length - cache.get_seq_length())
        return cache, best_length

    def put(self, tokens: Sequence[int], cache: Croppable) -> None:
        """Keep ``cache``, which holds the states of exactly ``tokens``, as the newest entry."""
        length = cache.get_seq_length()
        if length != len(tokens) or length == 0:
            return  # an inconsistent cache would give wrong answers later; drop it
        if length > self.max_tokens:
            cache.crop(self.max_tokens - length)
            tokens = tokens[: self.max_tokens]
        self._entries.insert(0, _Entry(list(tokens), cache))
        total = 0
        for index, entry in enumerate(self._entries):
            total += len(entry.tokens)
            if total > self.max_tokens or index >= self.max_entries:
                del self._entries[index:]
                break

    @property
    def cached_tokens(self) -> int:
        return sum(len(entry.tokens) for entry in self._entries)
