"""One bridge between blocking work in a daemon thread and the thread that waits on it.

Loading a model, a generation, an HTTP read, a DNS lookup or a page extraction block and
cannot be interrupted from outside. They run here in *daemon* threads, so that neither
quitting nor a stop request ever waits on one, and the waiting side hears about stop
requests within ``POLL_S``. Every such bridge in phichat is built from this module.

The API (other branches build on it; keep it stable):

``Channel(stop=None, *, poll_s=POLL_S, join_s=0.0)``
    Items from one or more producers, handed over through one queue, in the order they
    were put. ``channel.start(work, name=...)`` runs ``work(sink)`` in a daemon thread and
    returns its ``Producer``. Iterating the channel yields the items until every producer
    has returned; an exception raised by a producer is re-raised in the consumer, after
    the items it put before it. Once ``stop`` is true (a ``threading.Event`` or a callable,
    checked every ``poll_s`` and before each item) the iteration ends and
    ``channel.stopped`` is True. Leaving the loop (a stop, an error, ``break``, a closed
    generator) closes the channel: ``close()`` tells the producers to stop (``sink.stopping``
    is set and their ``sink.on_stop`` wake-ups run), then waits ``join_s`` seconds for
    them: ``0`` walks away, ``None`` waits until they have ended. It is a context manager.

``Sink[T]``, the producer's end
    ``put(item)`` from any thread (items put after the consumer left are dropped);
    ``stopping``, an event set once the consumer wants no more; ``on_stop(wake)``, a call
    that ends a blocking wait (shutting a socket, say), run when the consumer stops.

``Stream(work, *, name, stop=None, poll_s=POLL_S, join_s=0.0)``
    A channel with exactly one producer, started at once. ``stream.items()`` is a
    generator of the items that returns the producer's result, so a generator can write
    ``result = yield from stream.items()``; ``stream.result()`` gives it after iterating.

``Producer[R]``
    ``thread``, ``done``, and ``result()``: the return value of the work, its exception
    re-raised, or ``NotFinished`` while it is still running.

``iterate(make, *, name, stop=None) -> Stream[T, None]``
    Drive the iterator ``make()`` in a daemon thread and hand over its items. The iterator
    is always driven to its end, even after the consumer left: it may have a stop of its
    own and cleanup (a save) that must not be cut off.

``call(work, *, name, stop=None) -> R | None``
    ``work()``'s result (or its exception), or None once ``stop`` is true first; the
    thread is then abandoned.

``await call_async(work, *, name) -> R``
    The same from an asyncio coroutine: the loop is never blocked, and, unlike
    ``asyncio.to_thread``, nothing joins the thread when the loop closes or the
    interpreter exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable, Generator, Iterable, Iterator
from types import TracebackType
from typing import Any, Generic, Literal, TypeVar

T = TypeVar("T")
R = TypeVar("R")

# How often a waiting consumer looks at its stop condition.
POLL_S = 0.05

# A stop request: an event, or a question such as ``lambda: worker.is_cancelled``.
StopWhen = threading.Event | Callable[[], bool]

_Kind = Literal["item", "end"]


class NotFinished(RuntimeError):
    """The work has not returned (yet): it is still running, or was abandoned."""


class Producer(Generic[R]):
    """One piece of work in a daemon thread, and what came of it."""

    def __init__(
        self,
        work: Callable[[], R],
        name: str,
        finished: Callable[[Producer[R]], None] | None = None,
    ) -> None:
        self._work = work
        self._finished = finished
        self._outcome: list[R] = []
        self._error: BaseException | None = None
        self._done = threading.Event()
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _run(self) -> None:
        try:
            self._outcome.append(self._work())
        except BaseException as exc:  # re-raised in whoever waits on the result
            self._error = exc
        finally:
            self._done.set()
            if self._finished is not None:
                self._finished(self)

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def result(self) -> R:
        if not self._done.is_set():
            raise NotFinished(f"{self.thread.name} has not finished")
        if self._error is not None:
            raise self._error
        return self._outcome[0]


class Sink(Generic[T]):
    """The producers' end of a channel."""

    def __init__(self, inbox: queue.Queue[tuple[_Kind, Any]]) -> None:
        self._inbox = inbox
        self._lock = threading.Lock()
        self._wakes: list[Callable[[], None]] = []
        self.stopping = threading.Event()

    def put(self, item: T) -> None:
        if not self.stopping.is_set():
            self._inbox.put(("item", item))

    def on_stop(self, wake: Callable[[], None]) -> None:
        """Call ``wake`` (in the consumer's thread) when the consumer stops; at once if it has."""
        with self._lock:
            if not self.stopping.is_set():
                self._wakes.append(wake)
                return
        wake()

    def _stop(self) -> None:
        with self._lock:
            self.stopping.set()
            wakes, self._wakes = self._wakes, []
        for wake in wakes:
            wake()


