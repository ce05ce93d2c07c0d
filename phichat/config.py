"""One typed settings object, loaded from a TOML file, ``PHICHAT_*`` variables and flags.

Precedence, lowest to highest: built-in defaults, the config file, the environment,
then command-line flags. Nothing is read at import time: ``load_settings`` does it,
called from ``main()``.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import os
import tomllib
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

from phichat.errors import ConfigError
from phichat.paths import default_config_file

DEFAULT_MODEL = "microsoft/Phi-3-mini-4k-instruct"
LONG_MODEL = "microsoft/Phi-3-mini-128k-instruct"
DEFAULT_EMBEDDER = "sentence-transformers/all-MiniLM-L6-v2"

ENV_PREFIX = "PHICHAT_"

# The settings with a fixed set of values. Being types, they let mypy check a comparison
# such as ``settings.backend == "openai"``, and the loader reads the allowed values from them.
Backend = Literal["transformers", "openai", "gguf"]
Device = Literal["auto", "cuda", "mps", "cpu"]
Dtype = Literal["auto", "bfloat16", "float16", "float32"]
Engine = Literal["duckduckgo", "searxng"]
KvCache = Literal["f16", "q8_0", "q4_0"]
SafeSearch = Literal["on", "moderate", "off"]
TimeLimit = Literal["d", "w", "m", "y"]

T = TypeVar("T")


def _setting(
    default: T,
    doc: str,
    *,
    low: float | None = None,
    high: float | None = None,
    secret: bool = False,
) -> T:
    """Declare a setting with its documentation and, for numbers, its range.

    Typed as its default, so mypy checks each default against the field's annotation.
    A ``secret`` is left out of ``repr(settings)``, so a key never reaches a log or a traceback.
    """
    meta = {"doc": doc, "low": low, "high": high}
    if isinstance(default, dict):  # a mutable default: each Settings gets its own copy
        return field(default_factory=lambda: copy.copy(default), metadata=meta)
    return field(default=default, metadata=meta, repr=not secret)


@dataclass(frozen=True)
class Settings:
    """Everything a user can configure. Each field is documented in the README table."""

    # --- model ---
    backend: Backend = _setting(
        "transformers",
        "Where answers are generated: transformers runs the model in this process, openai "
        "sends the chat to an OpenAI-compatible server, gguf runs a local .gguf file with "
        "llama.cpp.",
    )
    model: str = _setting(
        DEFAULT_MODEL, "Hugging Face model id or a local folder with the same layout."
    )
    device: Device = _setting("auto", "Where the model runs.")
    dtype: Dtype = _setting(
        "auto",
        "Weight precision; auto picks bfloat16 where the hardware runs it well, else float32.",
    )
    max_new_tokens: int = _setting(512, "Longest answer, in tokens.", low=1, high=32768)
    temperature: float = _setting(
        0.0, "Sampling temperature; 0 means greedy decoding.", low=0.0, high=2.0
    )
    top_p: float = _setting(
        1.0, "Nucleus sampling cut-off (used when temperature > 0).", low=0.01, high=1.0
    )
    # 32 bits: what every backend takes (llama.cpp's seed is an unsigned 32-bit number).
    seed: int | None = _setting(
        None, "Random seed for sampling, for repeatable answers.", low=0, high=2**32 - 1
    )
    context_window: int | None = _setting(
        None,
        "Override the model's context window, in tokens (default: from the model config).",
        low=256,
        high=1_048_576,
    )

    preset: str | None = _setting(
        None,
        "Answer preset: itinerary, brief, or the name of your own file in the presets "
        "folder of the config directory (without .md).",
    )

    # --- model servers (backend = openai) ---
    base_url: str | None = _setting(
        None,
        "Base URL of an OpenAI-compatible server, such as http://127.0.0.1:8000/v1 "
        "(backend = openai); /v1 is added when the URL has no path.",
    )
    api_model: str | None = _setting(
        None,
        "Model name sent to the server (backend = openai); unset: the only model it lists.",
    )
    api_key: str | None = _setting(
        None,
        "Bearer key for the server (backend = openai), and the key `phichat serve` demands; "
        "set it in the config file or PHICHAT_API_KEY, never on the command line.",
        secret=True,
    )
    api_timeout: float = _setting(
        120.0,
        "Seconds to wait for the server to start answering, and between streamed pieces.",
        low=1,
        high=3600,
    )

    # --- llama.cpp (backend = gguf) ---
    gguf_file: str | None = _setting(
        None,
        "A .gguf model file (backend = gguf); unset: the 4-bit Phi-3-mini from "
        "`phichat download --gguf`.",
    )
    threads: int | None = _setting(
        None,
        "CPU threads for llama.cpp (backend = gguf); unset: every core this process may use.",
        low=1,
        high=1024,
    )
    kv_cache: KvCache = _setting(
        "f16",
        "Element type of llama.cpp's attention cache (backend = gguf): q8_0 halves its "
        "memory (0.8 GB less for Phi-3-mini at 4,096 tokens), q4_0 quarters it; both turn "
        "on flash attention.",
    )

    # --- search ---
    search: bool = _setting(False, "Ground answers in web search by default.")
    engine: Engine = _setting("duckduckgo", "Search engine.")
    searxng_url: str | None = _setting(None, "Base URL of a SearxNG instance (engine = searxng).")
    allow_private_urls: bool = _setting(
        False, "Allow fetching loopback, private and link-local addresses (off: refused)."
    )
    region: str = _setting("us-en", "DuckDuckGo region code, such as us-en or de-de.")
    safesearch: SafeSearch = _setting("moderate", "DuckDuckGo safe search.")
    timelimit: TimeLimit | None = _setting(
        None, "Only results from the last day, week, month or year (d, w, m, y)."
    )
    max_results: int = _setting(6, "Search results to fetch per question.", low=1, high=20)
    context_chars: int = _setting(
        2000, "Most characters of web passages packed into the prompt.", low=200, high=200_000
    )
    fetch_timeout: float = _setting(
        5.0, "Seconds to wait for each page to respond.", low=0.1, high=120
    )
    fetch_deadline: float = _setting(
        10.0, "Seconds for fetching all pages together.", low=0.5, high=300
    )
    max_page_bytes: int = _setting(
        2_000_000, "Largest page body read, in bytes.", low=1_000, high=50_000_000
    )
    embedder: str = _setting(
        DEFAULT_EMBEDDER, "Sentence-transformers model name or folder for ranking."
    )

    # --- interface ---
    save_history: bool = _setting(
        True,
        "Save `phichat ask` and `phichat compare` answers to the conversation history, as "
        "the app does (--no-save: not this time).",
    )
    theme: str = _setting("textual-dark", "Textual theme name.")
    keys: dict[str, str] = _setting({}, "Key remapping: binding id = key, in a [keys] table.")

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in fields(cls)]


def setting_docs() -> list[tuple[str, str, str, str]]:
    """(name, default, allowed, doc) for each setting: feeds the README table."""
    rows = []
    for f in fields(Settings):
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:  # every setting has a default; a field without one is a programming error
            raise TypeError(f"setting {f.name} has no default")
        rows.append((f.name, _show(default), _allowed(f), f.metadata["doc"]))
    return rows


def _show(value: Any) -> str:
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, dict):
        return "{}" if not value else str(value)
    return str(value)


def _number(value: float) -> str:
    return f"{int(value):,}" if float(value).is_integer() else f"{value:g}"


@dataclass(frozen=True)
class _Kind:
    """What a setting's annotation allows, read from the real type hints."""

    base: type  # bool, int, float, str or dict (a table of text)
    optional: bool  # ``X | None``: unset is allowed
    choices: tuple[str, ...]  # from a ``Literal``; empty when any text will do


