"""The one owner of loading the chat model: it loads once, however many callers wait.

The TUI starts the load after its first frame and shows the progress; a turn sent before
the model is ready waits on the same load; the CLI waits on it before it saves the
question. Each of them used to load (or poll) on its own; now they all wait here, and a
failed load is turned into one line of text in one place.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from phichat.errors import PhichatError
from phichat.models.base import ChatModel, ProgressCallback
from phichat.textsafe import one_line
from phichat.threads import Producer

# How often a waiter looks at its stop condition while the model loads.
POLL_S = 0.05


class ModelHandle:
    """Loads ``model`` in a daemon thread, once, and lets any number of callers wait.

    Loading Phi-3 cannot be interrupted, so it runs in a daemon thread (``threads``): a caller that
    stops waiting walks away, and quitting never waits for a load to finish. A failed
    load can be started again (a turn does that); the TUI shows the failure instead.
    """

    def __init__(self, model: ChatModel) -> None:
        self.model = model
        self.ready = threading.Event()  # set once the model is loaded
        self.error: str | None = None  # the failed load, as one line for the user
        self.load_s: float | None = None  # how long the load took (None: not loaded here)
        self._settled = threading.Event()  # loaded or failed
        self._failure: BaseException | None = None
        self._lock = threading.Lock()
        self._loading = False
        self._listeners: list[ProgressCallback] = []
        self._load_reported = False
        if model.loaded:
            self.ready.set()
            self._settled.set()

    @property
    def loading(self) -> bool:
        return self._loading

    def start(self) -> None:
        """Begin loading, unless the model is loaded or a load is under way."""
        with self._lock:
            if self.ready.is_set() or self._loading:
                return
            self._loading = True
            self._settled.clear()
            self._failure = None
            self.error = None
        started = time.perf_counter()
        Producer(
            lambda: self.model.load(self._progress),
            "phichat-model-load",
            lambda load: self._ended(load, time.perf_counter() - started),
        ).start()

    @contextmanager
    def listening(self, listener: ProgressCallback) -> Iterator[None]:
        """Pass the load's progress lines to ``listener`` while inside the block."""
        with self._lock:
            self._listeners.append(listener)
        try:
            yield
        finally:
            with self._lock:
                self._listeners.remove(listener)

    def wait(
        self,
        stopped: Callable[[], bool] = lambda: False,
        progress: ProgressCallback | None = None,
        *,
        start: bool = True,
    ) -> bool:
        """Wait for the load (starting it, unless ``start`` is False: the TUI starts its
        own after the first frame, and never again after a failure): True once loaded,
        False if ``stopped()`` became true first. A failed load raises what the backend
        raised."""
        # Listening before the load starts: its first lines come at once.
        with self.listening(progress) if progress is not None else _nothing():
            if start:
                self.start()
            while not self.settle(POLL_S):
                if stopped():
                    return False
        self.raise_if_failed()
        return True

    def settle(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds; True once the load has ended either way."""
        return self._settled.wait(timeout)

    def raise_if_failed(self) -> None:
        if self._failure is not None:
            raise self._failure

    def take_load_s(self) -> float | None:
        """The load's time, to the first turn that asks (the one the load was done for)."""
        with self._lock:
            if self.load_s is None or self._load_reported:
                return None
            self._load_reported = True
            return self.load_s

    def _ended(self, load: Producer[None], seconds: float) -> None:
        """In the load's thread, once it has returned or raised."""
        try:
            load.result()
        except BaseException as exc:
            self._failure = exc
            self.error = load_error_line(exc)
        else:
            self.load_s = seconds
            self._load_reported = False
            self.ready.set()
        finally:
            with self._lock:
                self._loading = False
            self._settled.set()

    def _progress(self, description: str, fraction: float | None) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            listener(description, fraction)


def load_error_line(exc: BaseException) -> str:
    """A failed load as the one line the user reads (a bug says it is unexpected)."""
    if isinstance(exc, PhichatError):
        text = str(exc)
    else:
        text = f"unexpected error while loading: {type(exc).__name__}: {exc}"
    return one_line(text, 1000)


@contextmanager
def _nothing() -> Iterator[None]:
    yield
