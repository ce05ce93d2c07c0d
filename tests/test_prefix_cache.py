"""Prompt-prefix KV reuse: follow-ups prefill only what is new, answering as a cold prefill does.

Two copies of the tiny Phi-3 run the same conversation: one keeps its cache between
turns, the other forgets it before every turn. With greedy decoding their answers must
match token for token, while the warm one reports most of each follow-up as reused.
"""

from __future__ import annotations

import itertools
import threading
from pathlib import Path

import pytest

from phichat.models.base import ChatMessage, GenerationOptions, GenerationStats
from phichat.models.phi3 import Phi3Model
from phichat.models.prefix_cache import PrefixCache, common_prefix_length

GREEDY = GenerationOptions(max_new_tokens=20, temperature=0.0)
SYSTEM: ChatMessage = {"role": "system", "content": "You are helpful."}


class FakeCache:
    """Stands in for DynamicCache: a length that crop() shortens by a negative count."""

    def __init__(self, length: int, forked_from: FakeCache | None = None) -> None:
        self.length = length
        self.forked_from = forked_from

    def get_seq_length(self) -> int:
        return self.length

    def crop(self, tokens_to_remove: int) -> None:
        assert tokens_to_remove <= 0
        self.length += tokens_to_remove


def fork(cache: FakeCache, length: int) -> FakeCache:
    return FakeCache(length, forked_from=cache)


def test_common_prefix_length() -> None:
    assert common_prefix_length([1, 2, 3], [1, 2, 4]) == 2
    assert common_prefix_length([1, 2], [1, 2, 3]) == 2
    assert common_prefix_length([], [1]) == 0


def test_take_crops_to_the_shared_prefix_and_always_leaves_a_token_to_prefill() -> None:
    prefix = PrefixCache(max_tokens=100, fork=fork)
    prefix.put([1, 2, 3, 4, 5], FakeCache(5))
    cache, reused = prefix.take([1, 2, 3, 9])
    assert reused == 3 and cache is not None and cache.get_seq_length() == 3
    assert len(prefix) == 0  # taken out while generation extends it
    prefix.put([1, 2, 3, 4, 5], FakeCache(5))
    cache, reused = prefix.take([1, 2, 3])  # the same prompt again (a regenerate)
    assert reused == 2 and cache is not None and cache.get_seq_length() == 2


def test_take_picks_the_longest_match_and_leaves_the_others() -> None:
    prefix = PrefixCache(max_tokens=100, fork=fork)
    prefix.put([1, 2, 3, 4], FakeCache(4))
    prefix.put([7, 8], FakeCache(2))
    assert prefix.take([5, 6]) == (None, 0)
    assert len(prefix) == 2
    _, reused = prefix.take([1, 2, 3, 4, 5])
    assert reused == 4 and len(prefix) == 1


def test_a_short_match_is_copied_so_the_long_entry_stays_whole() -> None:
    prefix = PrefixCache(max_tokens=100, fork=fork)
    long = FakeCache(6)
    prefix.put([1, 2, 3, 4, 5, 6], long)
    cache, reused = prefix.take([1, 2, 9, 9])
    assert reused == 2 and cache is not None and cache.forked_from is long
    assert cache.get_seq_length() == 2
    assert long.get_seq_length() == 6 and prefix.cached_tokens == 6


def test_entries_beyond_the_token_cap_are_dropped_oldest_first() -> None:
    prefix = PrefixCache(max_tokens=10, fork=fork, max_entries=3)
    prefix.put(list(range(6)), FakeCache(6))
    prefix.put(list(range(20, 23)), FakeCache(3))
    assert prefix.cached_tokens == 9
    prefix.put(list(range(40, 44)), FakeCache(4))  # 4 + 3 fit, the 6 do not
    assert prefix.cached_tokens == 7 and len(prefix) == 2
    prefix.put(list(range(50, 62)), FakeCache(12))  # longer than the cap: cropped to it
    assert prefix.cached_tokens == 10 and len(prefix) == 1


def test_a_cache_that_does_not_match_its_tokens_is_not_kept() -> None:
    prefix = PrefixCache(max_tokens=100, fork=fork)
    prefix.put([1, 2, 3], FakeCache(2))
    assert len(prefix) == 0


