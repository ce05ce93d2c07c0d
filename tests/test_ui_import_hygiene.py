"""The layers hold: the core never imports Textual or Rich, and the UI never imports torch.

Each check imports modules in a fresh interpreter and inspects ``sys.modules``, so an
import made by another test cannot hide (or fake) a violation.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

_PROBE = """
import importlib, json, pkgutil, sys
roots = {roots!r}
for root in roots:
    package = importlib.import_module(root)
    if hasattr(package, "__path__"):
        for info in pkgutil.walk_packages(package.__path__, root + "."):
            if not info.name.endswith("__main__"):
                importlib.import_module(info.name)
print(json.dumps(sorted(sys.modules)))
"""


def imported_modules(*roots: str) -> set[str]:
    result = subprocess.run(
        [sys.executable, "-c", _PROBE.format(roots=list(roots))],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return set(json.loads(result.stdout.strip().splitlines()[-1]))


def top_level(modules: set[str]) -> set[str]:
    return {name.split(".")[0] for name in modules}


@pytest.mark.parametrize(
    "package",
    ["phichat.chat", "phichat.models", "phichat.retrieval", "phichat.storage", "phichat.cli"],
)
def test_core_packages_never_import_textual_or_rich(package: str) -> None:
    loaded = top_level(imported_modules(package))
    assert "textual" not in loaded
    assert "rich" not in loaded


@pytest.mark.parametrize("package", ["phichat.ui", "phichat.cli"])
def test_ui_and_cli_never_import_the_model_libraries(package: str) -> None:
    loaded = top_level(imported_modules(package))
    assert not loaded & {"torch", "transformers", "sentence_transformers"}


def test_the_probe_does_see_textual_when_the_ui_is_imported() -> None:
    # Guards the checks above: an empty or broken probe would pass them vacuously.
    assert "textual" in top_level(imported_modules("phichat.ui"))
