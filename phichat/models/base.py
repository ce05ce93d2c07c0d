"""The contract every chat backend implements, and the base class they all build on.

A backend turns a list of chat messages into a stream of text pieces. It counts tokens
with its own tokenizer, so that prompt assembly can keep every prompt inside the window.

``ChatModel`` is what the rest of phichat sees. ``BackendBase`` implements it, in the
spirit of simonw/llm's ``Model.execute``: a backend writes only its own parts -- how it
loads (``_load``), counts (``count_tokens``, ``count_text_tokens``, ``_prompt``) and
generates (``_generate``, one item per new token) -- and the base does the rest once for
all of them: the load lock and idempotent loading, ``load_s``, ``_require``, one
generation at a time, the ttft/new_tokens/total_s bookkeeping, stop handling, cutting at
stop text, error shortening, closable streams and the token bookkeeping of the prompt-prefix
cache (``_reuse_prefix``/``_keep_prefix``, see prefix_cache.py).
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, TypedDict

from phichat.errors import PhichatError
from phichat.models.prefix_cache import PrefixCache
from phichat.models.stops import STOP_TOKENS, StopScanner


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


class AnswerStream(Iterator[str], Protocol):
    """The pieces of one answer; ``close()`` ends the generation behind it at once."""

    def close(self) -> None: ...


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
    ) -> AnswerStream:
        """Yield the answer piece by piece; return early once ``stop`` is set.

        Closing the stream (or leaving a ``for`` loop over a generator) ends the
        generation and frees the model for the next one.
        """
        ...


def first_line(exc: BaseException) -> str:
    """An exception shortened to its first line (its type name when it has no message)."""
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def _no_progress(description: str, fraction: float | None) -> None:
    return None


@dataclass(frozen=True)
class Prompt:
    """The messages of one generation, as the backend's tokenizer sees them."""

    messages: list[ChatMessage]
    count: int  # prompt tokens, as ``count_tokens`` gives them
    tokens: list[int] | None = None  # their ids, for backends that tokenize locally
    encoded: Any = None  # the backend's own encoding of them (transformers: tensors)


@dataclass(frozen=True)
class Generation:
    """One answer to generate: what ``_generate`` reads, and the stats it may correct."""

    prompt: Prompt
    options: GenerationOptions
    stop: threading.Event
    stats: GenerationStats


@dataclass(frozen=True)
class Held:
    """Text a decoder held back until the end: shown, but not a token of its own."""

    text: str


class BackendBase(ABC):
    """The shared part of every backend (see the module docstring)."""

    not_loaded_message: ClassVar[str] = "the model is not loaded yet"
    # Backends whose weights (or worker) serve one sequence wait for each other here;
    # a remote server queues requests itself.
    one_generation_at_a_time: ClassVar[bool] = True
    # Cut the text at STOP_TOKENS here, for backends (servers) that may pass them through.
    cuts_stop_text: ClassVar[bool] = False

    def __init__(self, name: str) -> None:
        self.name = name
        self.load_s = 0.0
        self._load_lock = threading.Lock()
        self._generate_lock = threading.Lock()
        # Token ids (and KV states) of recent prompts and answers; None where the backend
        # keeps no state of its own. Used only under _generate_lock.
        self._prefix: PrefixCache | None = None

    # ---- what a backend writes -----------------------------------------------------------
    @property
    @abstractmethod
    def loaded(self) -> bool: ...

    @property
    @abstractmethod
    def context_window(self) -> int: ...

    @abstractmethod
    def describe(self) -> dict[str, str]: ...

    @abstractmethod
    def _load(self, progress: ProgressCallback) -> None:
        """Make the model ready; raise ``ModelNotAvailable`` (one line) when it cannot be."""

    @abstractmethod
    def count_tokens(self, messages: list[ChatMessage]) -> int: ...

    @abstractmethod
    def count_text_tokens(self, text: str) -> int: ...

    @abstractmethod
    def _prompt(self, messages: list[ChatMessage]) -> Prompt:
        """``messages`` tokenized (or at least counted) for ``_generate``."""

    @abstractmethod
    def _generate(self, job: Generation) -> Iterator[str | Held]:
        """Yield one string per new token (empty while a character is incomplete).

        Runs under the generation lock. It must return soon after ``stop`` is set, even
        while nothing arrives, and clean up when closed. It writes only what the base
        cannot know: ``reused_tokens`` from its own cache, or counts a server reported.
        """

    def _new_prefix_cache(self) -> PrefixCache | None:
        """A backend that can reuse KV states returns a fresh cache for its new weights."""
        return None

    # ---- shared ----------------------------------------------------------------------
    def load(self, progress: ProgressCallback | None = None) -> None:
        """Load once: later calls, and calls that waited on a running load, return at once."""
        report = progress or _no_progress
        with self._load_lock:
            if self.loaded:
                return
            started = time.perf_counter()
            self._load(report)
            # Fresh weights: states computed by any earlier weights must never be reused.
            self._prefix = self._new_prefix_cache()
            self.load_s = time.perf_counter() - started
            report("ready", 1.0)

    def _require(self) -> None:
        if not self.loaded:
            raise PhichatError(self.not_loaded_message)

    def reset_cache(self) -> None:
        """Forget the cached prompt states: they cost memory, and correctness never needs them."""
        with self._generate_lock:
            if self._prefix is not None:
                self._prefix.clear()

    def _reuse_prefix(self, tokens: Sequence[int], stats: GenerationStats) -> Any | None:
        """The cached state of the longest prefix ``tokens`` share with a recent sequence.

        Records its length as ``stats.reused_tokens``; None when nothing can be reused.
        """
        if self._prefix is None:
            return None
        state, stats.reused_tokens = self._prefix.take(tokens)
        return state

    def _keep_prefix(self, tokens: Sequence[int], state: Any) -> None:
        """Keep ``state``, which holds exactly ``tokens`` (prompt plus answer), for reuse."""
        if self._prefix is not None:
            self._prefix.put(tokens, state)

    def stream(
        self,
        messages: list[ChatMessage],
        options: GenerationOptions,
        stop: threading.Event,
        stats: GenerationStats | None = None,
    ) -> Generator[str, None, None]:
        """The answer piece by piece (see ``ChatModel.stream``); fills ``stats`` as it goes."""
        stats = stats if stats is not None else GenerationStats()
        self._require()
        prompt = self._prompt(messages)
        stats.prompt_tokens = prompt.count
        lock = self._generate_lock if self.one_generation_at_a_time else _NO_LOCK
        with lock:
            started = time.perf_counter()
            steps = self._generate(Generation(prompt, options, stop, stats))
            scanner = StopScanner(STOP_TOKENS) if self.cuts_stop_text else None
            try:
                for step in steps:
                    if isinstance(step, Held):
                        text = step.text
                    else:
                        if not stats.new_tokens:
                            stats.ttft_s = time.perf_counter() - started
                        stats.new_tokens += 1
                        text = step
                    shown = scanner.feed(text) if scanner is not None else text
                    if shown and not stop.is_set():
                        yield shown
                    if stop.is_set() or (scanner is not None and scanner.stopped):
                        return
                rest = scanner.flush() if scanner is not None else ""
                if rest:
                    yield rest
            except PhichatError:
                raise
            except Exception as exc:
                raise PhichatError(f"generation failed: {first_line(exc)}") from exc
            finally:
                close = getattr(steps, "close", None)
                if close is not None:
                    close()
                stats.total_s = time.perf_counter() - started


class _NoLock:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


_NO_LOCK = _NoLock()
