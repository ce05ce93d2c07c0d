"""When past turns stop carrying their sources: cheap compactions that keep the cached prefix.

A follow-up prefills what its prompt does not share with the previous prompt and answer.
The policy must keep that within a quarter over the turn's own prompt (system, sources and
question) on every turn, keep every past question and answer, and keep the last turn's
sources in as many follow-ups as it can.
"""

from __future__ import annotations

import random
from itertools import pairwise
from typing import Any

import pytest

from phichat.chat.prompt import (
    AS_SENT_PROMPT_TOKENS,
    DEFAULT_POLICY,
    LIMIT_ONLY_POLICY,
    SourcesPolicy,
    build_messages,
    prompt_budget,
    system_message,
    user_turn,
)
from phichat.domain import Message
from phichat.models.base import ChatMessage, ChatModel
from phichat.models.phi3 import Phi3Model
from phichat.models.prefix_cache import common_prefix_length
from phichat.models.scripted import ScriptedModel

ANSWER_TOKENS = 64
WORDS = ["lighthouse", "harbour", "tide", "ferry", "keeper", "lamp", "island", "rock", "beacon"]


def prose(seed: int, words: int) -> str:
    rng = random.Random(seed)
    return " ".join(rng.choice(WORDS) for _ in range(words))


def conversation(
    turns: int, source_words: int = 300, answer_words: int = 20, question_words: int = 8
) -> list[Any]:
    """(question, sources block or None, answer) per turn, in the proportions of a real one."""
    return [
        (
            f"Question {i}: {prose(i, question_words)}?",
            f"[1] Page {i}\nhttps://example.org/{i}\n{prose(100 + i, source_words)}",
            f"Answer {i}: {prose(200 + i, answer_words)}",
        )
        for i in range(turns)
    ]


def run(
    model: ChatModel, turns: list[Any], policy: SourcesPolicy = DEFAULT_POLICY
) -> list[list[ChatMessage]]:
    """Each turn's prompt, recording every answer with the sources it was given."""
    history: list[Message] = []
    prompts = []
    for question, block, reply in turns:
        messages, dropped = build_messages(
            model, history, question, block, ANSWER_TOKENS, None, policy
        )
        assert dropped == 0
        prompts.append(messages)
        history += [Message("user", question), Message("assistant", reply, context=block or "")]
    return prompts


def sources_in(prompt: list[ChatMessage]) -> list[bool]:
    """For each user message, whether it carries a sources block."""
    return ["<sources>" in m["content"] for m in prompt if m["role"] == "user"]


def prefill_over_own(
    model: Phi3Model, turns: list[Any], prompts: list[list[ChatMessage]]
) -> list[float]:
    """Each follow-up's prefilled tokens, as a multiple of its own prompt's tokens."""

    def ids(messages: list[ChatMessage]) -> list[int]:
        return [int(i) for i in model._encode(messages)["input_ids"][0]]

    ratios = []
    for (_, _, reply), earlier, later, (question, block, _) in zip(
        turns, prompts, prompts[1:], turns[1:], strict=False
    ):
        cached = ids([*earlier, {"role": "assistant", "content": reply}])
        prompt = ids(later)
        prefilled = len(prompt) - common_prefix_length(cached, prompt)
        own = model.count_tokens(
            [system_message(), {"role": "user", "content": user_turn(question, block)}]
        )
        ratios.append(prefilled / own)
    return ratios


@pytest.fixture(scope="module")
def tiny(tiny_phi3: Phi3Model) -> Phi3Model:
    return tiny_phi3


# The tiny tokenizer spends about five tokens a word: these give a turn's own prompt about
# 620 tokens and each question and answer about 55, the proportions of a 2,000-character
# sources budget with short answers. The limit is raised so that the policy before gets
# the six as-sent turns that make its one compaction expensive.
def tiny_conversation(turns: int) -> list[Any]:
    return conversation(turns, source_words=60, answer_words=6, question_words=4)


