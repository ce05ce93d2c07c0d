"""ModelHandle: the one owner of loading the model; everyone else waits on it."""

from __future__ import annotations

import threading

import pytest

from phichat.chat.events import Done, Status
from phichat.chat.factory import turn_options
from phichat.chat.model_handle import ModelHandle
from phichat.chat.session import Session
from phichat.config import Settings
from phichat.domain import Conversation
from phichat.errors import ModelNotAvailable
from phichat.models.base import ProgressCallback
from phichat.models.scripted import ScriptedModel


class CountingModel(ScriptedModel):
    """Counts its loads, and holds each one until the test lets it finish."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(["Loaded once."], **kwargs)  # type: ignore[arg-type]
        self.loads = 0
        self.release = threading.Event()

    def load(self, progress: ProgressCallback | None = None) -> None:
        self.loads += 1
        if progress:
            progress("reading the weights", 0.5)
        self.release.wait(10)
        super().load(progress)


def test_two_waiters_share_one_load_and_both_hear_its_progress() -> None:
    model = CountingModel()
    handle = ModelHandle(model)
    heard: list[list[str]] = [[], []]
    results: list[bool] = []

    def waiter(lines: list[str]) -> None:
        results.append(handle.wait(progress=lambda line, _fraction: lines.append(line)))

    threads = [threading.Thread(target=waiter, args=(lines,)) for lines in heard]
    for thread in threads:
        thread.start()
    while not handle.loading:
        pass
    model.release.set()
    for thread in threads:
        thread.join(10)
    assert results == [True, True] and model.loads == 1
    assert all("ready" in lines for lines in heard)
    assert handle.ready.is_set() and handle.error is None


def test_a_waiter_that_stops_walks_away_and_the_load_goes_on() -> None:
    model = CountingModel()
    handle = ModelHandle(model)
    stop = threading.Event()
    stop.set()
    assert handle.wait(stop.is_set) is False
    model.release.set()
    assert handle.wait() is True and model.loads == 1


def test_a_failed_load_is_one_line_and_raises_what_the_backend_raised() -> None:
    problem = ModelNotAvailable("no weights here")
    handle = ModelHandle(ScriptedModel(load_error=problem))
    with pytest.raises(ModelNotAvailable):
        handle.wait()
    assert handle.error == "no weights here" and not handle.ready.is_set()


def test_a_bug_while_loading_says_it_is_unexpected() -> None:
    handle = ModelHandle(ScriptedModel(load_error=KeyError("dtype")))
    with pytest.raises(KeyError):
        handle.wait()
    assert handle.error == "unexpected error while loading: KeyError: 'dtype'"


def test_a_waiter_that_must_not_start_the_load_waits_for_someone_who_does() -> None:
    model = CountingModel()
    model.release.set()
    handle = ModelHandle(model)
    stop = threading.Event()
    threading.Timer(0.2, stop.set).start()
    assert handle.wait(stop.is_set, start=False) is False and model.loads == 0


def test_the_load_time_goes_to_the_first_turn_only() -> None:
    model = CountingModel()
    model.release.set()
    handle = ModelHandle(model)
    assert handle.wait()
    session = Session(handle, turn_options(Settings()))
    conversation = Conversation()
    first = [e for e in session.respond(conversation, "one?", False, threading.Event())]
    second = [e for e in session.respond(conversation, "two?", False, threading.Event())]
    assert isinstance(first[-1], Done) and isinstance(second[-1], Done)
    assert first[-1].message.timings.load_s is not None
    assert second[-1].message.timings.load_s is None
    # The model was loaded before either turn, so neither waited for it.
    assert not any(isinstance(e, Status) and e.stage == "loading" for e in first + second)


def test_a_turn_on_an_unloaded_model_waits_on_the_same_handle() -> None:
    model = CountingModel()
    model.release.set()
    session = Session(model, turn_options(Settings()))
    events = list(session.respond(Conversation(), "hi?", False, threading.Event()))
    loading = [e.detail for e in events if isinstance(e, Status) and e.stage == "loading"]
    assert loading[0] == "waiting for the model to load" and "reading the weights" in loading
    assert isinstance(events[-1], Done) and session.handle.ready.is_set() and model.loads == 1
