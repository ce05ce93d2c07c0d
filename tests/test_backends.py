"""Choosing a backend: the flags reach every command, and the backends import lazily."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from phichat.cli import build_parser
from phichat.cli.common import settings_from_args
from phichat.errors import ConfigError, ModelNotAvailable
from phichat.models import create_model
from phichat.models.openai_compat import OpenAICompatModel
from phichat.models.phi3 import Phi3Model
from phichat.models.stops import StopScanner

SERVER_FLAGS = ["--backend", "openai", "--base-url", "http://127.0.0.1:9/v1", "--api-model", "m"]


@pytest.mark.parametrize(
    "argv",
    [
        [*SERVER_FLAGS],  # the TUI takes the flags before any command
        ["ask", *SERVER_FLAGS, "question"],
        ["compare", *SERVER_FLAGS, "question"],
        ["search", *SERVER_FLAGS, "question"],
        ["serve", *SERVER_FLAGS],
    ],
)
def test_backend_flags_reach_every_command(argv: list[str]) -> None:
    settings = settings_from_args(build_parser().parse_args(argv))
    assert (settings.backend, settings.base_url, settings.api_model) == (
        "openai",
        "http://127.0.0.1:9/v1",
        "m",
    )
    model = create_model(settings)
    assert isinstance(model, OpenAICompatModel)
    assert model.name == "m"


def test_transformers_stays_the_default_and_bad_backends_are_named() -> None:
    settings = settings_from_args(build_parser().parse_args([]))
    assert isinstance(create_model(settings), Phi3Model)
    with pytest.raises(ConfigError, match="transformers, openai, gguf"):
        settings_from_args(build_parser().parse_args(["--backend", "vllm"]))


def test_the_openai_backend_needs_a_base_url() -> None:
    settings = settings_from_args(build_parser().parse_args(["--backend", "openai"]))
    with pytest.raises(ModelNotAvailable, match="--base-url"):
        create_model(settings)


def test_api_key_in_the_config_file_is_read_but_never_shown(tmp_path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('backend = "openai"\nbase_url = "http://127.0.0.1:9"\napi_key = "k-123"\n')
    settings = settings_from_args(build_parser().parse_args(["--config", str(config)]))
    assert settings.api_key == "k-123"
    assert "k-123" not in repr(settings)
    config.write_text("api_key = 5\n")
    with pytest.raises(ConfigError) as caught:
        settings_from_args(build_parser().parse_args(["--config", str(config)]))
    assert "5" not in str(caught.value).split("got")[-1]


@pytest.mark.parametrize(
    ("pieces", "shown"),
    [
        (["Hello<|e", "nd|> tail"], "Hello"),
        (["a <", "b"], "a <b"),  # a '<' that starts no stop sequence is released
        (["x<|end|", ">"], "x"),
        (["done <|"], "done <|"),  # held back, then released at the end of the stream
    ],
)
def test_stop_scanner_never_shows_part_of_a_stop_sequence(pieces: list[str], shown: str) -> None:
    scanner = StopScanner(["<|end|>", "<|user|>"])
    out = []
    for piece in pieces:
        out.append(scanner.feed(piece))
        assert "<|end" not in "".join(out)
    out.append(scanner.flush())
    assert "".join(out) == shown


def test_backend_modules_import_no_heavy_libraries() -> None:
    probe = (
        "import json, sys\n"
        "import phichat.cli, phichat.server.app, phichat.models.openai_compat, "
        "phichat.models.gguf\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    loaded = set(json.loads(result.stdout.strip().splitlines()[-1]))
    assert "phichat" in loaded
    assert not loaded & {"torch", "transformers", "httpx", "llama_cpp", "openai", "textual", "rich"}
