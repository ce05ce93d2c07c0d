"""Make untrusted text (web pages, model output, user input) safe to show in a terminal."""

from __future__ import annotations

import re

# ESC-introduced sequences (CSI, OSC, and two-character escapes) and every other C0/C1
# control character except tab and newline. A web page or a model can emit these, and a
# terminal would obey them: clear the screen, retitle the window, or hide text.
_ANSI_SEQUENCE = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"  # CSI ... final byte
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"  # OSC ... BEL or ST
    r"|\x1b[@-Z\\-_]"  # two-character escapes
)
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# Invisible characters that change what text appears to say. Bidi controls reorder it
# ("Trojan Source": U+202E shows "txt.exe" as "exe.txt"): marks U+200E, U+200F, U+061C,
# embeddings and overrides U+202A-202E, isolates U+2066-2069. Zero-width spaces and word
# joiners (U+200B, U+2060-2064, U+FEFF, U+180E) hide text inside words. The joiners
# U+200C and U+200D stay: Persian and Indic words and emoji sequences need them.
_INVISIBLE_FORMATTING = re.compile(
    "[\u061c\u180e\u200b\u200e\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]"
)


def strip_control(text: str) -> str:
    """Remove terminal escape sequences, control characters and bidi or zero-width
    formatting characters, keeping tabs and newlines."""
    text = _CONTROL_CHARS.sub("", _ANSI_SEQUENCE.sub("", text))
    return _INVISIBLE_FORMATTING.sub("", text)


# Strings the chat model's tokenizer turns into control tokens even inside plain text:
# Phi-3's "<|end|>", "<|user|>", "<|endoftext|>" and the like, and Llama's "<s>", "</s>"
# and "<unk>". Page text carrying one could end the user's turn or fake a chat role.
_SPECIAL_TOKEN = re.compile(r"<\|[^|<>\s]{1,40}\|>|</?s>|<unk>")


def neutralize_special_tokens(text: str) -> str:
    """Replace special-token strings with a space, for untrusted text going into a prompt."""
    return _SPECIAL_TOKEN.sub(" ", text)


def one_line(text: str, limit: int = 300) -> str:
    """Collapse text to a single, control-free line of at most ``limit`` characters."""
    flat = " ".join(strip_control(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


# A lone UTF-16 surrogate (JSON's "\ud800", or bytes decoded with "surrogateescape") is
# a Python str but not Unicode text: it cannot be encoded to UTF-8, and tokenizers refuse it.
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def has_lone_surrogates(text: str) -> bool:
    return _LONE_SURROGATE.search(text) is not None


def replace_lone_surrogates(text: str) -> str:
    """``text`` with each lone surrogate replaced by U+FFFD, the replacement character."""
    return _LONE_SURROGATE.sub("\ufffd", text)
