"""Settings checked against the model's context window, once the model knows it."""

from __future__ import annotations

from phichat.chat import prompt as prompt_builder
from phichat.chat.presets import Preset
from phichat.errors import ConfigError
from phichat.models.base import ChatModel


def most_new_tokens(model: ChatModel, preset: Preset | None) -> int:
    """The longest answer the window allows, next to the system prompt and a one-word question."""
    skeleton = [
        prompt_builder.system_message(preset),
        {"role": "user", "content": prompt_builder.user_turn(" ", None, preset)},
    ]
    fixed = model.count_tokens(skeleton)  # type: ignore[arg-type]
    return max(prompt_builder.prompt_budget(model, 0) - fixed, 0)


def check_answer_fits(model: ChatModel, max_new_tokens: int, preset: Preset | None) -> None:
    """Refuse a ``max_new_tokens`` that leaves no room for any question, saying what fits.

    Without this every message would be reported as too long, with a negative room left.
    """
    most = most_new_tokens(model, preset)
    if max_new_tokens > most:
        raise ConfigError(
            f"max_new_tokens = {max_new_tokens} does not fit in this model's "
            f"{model.context_window}-token window: the answer can have at most {most} tokens "
            "(fewer with a longer question or history); lower max_new_tokens"
        )
