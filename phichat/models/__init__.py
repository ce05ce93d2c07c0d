"""Chat model backends behind one protocol (see ``base.ChatModel``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from phichat.config import Settings
    from phichat.models.base import ChatModel


def create_model(settings: Settings) -> ChatModel:
    """The backend the settings ask for, not yet loaded (loading is the slow part)."""
    from phichat.models.phi3 import Phi3Model

    return Phi3Model(
        settings.model,
        device=settings.device,
        dtype=settings.dtype,
        context_window=settings.context_window,
    )
