"""Assemble the prompt for one turn, measured in the model's own tokens.

Order: system prompt, past turns, then this turn's user message, which carries its
sources block when the answer is grounded. The sources sit in the user turn because
Phi-3's original chat template had no system role, and Phi-3 follows instructions there
most reliably.

Past turns are re-sent exactly as they were sent, sources included, so that a follow-up's
prompt starts with the previous prompt and answer token for token and the backend can
reuse their cached attention states (models/prefix_cache.py): only the new sources and
question are prefilled. That cannot go on for ever (every cached token slows each decoded
one), so now and then a turn *compacts*: the past turns still carrying their sources are
re-sent without them. Everything after the first of them must then be prefilled again,
so a compaction costs this turn's own prompt plus those turns' questions and answers.

Compaction keeps that bill small (``SourcesPolicy``): it only ever touches the turns sent
with sources since the last compaction, since older turns were already sent bare and stay
in the cached prefix; and it happens as soon as waiting one more turn would make it
re-prefill more than a share of this turn's own prompt, or when the prompt would pass
``AS_SENT_PROMPT_TOKENS``. After a compaction the next follow-ups keep the last turn's
sources again. Which turns went bare is not stored: it is replayed from the history, so
every turn lays out the past exactly as the turn before did. When even bare past turns
overflow the window, the oldest go.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from phichat import prompts
from phichat.domain import Message
from phichat.errors import PromptTooLong
from phichat.models.base import ChatMessage, ChatModel

if TYPE_CHECKING:
    from phichat.chat.presets import Preset

# Past turns keep their sources (as sent, so the cached prefix matches) only while the whole
# prompt stays this short. Every cached token slows each decoded one (measured on a CPU: a
# 4-layer Phi-3-width model decoded at 1.31 tokens/s after 1,100 prompt tokens, 0.43 after
# 3,300), while keeping old sources saves only the previous question and answer from being
# prefilled again. Phi-3-mini-4k also attends only 2,047 tokens back (its sliding window).
AS_SENT_PROMPT_TOKENS = 2048


@dataclass(frozen=True)
class SourcesPolicy:
    """When past turns stop carrying their sources (see the module docstring).

    ``reprefill_share``: a compaction re-prefills the questions and answers of the turns
    sent with sources since the last one; it comes early enough that they stay within this
    share of the turn's own prompt (system, sources and question). The follow-up target is
    1.3x a first turn's wait, and a turn's wait is mostly its prefill, so a quarter leaves
    room for the slower attention over a longer cache. None: only the prompt limit counts.
    ``resume``: after a compaction, later turns keep their sources again (False is the
    policy before this one, kept for benchmarks/turn.py to measure against: once compacted,
    every later follow-up went without past sources).
    """

    prompt_tokens: int = AS_SENT_PROMPT_TOKENS
    reprefill_share: float | None = 0.25
    resume: bool = True


DEFAULT_POLICY = SourcesPolicy()
# Before it: compact only when the prompt would pass the limit, and then for good.
LIMIT_ONLY_POLICY = SourcesPolicy(reprefill_share=None, resume=False)

# Tokens kept free on top of the answer reservation: chat templates may add a token or
# two (such as a final eos) that apply_chat_template(add_generation_prompt=True) does not.
SAFETY_MARGIN = 8


def system_message(preset: Preset | None = None) -> ChatMessage:
    """The default system prompt, or the preset's own when it has one."""
    text = preset.system if preset is not None and preset.system else prompts.load("system")
    return {"role": "system", "content": text}


def user_turn(question: str, sources_block: str | None, preset: Preset | None = None) -> str:
    """The question (inside the sources block when grounded), then the preset's format.

    The answer format goes last, next to where the answer starts: Phi-3 follows an
    instruction at the end of the user turn more reliably than one in the system prompt.
    """
    turn = question
    if sources_block:
        turn = prompts.render("grounded", sources=sources_block, question=question)
    if preset is not None and preset.answer_format:
        turn += "\n\nAnswer format:\n" + preset.answer_format
    return turn


def history_turns(
    history: Sequence[Message], as_sent: bool = False, preset: Preset | None = None
) -> list[list[ChatMessage]]:
    """Group past messages into user/assistant turns, oldest first.

    With ``as_sent``, each question is rendered as it was sent: with the sources block its
    answer was given (``Message.context``) and the preset's answer format. Otherwise it is
    the bare question. Failed or empty answers are left out: they would only teach the
    model to fail again. When one question has two answers (a compare, without and then
    with search), the later one stands for the turn.
    """
    turns: list[list[ChatMessage]] = []
    questions: list[str] = []
    for message in history:
        if message.role == "user":
            turns.append([{"role": "user", "content": message.text}])
            questions.append(message.text)
        elif turns and message.text.strip() and not message.error:
            turns[-1][1:] = [{"role": "assistant", "content": message.text}]
            if as_sent:
                sent = user_turn(questions[-1], message.context or None, preset)
                turns[-1][0] = {"role": "user", "content": sent}
    return [turn for turn in turns if len(turn) == 2]


