"""A paste is text, never key presses: guard Textual's input parser, and clean what lands.

Textual 8's ``XTermParser`` (``textual/_xterm_parser.py``) reads an ESC inside a bracketed
paste as the start of an escape sequence. The characters after it are collected outside
the paste buffer, and when they form no key it knows they are re-issued as key presses,
before the paste itself. So a pasted ``abc ESC ]0;T BEL def`` (copied shell-prompt output)
arrives as the keys ``^ ] 0 ; T ctrl+g d e f`` and then a paste of ``abc``: Ctrl+G runs
and the text is scrambled. A pasted ``ESC CR`` would even press Enter.

``PasteGuard`` rewrites the terminal's input before the parser sees it: inside a paste,
every ESC that does not begin the paste's closing marker becomes ``PASTED_ESC``, a Unicode
noncharacter the parser takes as plain text. The whole paste then reaches the app as one
``Paste`` event, and ``clean_paste`` turns its escape sequences into nothing.

The same drivers decode input strictly as UTF-8; ``lenient_decoder`` replaces a byte that
is not UTF-8 instead of letting it kill the input thread.
"""

from __future__ import annotations

import codecs
import sys
from collections.abc import Callable, Iterable

from textual._xterm_parser import XTermParser
from textual.message import Message

from phichat.textsafe import strip_control

ESC = "\x1b"
PASTE_START = "\x1b[200~"
PASTE_END = "\x1b[201~"
# U+FDD0 is a noncharacter: Unicode reserves it for a program's internal use, so no real
# text (and no terminal) sends it.
PASTED_ESC = "\ufdd0"


class PasteGuard:
    """Replace the ESCs inside bracketed pastes of a stream of terminal input.

    It keeps state between calls, since a paste (or one of its markers) can be split
    across reads; a possible start of the closing marker is held back until it is known.
    """

    def __init__(self) -> None:
        self._in_paste = False
        self._start_matched = 0  # characters of PASTE_START seen so far, outside a paste
        self._held = ""  # inside a paste: a proper prefix of PASTE_END, not yet decided

    def filter(self, data: str) -> str:
        out: list[str] = []
        for character in data:
            if self._in_paste:
                self._inside(character, out)
            else:
                out.append(character)
                self._outside(character)
        return "".join(out)

    def _outside(self, character: str) -> None:
        # PASTE_START holds ESC only at its start, so a mismatch restarts at 0 (or 1).
        if character == PASTE_START[self._start_matched]:
            self._start_matched += 1
        else:
            self._start_matched = 1 if character == ESC else 0
        if self._start_matched == len(PASTE_START):
            self._in_paste = True
            self._start_matched = 0

    def _inside(self, character: str, out: list[str]) -> None:
        if self._held:
            candidate = self._held + character
            if PASTE_END.startswith(candidate):
                self._held = candidate
                if candidate == PASTE_END:
                    out.append(candidate)
                    self._held = ""
                    self._in_paste = False
                return
            # Not the closing marker after all: the held ESC was pasted text.
            out.append(PASTED_ESC + self._held[1:])
            self._held = ""
        if character == ESC:
            self._held = ESC
        else:
            out.append(character)


class PasteSafeParser(XTermParser):
    """Textual's parser, fed through a ``PasteGuard``."""

    def __init__(self, debug: bool = False) -> None:
        super().__init__(debug)
        self._guard = PasteGuard()

    def feed(self, data: str) -> Iterable[Message]:
        if not data:  # the end of input: nothing to guard
            return super().feed(data)
        guarded = self._guard.filter(data)
        # All of it held back (a split closing marker): an empty feed would mean EOF.
        return super().feed(guarded) if guarded else ()


def install_paste_guard() -> None:
    """Make Textual's terminal drivers parse input with ``PasteSafeParser``.

    The drivers build their parser from the ``XTermParser`` name in their own module (a
    test checks that this is still so), so that name is pointed at the guarded parser.
    """
    from textual.drivers import linux_driver, linux_inline_driver

    modules = [linux_driver, linux_inline_driver]
    if sys.platform == "win32":
        from textual.drivers import win32

        modules.append(win32)
    for module in modules:
        module.XTermParser = PasteSafeParser  # type: ignore[attr-defined]  # set at run time
    # The POSIX drivers also look their input decoder up by name in their own module.
    for module in (linux_driver, linux_inline_driver):
        module.getincrementaldecoder = lenient_decoder  # type: ignore[attr-defined]


def lenient_decoder(encoding: str) -> Callable[..., codecs.IncrementalDecoder]:
    """An incremental decoder factory that turns invalid bytes into U+FFFD.

    Textual decodes terminal input strictly, so one byte that is not UTF-8 (a paste from a
    Latin-1 terminal, a stray meta key) raises inside its input thread and the keyboard
    goes dead. Replacing the byte keeps the app usable, and the text shows where it was.
    """
    decoder_class = codecs.getincrementaldecoder(encoding)

    def make(errors: str = "strict") -> codecs.IncrementalDecoder:
        return decoder_class(errors="replace")

    return make


def clean_paste(text: str) -> str:
    """Pasted text as inert text: escape sequences and control characters removed.

    Newlines are kept (a terminal sends them as CR), and so are tabs.
    """
    text = text.replace(PASTED_ESC, ESC).replace("\r\n", "\n").replace("\r", "\n")
    return strip_control(text)
