"""Assemble the prompt for one turn, measured in the model's own tokens.

Order: system prompt, past turns, then this turn's user message, which carries its
sources block when the answer is grounded. The sources sit in the user turn because
Phi-3's original chat template had no system role, and Phi-3 follows instructions there
most reliably.

Past turns are re-sent exactly as they were sent, sources included, so that a follow-up's
prompt starts with the previous prompt and answer token for token and the backend can
reuse their cached attention states (models/prefix_cache.py): only the new sources and
question are prefilled. Once that would make the prompt longer than
``AS_SENT_PROMPT_TOKENS`` (or the window), every past turn goes without its sources at once
(and the oldest turns go next, if even that is too long).
That breaks the shared prefix once; from then on each follow-up re-prefills only the
previous question and answer besides its own sources, and the prompt stops growing by a
sources block per turn.
"""

from __future__ import annotations

from collections.abc import Sequence
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
) -> tuple[list[ChatMessage], int]:
    """The messages to send, and how many past turns had to be dropped to fit.

    Past turns go as they were sent while the prompt stays short, else all without sources
    (see the module docstring for why all at once). Raises ``PromptTooLong`` when even the
    system prompt and this question do not fit.
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
    as_sent = [system, *[m for t in history_turns(history, True, preset) for m in t], current]
    if model.count_tokens(as_sent) <= min(budget, AS_SENT_PROMPT_TOKENS):
        return as_sent, 0
    turns = history_turns(history)
    kept: list[list[ChatMessage]] = []
    # Newest turns matter most, so keep adding from the end until the next one would overflow.
    for turn in reversed(turns):
        candidate = [system, *[m for t in [turn, *kept] for m in t], current]
        if model.count_tokens(candidate) > budget:
            break
        kept.insert(0, turn)
    messages = [system, *[m for t in kept for m in t], current]
    return messages, len(turns) - len(kept)
