"""A one-line text field whose pastes are inert text, like the composer's."""

from __future__ import annotations

from textual import events
from textual.widgets import Input

from phichat.ui.pastesafe import clean_paste


class PlainInput(Input):
    """``Input`` that cleans a paste before inserting it.

    Textual's ``Input`` inserts the first line of a paste as it came, so a copied shell
    prompt (``ESC ] 0 ; title BEL``) would leave its control characters in a title or a
    path. The paste guard already keeps such a paste from being read as keys; this drops
    what it carries that is not text.
    """

    def _on_paste(self, event: events.Paste) -> None:
        # Textual runs every class's ``_on_paste`` down the MRO; prevent_default keeps
        # Input's own from inserting the raw text after this one.
        event.prevent_default()
        event.stop()
        cleaned = clean_paste(event.text)
        if cleaned:
            super()._on_paste(events.Paste(cleaned))