def test_every_follow_up_prefills_at_most_a_quarter_more_than_its_own_prompt(
    tiny: Phi3Model,
) -> None:
    turns = tiny_conversation(12)
    policy = SourcesPolicy(prompt_tokens=4000)
    ratios = prefill_over_own(tiny, turns, run(tiny, turns, policy))
    assert max(ratios) <= 1 + 0.25, ratios
    # The policy before compacted only at the prompt limit, re-prefilling every past
    # question and answer at once.
    before = SourcesPolicy(prompt_tokens=4000, reprefill_share=None, resume=False)
    ratios = prefill_over_own(tiny, turns, run(tiny, turns, before))
    assert max(ratios) > 1.3, ratios


def test_each_prompt_starts_with_the_previous_one_except_where_it_compacts(tiny: Phi3Model) -> None:
    turns = tiny_conversation(12)
    prompts = run(tiny, turns)
    compactions = 0
    for (_, _, reply), earlier, later in zip(turns, prompts, prompts[1:], strict=False):
        whole = [*earlier, {"role": "assistant", "content": reply}]
        if later[: len(whole)] == whole:
            continue
        # A compaction: the turns sent with sources since the last one go bare; everything
        # before the first of them (the system prompt, turns already bare) stays as it was.
        first = sources_in(earlier).index(True)
        kept = 1 + 2 * first
        assert later[:kept] == earlier[:kept]
        assert not any(sources_in(later)[:-1])
        compactions += 1
    assert compactions >= 2


def test_past_questions_and_answers_all_stay_and_the_last_sources_stay_often() -> None:
    model = ScriptedModel(context_window=8192)
    turns = conversation(12)
    prompts = run(model, turns)
    for number, prompt in enumerate(prompts):
        questions = [m["content"] for m in prompt if m["role"] == "user"]
        answers = [m["content"] for m in prompt if m["role"] == "assistant"]
        assert answers == [reply for _, _, reply in turns[:number]]
        assert all(q.rstrip().endswith(turns[i][0]) for i, q in enumerate(questions))
        assert sources_in(prompt)[-1]  # this turn's own sources
    with_last = [sources_in(prompt)[-2] for prompt in prompts[1:]]
    # Never two follow-ups in a row without the previous turn's sources.
    assert all(a or b for a, b in pairwise(with_last)), with_last
    # The policy before: after its one compaction, never again.
    before = [sources_in(p)[-2] for p in run(model, turns, LIMIT_ONLY_POLICY)[1:]]
    assert not any(a or b for a, b in pairwise(before[-4:])), before


def test_a_follow_up_without_search_keeps_the_sources_it_asks_about() -> None:
    # Its own prompt is short; measured against it, even one question and answer would
    # be too much to re-prefill, and the sources it asks about would go.
    model = ScriptedModel(context_window=4096)
    turns = conversation(2)
    turns[1] = ("And what did the first page say?", None, "It said so.")
    first, follow_up = run(model, turns)
    assert sources_in(follow_up) == [True, False]
    assert follow_up[: len(first)] == first


@pytest.mark.parametrize("window", [700, 1500, 4096])
def test_the_window_and_the_as_sent_limit_hold(tiny: Phi3Model, window: int) -> None:
    model = Phi3Model(str(tiny.name), context_window=window)
    model.load()
    turns = conversation(14, source_words=20 if window < 1000 else 60)
    history: list[Message] = []
    for question, block, reply in turns:
        messages, _ = build_messages(model, history, question, block, ANSWER_TOKENS)
        tokens = model.count_tokens(messages)
        assert tokens <= prompt_budget(model, ANSWER_TOKENS)
        if any(sources_in(messages)[:-1]):
            assert tokens <= AS_SENT_PROMPT_TOKENS
        history += [Message("user", question), Message("assistant", reply, context=block)]