@pytest.fixture
def warm_and_cold(tiny_phi3_path: Path) -> tuple[Phi3Model, Phi3Model]:
    warm = Phi3Model(str(tiny_phi3_path), dtype="float32")
    cold = Phi3Model(str(tiny_phi3_path), dtype="float32")
    warm.load()
    cold.load()
    return warm, cold


def answer(
    model: Phi3Model, messages: list[ChatMessage], options: GenerationOptions = GREEDY
) -> tuple[str, GenerationStats]:
    stats = GenerationStats()
    text = "".join(model.stream(messages, options, threading.Event(), stats))
    return text, stats


def cold_answer(model: Phi3Model, messages: list[ChatMessage]) -> tuple[str, GenerationStats]:
    model.reset_cache()
    text, stats = answer(model, messages)
    assert stats.reused_tokens == 0
    return text, stats


def test_a_conversation_reuses_its_prefix_and_answers_exactly_as_a_cold_prefill(
    warm_and_cold: tuple[Phi3Model, Phi3Model],
) -> None:
    warm, cold = warm_and_cold
    messages: list[ChatMessage] = [SYSTEM, {"role": "user", "content": "Plan a day in Belize"}]
    reused: list[int] = []
    for question in ["What about the lighthouse?", "And the market?", "Where to eat?"]:
        text, stats = answer(warm, messages)
        expected, cold_stats = cold_answer(cold, messages)
        assert text == expected
        assert stats.new_tokens == cold_stats.new_tokens
        assert stats.prompt_tokens == cold_stats.prompt_tokens
        reused.append(stats.reused_tokens)
        messages += [{"role": "assistant", "content": text}, {"role": "user", "content": question}]
    assert reused[0] == 0
    # Every follow-up starts with the previous prompt, so at least that much is reused.
    assert all(later > earlier for earlier, later in itertools.pairwise(reused))


def test_a_diverging_prompt_crops_the_cache_where_it_diverges(
    warm_and_cold: tuple[Phi3Model, Phi3Model],
) -> None:
    warm, cold = warm_and_cold
    start: list[ChatMessage] = [SYSTEM, {"role": "user", "content": "Plan a day in Belize City"}]
    text, _ = answer(warm, start)
    history = [*start, {"role": "assistant", "content": text}]
    first = [*history, {"role": "user", "content": "What about the lighthouse by the sea?"}]
    answer(warm, first)
    # The same conversation, another last question: reuse stops where the prompts part.
    other = [*history, {"role": "user", "content": "Skagway trains"}]
    shared = common_prefix_length(
        warm._encode(first)["input_ids"][0].tolist(), warm._encode(other)["input_ids"][0].tolist()
    )
    got, stats = answer(warm, other)
    assert stats.reused_tokens == shared > 0
    assert got == cold_answer(cold, other)[0]
    # The first question again still answers as a cold prefill would.
    got, stats = answer(warm, first)
    assert stats.reused_tokens == shared
    assert got == cold_answer(cold, first)[0]


def test_a_short_unrelated_prompt_leaves_the_long_prefix_in_place(
    warm_and_cold: tuple[Phi3Model, Phi3Model],
) -> None:
    warm, _ = warm_and_cold
    conversation: list[ChatMessage] = [
        SYSTEM,
        {"role": "user", "content": "Plan a day in Belize City with a walk by the sea " * 4},
    ]
    text, first = answer(warm, conversation)
    # Shares only the template's first tokens (a search-query rewrite looks like this).
    _, aside = answer(warm, [{"role": "user", "content": "Skagway trains"}])
    assert aside.reused_tokens == 1  # <s>, copied: the long entry stays whole
    follow_up = [*conversation, {"role": "assistant", "content": text}]
    follow_up.append({"role": "user", "content": "Why?"})
    _, stats = answer(warm, follow_up)
    assert stats.reused_tokens >= first.prompt_tokens


