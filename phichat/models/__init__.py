"""Chat model backends behind one protocol (see ``base.ChatModel``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from phichat.config import Settings
    from phichat.models.base import ChatModel


def create_model(settings: Settings) -> ChatModel:
    """The backend the settings ask for, not yet loaded (loading is the slow part)."""
    if settings.backend == "openai":
        from phichat.models.openai_compat import OpenAICompatModel, require_base_url

        return OpenAICompatModel(
            require_base_url(settings.base_url),
            api_model=settings.api_model,
            api_key=settings.api_key,
            context_window=settings.context_window,
            timeout=settings.api_timeout,
        )
    if settings.backend == "gguf":
        from phichat.models.gguf import GGUFModel

        return GGUFModel(
            settings.gguf_file,
            threads=settings.threads,
            context_window=settings.context_window,
            kv_cache=settings.kv_cache,
        )
    from phichat.models.phi3 import Phi3Model

    return Phi3Model(
        settings.model,
        device=settings.device,
        dtype=settings.dtype,
        context_window=settings.context_window,
    )
