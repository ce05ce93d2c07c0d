"""Run blocking work in daemon threads that a Textual worker can walk away from.

Textual runs thread workers in asyncio's default executor, and the interpreter waits for
those threads at exit. Loading Phi-3 or a slow page fetch cannot be interrupted, so the
real work runs in a daemon thread and the worker only waits on it, checking whether it
was cancelled: quitting never waits for a model load to finish.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")

_POLL_S = 0.05
_END = object()


class DaemonRun(Generic[T]):
    """Call ``work`` in a daemon thread; ``wait`` returns its result or raises its error."""

    def __init__(self, work: Callable[[], T], name: str) -> None:
        self._result: list[T] = []
        self._error: list[BaseException] = []
        self.thread = threading.Thread(target=self._run, args=(work,), name=name, daemon=True)
        self.thread.start()

    def _run(self, work: Callable[[], T]) -> None:
        try:
            self._result.append(work())
        except BaseException as exc:
            self._error.append(exc)

    def wait(self, cancelled: Callable[[], bool]) -> T | None:
        """The result, or None if ``cancelled()`` became true first."""
        while self.thread.is_alive():
            if cancelled():
                return None
            self.thread.join(_POLL_S)
        if self._error:
            raise self._error[0]
        return self._result[0]


class DaemonIterator(Generic[T]):
    """Drive an iterator in a daemon thread and hand its items over through a queue."""

    def __init__(self, make: Callable[[], Iterator[T]], name: str) -> None:
        self._items: queue.Queue[object] = queue.Queue()
        self._error: list[BaseException] = []
        self.thread = threading.Thread(target=self._run, args=(make,), name=name, daemon=True)
        self.thread.start()

    def _run(self, make: Callable[[], Iterator[T]]) -> None:
        try:
            for item in make():
                self._items.put(item)
        except BaseException as exc:
            self._error.append(exc)
        finally:
            self._items.put(_END)

    def items(self, cancelled: Callable[[], bool]) -> Iterator[T]:
        """Yield items until the iterator ends (re-raising its error) or ``cancelled()``."""
        while not cancelled():
            try:
                item = self._items.get(timeout=_POLL_S)
            except queue.Empty:
                continue
            if item is _END:
                if self._error:
                    raise self._error[0]
                return
            yield item  # type: ignore[misc]