def _stop_check(stop: StopWhen | None) -> Callable[[], bool]:
    if stop is None:
        return lambda: False
    if isinstance(stop, threading.Event):
        return stop.is_set
    return stop


class Channel(Generic[T]):
    """Items from producers in daemon threads, consumed by iterating (see the module doc)."""

    def __init__(
        self,
        stop: StopWhen | None = None,
        *,
        poll_s: float = POLL_S,
        join_s: float | None = 0.0,
    ) -> None:
        self._inbox: queue.Queue[tuple[_Kind, Any]] = queue.Queue()
        self.sink: Sink[T] = Sink(self._inbox)
        self._should_stop = _stop_check(stop)
        self._poll_s = poll_s
        self._join_s = join_s
        self._producers: list[Producer[Any]] = []
        self._running = 0
        self._closed = False
        self.stopped = False

    def start(self, work: Callable[[Sink[T]], R], *, name: str) -> Producer[R]:
        """Run ``work(sink)`` in a daemon thread named ``name``."""
        sink = self.sink
        producer: Producer[R] = Producer(
            lambda: work(sink), name, lambda done: self._inbox.put(("end", done))
        )
        self._producers.append(producer)
        self._running += 1
        producer.start()
        return producer

    def __iter__(self) -> Iterator[T]:
        try:
            while self._running:
                if self._should_stop():
                    self.stopped = True
                    return
                try:
                    kind, payload = self._inbox.get(timeout=self._poll_s)
                except queue.Empty:
                    continue
                if kind == "item":
                    yield payload
                    continue
                self._running -= 1
                payload.result()  # re-raises the producer's exception here
        finally:
            self.close()

    def close(self) -> None:
        """Tell the producers to stop, then wait ``join_s`` for them (None: until they end)."""
        if self._closed:
            return
        self._closed = True
        if all(producer.done for producer in self._producers):
            self.sink.stopping.set()
            return
        self.sink._stop()
        if self._join_s == 0:
            return
        for producer in self._producers:
            producer.thread.join(self._join_s)

    def __enter__(self) -> Channel[T]:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class Stream(Channel[T], Generic[T, R]):
    """A channel with one producer, started at once; ``items()`` returns its result."""

    def __init__(
        self,
        work: Callable[[Sink[T]], R],
        *,
        name: str,
        stop: StopWhen | None = None,
        poll_s: float = POLL_S,
        join_s: float | None = 0.0,
    ) -> None:
        super().__init__(stop, poll_s=poll_s, join_s=join_s)
        self.producer = self.start(work, name=name)

    def items(self) -> Generator[T, None, R]:
        """The items, then the producer's result (``NotFinished`` if the stream was stopped)."""
        yield from self
        return self.producer.result()

    def result(self) -> R:
        return self.producer.result()


def iterate(
    make: Callable[[], Iterable[T]], *, name: str, stop: StopWhen | None = None
) -> Stream[T, None]:
    """Hand over the items of ``make()``, driven to its end in a daemon thread."""

    def drive(sink: Sink[T]) -> None:
        for item in make():
            sink.put(item)

    return Stream(drive, name=name, stop=stop)


def call(work: Callable[[], R], *, name: str, stop: StopWhen | None = None) -> R | None:
    """``work()`` in a daemon thread: its result or exception, or None once ``stop`` is true."""
    channel: Channel[None] = Channel(stop)
    producer = channel.start(lambda _sink: work(), name=name)
    for _ in channel:
        pass
    return None if channel.stopped else producer.result()


async def call_async(work: Callable[[], R], *, name: str) -> R:
    """Await ``work()`` run in a daemon thread that nothing joins (see the module doc)."""
    loop = asyncio.get_running_loop()
    outcome: asyncio.Future[R] = loop.create_future()

    def settle(producer: Producer[R]) -> None:
        if outcome.done():
            return
        try:
            outcome.set_result(producer.result())
        except BaseException as exc:
            outcome.set_exception(exc)

    def finished(producer: Producer[R]) -> None:
        # The loop may be closed already (its coroutine was cancelled): nobody is waiting.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(settle, producer)

    Producer(work, name, finished).start()
    return await outcome