def prompt_budget(model: ChatModel, max_new_tokens: int) -> int:
    """Tokens the prompt may use, once the answer's tokens are reserved."""
    return model.context_window - max_new_tokens - SAFETY_MARGIN


def build_messages(
    model: ChatModel,
    history: Sequence[Message],
    question: str,
    sources_block: str | None,
    max_new_tokens: int,
    preset: Preset | None = None,
    policy: SourcesPolicy = DEFAULT_POLICY,
) -> tuple[list[ChatMessage], int]:
    """The messages to send, and how many past turns had to be dropped to fit.

    Past turns go bare up to the last compaction and as sent after it (see the module
    docstring). Raises ``PromptTooLong`` when even the system prompt and this question do
    not fit.
    """
    budget = prompt_budget(model, max_new_tokens)
    system = system_message(preset)
    current: ChatMessage = {"role": "user", "content": user_turn(question, sources_block, preset)}
    base_tokens = model.count_tokens([system, current])
    if base_tokens > budget:
        raise PromptTooLong(
            f"the message is too long: {base_tokens} tokens of prompt, but only {budget} fit "
            f"in the {model.context_window}-token window with {max_new_tokens} kept for the answer"
        )
    sent = history_turns(history, True, preset)
    bare = history_turns(history)
    layout = _Layout(model, system, sent, bare, min(budget, policy.prompt_tokens), policy)
    start = layout.sources_start(current)
    messages = layout.messages(start, current)
    if start == len(sent) and model.count_tokens(messages) > budget:
        kept: list[list[ChatMessage]] = []
        # Newest turns matter most, so keep adding from the end until the next one would overflow.
        for turn in reversed(bare):
            candidate = [system, *[m for t in [turn, *kept] for m in t], current]
            if model.count_tokens(candidate) > budget:
                break
            kept.insert(0, turn)
        return [system, *[m for t in kept for m in t], current], len(bare) - len(kept)
    return messages, 0


class _Layout:
    """Replays the compaction decisions of a conversation's turns, oldest first.

    Every decision depends only on the history, so replaying them gives each past turn's
    prompt exactly as it was sent, and this turn's prompt starts with the previous one.
    """

    def __init__(
        self,
        model: ChatModel,
        system: ChatMessage,
        sent: list[list[ChatMessage]],
        bare: list[list[ChatMessage]],
        limit: int,
        policy: SourcesPolicy,
    ) -> None:
        self._model = model
        self._system = system
        self._sent = sent
        self._bare = bare
        self._limit = limit
        self._policy = policy
        self._bare_tokens = [model.count_tokens(turn) for turn in bare]
        # A turn's own prompt: the system prompt and its user message (sources, question).
        self._own_tokens = [model.count_tokens([system, turn[0]]) for turn in sent]

    def messages(self, start: int, asked: ChatMessage, end: int | None = None) -> list[ChatMessage]:
        """Past turns before ``end`` (all by default): bare before ``start``, then as sent."""
        end = len(self._sent) if end is None else end
        past = [*self._bare[:start], *self._sent[start:end]]
        return [self._system, *[m for turn in past for m in turn], asked]

    def sources_start(self, current: ChatMessage) -> int:
        """Index of the first past turn that this turn sends with its sources."""
        start = 0
        for turn in range(1, len(self._sent) + 1):
            if turn < len(self._sent):
                asked, own = self._sent[turn][0], self._own_tokens[turn]
            else:
                asked, own = current, self._model.count_tokens([self._system, current])
            if not self._keeps_sources(start, turn, asked, own):
                start = turn  # turn ``turn`` compacted: every turn before it went bare
        return start

    def _keeps_sources(self, start: int, turn: int, asked: ChatMessage, own: int) -> bool:
        """Whether turn ``turn`` re-sends past turns ``start``.. as sent."""
        if start > 0 and not self._policy.resume:
            return False
        prompt = self.messages(start, asked, end=turn)
        if self._model.count_tokens(prompt) > self._limit:
            return False
        share = self._policy.reprefill_share
        if share is None:
            return True
        # Waiting one more turn would re-prefill these turns' questions and answers, and
        # about one more of the same size (this turn's, whose answer is not known yet).
        reprefill = sum(self._bare_tokens[start:turn]) + self._bare_tokens[turn - 1]
        # Measured against a grounded turn's own prompt, so that a follow-up asked without
        # search (a short prompt) does not throw away the sources it is likely asking about.
        grounded = max([own, *self._own_tokens[start:turn]])
        return reprefill <= share * grounded
