"""Where phichat keeps its files, following each platform's conventions."""

from __future__ import annotations

import os
from pathlib import Path

APP_NAME = "phichat"


def config_dir() -> Path:
    """The folder holding ``config.toml`` and user presets (``PHICHAT_CONFIG_DIR`` overrides)."""
    override = os.environ.get("PHICHAT_CONFIG_DIR")
    if override:
        return Path(override)
    from platformdirs import user_config_path

    return user_config_path(APP_NAME)


def data_dir() -> Path:
    """The folder holding the conversation database (``PHICHAT_DATA_DIR`` overrides)."""
    override = os.environ.get("PHICHAT_DATA_DIR")
    if override:
        return Path(override)
    from platformdirs import user_data_path

    return user_data_path(APP_NAME)


def cache_dir() -> Path:
    """The folder holding disposable caches such as recent search results."""
    override = os.environ.get("PHICHAT_CACHE_DIR")
    if override:
        return Path(override)
    from platformdirs import user_cache_path

    return user_cache_path(APP_NAME)


def default_config_file() -> Path:
    return config_dir() / "config.toml"
