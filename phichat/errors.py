"""Errors that carry a message meant for the user.

Every error a user can cause (bad input, a missing model, no network) is a
``PhichatError``: the CLI and the TUI print its message as one line, never a traceback.
"""


class PhichatError(Exception):
    """Base class: ``str(error)`` is a complete, one-line explanation for the user."""

    exit_code = 1


class ConfigError(PhichatError):
    """A setting has an invalid value, or the config file cannot be read."""

    exit_code = 2


class ModelNotAvailable(PhichatError):
    """The model's weights are not on this machine, or cannot be loaded."""

    exit_code = 2


class DownloadError(PhichatError):
    """Fetching weights from the Hugging Face Hub failed."""

    exit_code = 1


class PromptTooLong(PhichatError):
    """The user's message alone does not fit in the model's context window."""

    exit_code = 2


class SearchUnavailable(PhichatError):
    """The search engine could not be reached (timeout, rate limit, no network)."""


class StorageError(PhichatError):
    """The conversation database cannot be opened, read or written."""

    exit_code = 1


class NotFound(PhichatError):
    """No saved conversation matches the id (or id prefix) the user gave."""

    exit_code = 2


class AmbiguousId(PhichatError):
    """An id prefix matches more than one saved conversation."""

    exit_code = 2


class PresetError(PhichatError):
    """A preset name matches no preset file, or a preset file cannot be read or parsed."""

    exit_code = 2


class NoItinerary(PhichatError):
    """An iCalendar export was asked for, but no answer in the conversation is a trip plan."""

    exit_code = 2


class ModelServerError(PhichatError):
    """A model server (OpenAI-compatible) refused, failed or broke off a request."""

    exit_code = 1