def test_a_regenerate_reuses_the_prompt_and_gives_the_same_greedy_answer(
    warm_and_cold: tuple[Phi3Model, Phi3Model],
) -> None:
    warm, cold = warm_and_cold
    messages: list[ChatMessage] = [SYSTEM, {"role": "user", "content": "Plan a day in Belize"}]
    first, stats = answer(warm, messages)
    again, again_stats = answer(warm, messages)
    # The cache held prompt + answer; it is cropped back to all of the prompt but its last token.
    assert again_stats.reused_tokens == stats.prompt_tokens - 1
    assert again == first == cold_answer(cold, messages)[0]


def test_a_stopped_answer_in_the_cache_still_gives_cold_prefill_answers(
    warm_and_cold: tuple[Phi3Model, Phi3Model],
) -> None:
    warm, cold = warm_and_cold
    messages: list[ChatMessage] = [SYSTEM, {"role": "user", "content": "Plan a day in Belize"}]
    stop = threading.Event()
    pieces = []
    for piece in warm.stream(messages, GenerationOptions(max_new_tokens=200), stop):
        pieces.append(piece)
        if len(pieces) == 3:
            stop.set()
    partial = "".join(pieces)
    follow_up: list[ChatMessage] = [
        *messages,
        {"role": "assistant", "content": partial},
        {"role": "user", "content": "Go on"},
    ]
    got, stats = answer(warm, follow_up)
    assert stats.reused_tokens > 0
    assert got == cold_answer(cold, follow_up)[0]


def test_reset_cache_forgets_the_cached_states(tiny_phi3_path: Path) -> None:
    model = Phi3Model(str(tiny_phi3_path), dtype="float32")
    model.load()
    messages: list[ChatMessage] = [SYSTEM, {"role": "user", "content": "Plan a day in Belize"}]
    answer(model, messages)
    model.reset_cache()
    _, stats = answer(model, messages)
    assert stats.reused_tokens == 0


class OneSourceRetriever:
    """Returns a different one-source block per query, as a real search would."""

    def retrieve(self, query, budget, progress, stop):  # type: ignore[no-untyped-def]
        from phichat.domain import Source
        from phichat.retrieval.types import Retrieval

        source = Source(1, "Fort George", "https://example.org/fort")
        block = f"[1] Fort George\nhttps://example.org/fort\nAbout {query}: opens at 9."
        return Retrieval(query=query, sources=[source], context_text=block)


def test_session_follow_ups_with_search_reuse_the_whole_previous_turn(
    warm_and_cold: tuple[Phi3Model, Phi3Model],
) -> None:
    from phichat.chat.events import Done
    from phichat.chat.session import Session, TurnOptions
    from phichat.domain import Conversation

    warm, cold = warm_and_cold
    options = TurnOptions(GREEDY, context_chars=2000)
    warm_session = Session(warm, options, retriever=OneSourceRetriever())
    cold_session = Session(cold, options, retriever=OneSourceRetriever())
    warm_chat, cold_chat = Conversation(), Conversation()
    sent: list[list[ChatMessage]] = []
    stream = warm.stream

    def recording_stream(messages, *rest, **kwargs):  # type: ignore[no-untyped-def]
        sent.append(list(messages))
        return stream(messages, *rest, **kwargs)

    warm.stream = recording_stream  # type: ignore[method-assign]
    previous_ids: list[int] = []
    whole_reuses = 0
    for question in ["Plan a day in Belize", "What about the lighthouse?", "And dinner?"]:
        cold.reset_cache()
        warm_done = list(warm_session.respond(warm_chat, question, True, threading.Event()))[-1]
        cold_done = list(cold_session.respond(cold_chat, question, True, threading.Event()))[-1]
        assert isinstance(warm_done, Done) and isinstance(cold_done, Done)
        assert warm_done.message.text == cold_done.message.text
        timings = warm_done.message.timings
        # The search step ran in between, yet the conversation's prefix survived it: all
        # that the prompt shares with the previous one is reused (the whole previous
        # prompt, except on a turn that sheds past sources: chat/prompt.py).
        ids = [int(i) for i in warm._encode(sent[-1])["input_ids"][0]]
        shared = common_prefix_length(previous_ids, ids)
        assert timings["reused_tokens"] >= shared
        whole_reuses += bool(previous_ids) and shared == len(previous_ids)
        previous_ids = ids
    assert whole_reuses >= 1
