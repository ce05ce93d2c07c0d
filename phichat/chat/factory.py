"""Wire a ``Session`` from settings: the one place that picks the model and the retriever."""

from __future__ import annotations

from phichat.chat.presets import load_preset
from phichat.chat.session import MessageStore, Retriever, Session, TurnOptions
from phichat.config import Settings
from phichat.models import create_model
from phichat.models.base import ChatModel, GenerationOptions


def turn_options(settings: Settings) -> TurnOptions:
    """Generation settings and the chosen preset (a missing preset is a PresetError)."""
    preset = load_preset(settings.preset) if settings.preset else None
    return TurnOptions(
        generation=GenerationOptions(
            max_new_tokens=settings.max_new_tokens,
            temperature=settings.temperature,
            top_p=settings.top_p,
            seed=settings.seed,
        ),
        context_chars=settings.context_chars,
        preset=preset,
    )


def create_retriever(settings: Settings) -> Retriever | None:
    """The web retriever; it builds its engine and embedder only when first used."""
    from phichat.retrieval.pipeline import WebRetriever

    return WebRetriever(settings)


def create_session(
    settings: Settings, model: ChatModel | None = None, store: MessageStore | None = None
) -> Session:
    return Session(
        model=model if model is not None else create_model(settings),
        options=turn_options(settings),
        retriever=create_retriever(settings),
        store=store,
    )
