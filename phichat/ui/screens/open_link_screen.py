"""Ask before opening a link from an answer that is not one of its sources."""

from __future__ import annotations

from phichat.textsafe import strip_control
from phichat.ui.screens.confirm_screen import ConfirmScreen


def open_link_question(url: str) -> str:
    # The whole address, never shortened: a look-alike host hides in what would be cut.
    shown = " ".join(strip_control(url).split())
    return (
        "This link is not one of the answer's sources: the model may have made it up, "
        f"or a web page may have planted it.\n\n{shown}\n\nOpen it in your browser?"
    )


class OpenLinkScreen(ConfirmScreen):
    """Y opens the link, N or Esc does not; the full URL is shown as plain text."""

    def __init__(self, url: str) -> None:
        super().__init__(open_link_question(url))
        self.url = url
