"""The wheel ships the prompt templates, and they load from an installed copy."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from phichat import prompts
from phichat.chat.presets import preset_names

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return next(out.glob("phichat-*.whl"))


def test_every_template_is_in_the_wheel(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in prompts.available():
        assert f"phichat/prompts/{name}.md" in names
    assert "phichat/ui/app.tcss" in names  # the TUI's stylesheet is data, not code


def test_every_built_in_preset_is_in_the_wheel(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    built_in = preset_names()  # the test's own config dir has no user presets
    assert built_in[0] == "itinerary"
    for name in built_in:
        assert f"phichat/prompts/presets/{name}.md" in names


def test_templates_load_from_an_installed_copy(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "-q",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    script = "\n".join(
        [
            "import phichat, phichat.prompts as p",
            "from phichat.chat.presets import load_preset, preset_names",
            f"assert phichat.__file__.startswith({str(target)!r}), phichat.__file__",
            "print(' '.join(f'{n}={len(p.load(n))}' for n in p.available()))",
            "print(' '.join(f'preset-{n}={len(load_preset(n).system)}' for n in preset_names()))",
        ]
    )
    result = subprocess.run(
        # -S skips site-packages (and so the editable install of this checkout); cwd keeps
        # the checkout off sys.path: only the wheel's copy can be imported.
        [sys.executable, "-S", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        # The config dir is set so listing presets needs no platformdirs (site is off).
        env={"PYTHONPATH": str(target), "PHICHAT_CONFIG_DIR": str(tmp_path / "config")},
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    loaded = dict(line.split("=") for line in result.stdout.split())
    presets = {k.removeprefix("preset-") for k in loaded if k.startswith("preset-")}
    assert presets == set(preset_names()) >= {"itinerary", "brief"}
    loaded = {k: v for k, v in loaded.items() if not k.startswith("preset-")}
    assert set(loaded) == set(prompts.available()) >= {"system", "grounded"}
    assert all(int(size) > 20 for size in loaded.values())


def test_render_inserts_values_verbatim() -> None:
    text = prompts.render("grounded", sources="{not a placeholder} [1]", question="Why?")
    assert "{not a placeholder} [1]" in text and text.endswith("Question: Why?")
