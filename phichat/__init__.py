"""phichat: a terminal chat app for Phi-3-mini that can read the web.

This module stays tiny on purpose: importing it must not pull in torch, transformers
or Textual, so that ``phichat --help`` and the TUI's first frame stay fast.
"""

__version__ = "0.1.0"
