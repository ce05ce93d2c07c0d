"""The README's reference tables are generated from the code, and must not drift from it."""

from __future__ import annotations

import runpy
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_readme_lists_every_setting_as_the_code_defines_it() -> None:
    table = runpy.run_path(str(ROOT / "scripts" / "settings_table.py"))["settings_table"]()
    assert table in (ROOT / "README.md").read_text()


def test_readme_key_table_matches_the_bindings() -> None:
    from phichat.ui.keys import markdown_table

    assert markdown_table() in (ROOT / "README.md").read_text()