_BASES: tuple[type, ...] = (bool, int, float, str)


def _kind_of(name: str, hint: object) -> _Kind:
    optional = False
    if get_origin(hint) in (Union, types.UnionType):
        members = [arg for arg in get_args(hint) if arg is not type(None)]
        if len(members) != 1 or len(members) == len(get_args(hint)):
            raise TypeError(f"setting {name}: only 'X | None' unions are supported, not {hint}")
        optional, hint = True, members[0]
    origin = get_origin(hint)
    if origin is Literal:
        choices = get_args(hint)
        if not all(isinstance(choice, str) for choice in choices):
            raise TypeError(f"setting {name}: Literal choices must be text, not {hint}")
        return _Kind(str, optional, choices)
    if origin is dict and get_args(hint) == (str, str):
        return _Kind(dict, optional, ())
    if isinstance(hint, type) and hint in _BASES:
        return _Kind(hint, optional, ())
    raise TypeError(f"setting {name}: the loader has no rule for {hint}")


@functools.cache
def _kinds() -> dict[str, _Kind]:
    """Each setting's kind. Computed once, on first use (annotations are strings until then)."""
    hints = get_type_hints(Settings)
    return {f.name: _kind_of(f.name, hints[f.name]) for f in fields(Settings)}


def _allowed(f: dataclasses.Field[Any]) -> str:
    meta = f.metadata
    kind = _kinds()[f.name]
    suffix = " or unset" if kind.optional else ""
    if kind.choices:
        return ", ".join(kind.choices) + suffix
    if meta["low"] is not None:
        return f"{_number(meta['low'])} to {_number(meta['high'])}" + suffix
    if kind.base is bool:
        return "true, false"
    if kind.base is int:
        return "whole number" + suffix
    if kind.base is float:
        return "number" + suffix
    if kind.base is dict:
        return "table"
    return "text" + suffix


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}

