"""The one thread bridge: items, results, errors, stops and closing (phichat/threads.py)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Generator, Iterator

import pytest

from phichat import threads
from phichat.threads import Channel, NotFinished, Sink, Stream

# Long enough never to pass by itself in a test; every wait below is ended by an event.
FOREVER_S = 30.0


def test_stream_yields_items_in_order_and_returns_the_result() -> None:
    def work(sink: Sink[int]) -> str:
        for number in range(5):
            sink.put(number)
        return "done"

    stream = Stream(work, name="test-stream")

    def consume() -> Generator[int, None, str]:
        result = yield from stream.items()
        return result

    generator = consume()
    seen = []
    with pytest.raises(StopIteration) as finished:
        while True:
            seen.append(next(generator))
    assert seen == [0, 1, 2, 3, 4]
    assert finished.value.value == "done"
    assert stream.result() == "done"
    assert not stream.stopped


def test_a_producers_exception_is_raised_in_the_consumer_after_its_items() -> None:
    def work(sink: Sink[str]) -> None:
        sink.put("first")
        raise ValueError("broken")

    seen = []
    with pytest.raises(ValueError, match="broken"):
        for item in Stream(work, name="test-error"):
            seen.append(item)
    assert seen == ["first"]


def test_a_stop_event_ends_the_iteration_and_tells_the_producer() -> None:
    stop = threading.Event()
    told = threading.Event()
    woken = threading.Event()

    def work(sink: Sink[int]) -> None:
        sink.on_stop(woken.set)
        sink.put(1)
        sink.stopping.wait(FOREVER_S)
        if sink.stopping.is_set():
            told.set()

    stream = Stream(work, name="test-stop", stop=stop, join_s=None)
    seen = []
    for item in stream:
        seen.append(item)
        stop.set()
    assert seen == [1]
    assert stream.stopped
    assert woken.is_set()
    # join_s=None: the producer has ended by the time the loop is left.
    assert told.is_set()
    assert not stream.producer.thread.is_alive()


def test_a_callable_stop_is_asked_before_each_item() -> None:
    asked = []

    def cancelled() -> bool:
        asked.append(True)
        return len(asked) > 2

    release = threading.Event()

    def work(sink: Sink[int]) -> None:
        for number in range(10):
            sink.put(number)
        release.wait(FOREVER_S)

    stream = Stream(work, name="test-callable", stop=cancelled)
    assert list(stream) == [0, 1]
    assert stream.stopped
    release.set()


def test_leaving_the_loop_early_closes_the_stream() -> None:
    woken = threading.Event()

    def work(sink: Sink[int]) -> None:
        sink.on_stop(woken.set)
        number = 0
        while not sink.stopping.is_set():
            sink.put(number)
            number += 1

    stream = Stream(work, name="test-break", join_s=None)
    for item in stream:
        if item == 3:
            break
    assert woken.is_set()
    assert stream.sink.stopping.is_set()
    assert not stream.producer.thread.is_alive()
    assert stream.result() is None


def test_closing_a_generator_that_consumes_a_stream_stops_its_producer() -> None:
    def work(sink: Sink[int]) -> None:
        while not sink.stopping.wait(0.001):
            sink.put(1)

    stream = Stream(work, name="test-gen-close", join_s=None)

    def pieces() -> Generator[int, None, None]:
        yield from stream.items()

    generator = pieces()
    next(generator)
    generator.close()
    assert not stream.producer.thread.is_alive()


def test_join_zero_walks_away_from_a_producer_that_cannot_be_interrupted() -> None:
    stop = threading.Event()
    blocked = threading.Event()
    release = threading.Event()

    def work(sink: Sink[int]) -> int:
        blocked.set()
        release.wait(FOREVER_S)  # deaf to stop requests, as a DNS lookup is
        return 1

    stream = Stream(work, name="test-walk-away", stop=stop)
    blocked.wait(FOREVER_S)
    stop.set()
    assert list(stream) == []
    assert stream.producer.thread.is_alive()
    assert stream.producer.thread.daemon
    with pytest.raises(NotFinished):
        stream.result()
    release.set()
    stream.producer.thread.join(FOREVER_S)
    assert stream.result() == 1


def test_items_put_after_the_consumer_left_are_dropped() -> None:
    stop = threading.Event()
    stop.set()
    channel: Channel[int] = Channel(stop)
    release = threading.Event()
    channel.start(lambda sink: release.wait(FOREVER_S), name="test-late")
    assert list(channel) == []
    channel.sink.put(5)
    assert channel._inbox.empty()
    release.set()


def test_a_wake_registered_after_the_stop_runs_at_once() -> None:
    stop = threading.Event()
    stop.set()
    channel: Channel[int] = Channel(stop)
    release = threading.Event()
    channel.start(lambda sink: release.wait(FOREVER_S), name="test-late-wake")
    list(channel)
    woken = []
    channel.sink.on_stop(lambda: woken.append(True))
    assert woken == [True]
    release.set()


def test_a_channel_merges_producers_until_every_one_has_returned() -> None:
    first_done = threading.Event()

    def first(sink: Sink[str]) -> str:
        sink.put("a1")
        sink.put("a2")
        first_done.set()
        return "a"

    def second(sink: Sink[str]) -> str:
        first_done.wait(FOREVER_S)
        sink.put("b1")
        return "b"

    with Channel[str]() as channel:
        one = channel.start(first, name="test-first")
        two = channel.start(second, name="test-second")
        assert list(channel) == ["a1", "a2", "b1"]
    assert (one.result(), two.result()) == ("a", "b")


def test_iterate_drives_the_iterator_to_its_end_after_the_consumer_left() -> None:
    stop = threading.Event()
    finished = threading.Event()
    cleanup = []

    def make() -> Iterator[int]:
        try:
            yield from range(100)
        finally:
            cleanup.append("saved")
            finished.set()

    stream = threads.iterate(make, name="test-iterate", stop=stop)
    for _ in stream:
        stop.set()
    finished.wait(FOREVER_S)
    assert cleanup == ["saved"]
    stream.producer.thread.join(FOREVER_S)
    assert stream.result() is None


def test_iterate_reraises_the_iterators_error() -> None:
    def make() -> Iterator[int]:
        yield 1
        raise KeyError("gone")

    with pytest.raises(KeyError):
        list(threads.iterate(make, name="test-iterate-error"))


def test_call_returns_the_result_or_raises_the_error() -> None:
    assert threads.call(lambda: 41 + 1, name="test-call") == 42

    def broken() -> int:
        raise OSError("disk")

    with pytest.raises(OSError, match="disk"):
        threads.call(broken, name="test-call-error")


def test_call_gives_none_once_stopped_without_waiting_for_the_work() -> None:
    stop = threading.Event()
    started = threading.Event()
    release = threading.Event()

    def work() -> int:
        started.set()
        release.wait(FOREVER_S)
        return 1

    def stop_when_started() -> bool:
        return started.is_set()

    assert threads.call(work, name="test-call-stop", stop=stop_when_started) is None
    release.set()
    stop.set()


def test_call_async_awaits_the_result_and_the_error() -> None:
    def broken() -> int:
        raise ValueError("bad")

    async def main() -> tuple[int, str]:
        value = await threads.call_async(lambda: 7, name="test-async")
        try:
            await threads.call_async(broken, name="test-async-error")
        except ValueError as exc:
            return value, str(exc)
        return value, ""

    assert asyncio.run(main()) == (7, "bad")


def test_call_async_never_holds_up_the_loop_closing() -> None:
    release = threading.Event()
    started = threading.Event()

    def stuck() -> int:
        started.set()
        release.wait(FOREVER_S)
        return 1

    async def main() -> str:
        task = asyncio.ensure_future(threads.call_async(stuck, name="test-async-stuck"))
        while not started.is_set():
            await asyncio.sleep(0.001)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return "left"

    # asyncio.to_thread would make asyncio.run wait here until ``stuck`` returned.
    assert asyncio.run(main()) == "left"
    assert not release.is_set()
    release.set()