Fail = Callable[[str], ConfigError]


def _coerce(f: dataclasses.Field[Any], raw: Any, origin: str) -> Any:
    """Turn a raw value (TOML value, env string or flag) into the field's type, or fail clearly."""
    name = f.name
    kind = _kinds()[name]
    meta = f.metadata

    def fail(allowed: str) -> ConfigError:
        shown = repr(raw) if f.repr else "a hidden value"  # never echo a secret
        return ConfigError(f"invalid setting '{name}' ({origin}): expected {allowed}, got {shown}")

    unset_text = isinstance(raw, str) and raw.strip().lower() in ("", "none")
    if raw is None or (kind.optional and unset_text):
        if kind.optional:
            return None
        raise fail("a value")

    if kind.base is bool:
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.strip().lower() in _TRUE | _FALSE:
            return raw.strip().lower() in _TRUE
        raise fail("true or false")
    if kind.base is dict:
        if isinstance(raw, Mapping) and all(isinstance(v, str) for v in raw.values()):
            return {str(k): v for k, v in raw.items()}
        raise fail("a table of binding id = key")
    if kind.base is int:
        if isinstance(raw, bool | float):  # int(True) and int(12.5) would pass silently
            raise fail(f"a whole number{_range(meta)}")
        try:
            whole = int(raw)
        except (TypeError, ValueError):
            raise fail(f"a whole number{_range(meta)}") from None
        return _check_range(whole, meta, fail, "a whole number")
    if kind.base is float:
        if isinstance(raw, bool):
            raise fail(f"a number{_range(meta)}")
        try:
            value = float(raw)
        except (TypeError, ValueError):
            raise fail(f"a number{_range(meta)}") from None
        if value != value:  # NaN
            raise fail(f"a number{_range(meta)}")
        return _check_range(value, meta, fail, "a number")
    # text, free or one of a Literal's choices
    if not isinstance(raw, str):
        raise fail("text")
    text = raw.strip()
    if kind.choices and text not in kind.choices:
        raise fail("one of " + ", ".join(kind.choices))
    if not text:
        raise fail("a non-empty text")
    return text


def _range(meta: Mapping[str, Any]) -> str:
    return f" from {meta['low']:g} to {meta['high']:g}" if meta["low"] is not None else ""


Number = TypeVar("Number", int, float)


def _check_range(value: Number, meta: Mapping[str, Any], fail: Fail, what: str) -> Number:
    if meta["low"] is not None and not (meta["low"] <= value <= meta["high"]):
        raise fail(f"{what}{_range(meta)}")
    return value


def read_config_file(path: Path) -> dict[str, Any]:
    """Parse a TOML config file; unknown keys and bad syntax are errors naming the file."""
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        return {}
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"config file {path} is not UTF-8 text (byte {exc.start} cannot be read); "
            "save it as UTF-8"
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    known = set(Settings.names())
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(
            f"unknown setting '{unknown[0]}' in {path}; known settings: {', '.join(sorted(known))}"
        )
    return data


def read_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """Collect ``PHICHAT_<NAME>`` variables that name a setting."""
    values = {}
    for name in Settings.names():
        key = ENV_PREFIX + name.upper()
        if key in environ and name != "keys":
            values[name] = environ[key]
    return values


def load_settings(
    flags: Mapping[str, Any] | None = None,
    config_file: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Build the settings: defaults < config file < environment < flags.

    ``flags`` holds only the options the user actually gave (None values are ignored).
    An explicit ``config_file`` must exist; the default one may be absent.
    """
    environ = os.environ if environ is None else environ
    if config_file is None and environ.get("PHICHAT_CONFIG"):
        config_file = Path(environ["PHICHAT_CONFIG"])
    if config_file is not None and config_file.is_dir():
        raise ConfigError(f"config file {config_file} is a folder, not a file")
    if config_file is not None and not config_file.exists():
        raise ConfigError(f"config file {config_file} does not exist")
    path = config_file or default_config_file()

    layers: list[tuple[str, Mapping[str, Any]]] = [
        (f"in {path}", read_config_file(path)),
        ("from the environment", read_environment(environ)),
        ("from the command line", {k: v for k, v in (flags or {}).items() if v is not None}),
    ]
    by_name = {f.name: f for f in fields(Settings)}
    values: dict[str, Any] = {}
    for origin, layer in layers:
        for name, raw in layer.items():
            if name not in by_name:
                raise ConfigError(f"unknown setting '{name}' {origin}")
            values[name] = _coerce(by_name[name], raw, origin)
    return Settings(**values)
