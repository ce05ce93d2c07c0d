"""Settings: defaults < config file < PHICHAT_* environment < flags, with one-line errors."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, get_args

import pytest

from phichat import config
from phichat.cli import main
from phichat.config import (
    DEFAULT_MODEL,
    Backend,
    Device,
    Dtype,
    Engine,
    SafeSearch,
    Settings,
    TimeLimit,
    load_settings,
    setting_docs,
)
from phichat.errors import ConfigError


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_defaults_without_any_file_or_variable(tmp_path: Path) -> None:
    settings = load_settings(environ={})
    assert settings.model == DEFAULT_MODEL
    assert settings.search is False and settings.max_new_tokens == 512


def test_precedence_file_then_environment_then_flags(tmp_path: Path) -> None:
    config = write(
        tmp_path / "c.toml", 'temperature = 0.2\nmax_new_tokens = 100\nengine = "searxng"\n'
    )
    env = {"PHICHAT_MAX_NEW_TOKENS": "200", "PHICHAT_SEARCH": "yes"}
    settings = load_settings(
        {"max_new_tokens": "300", "seed": None}, config_file=config, environ=env
    )
    assert settings.temperature == 0.2  # file only
    assert settings.engine == "searxng"  # file only
    assert settings.search is True  # environment beats default
    assert settings.max_new_tokens == 300  # flag beats environment beats file
    assert settings.seed is None  # an absent flag changes nothing


def test_the_default_config_file_is_read_from_the_config_dir(tmp_path: Path) -> None:
    write(tmp_path / "config" / "config.toml", 'model = "/models/phi"\n[keys]\nsend = "ctrl+s"\n')
    settings = load_settings(environ={})
    assert settings.model == "/models/phi"
    assert settings.keys == {"send": "ctrl+s"}


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (
            {"temperature": "hot"},
            "invalid setting 'temperature' (from the command line): expected a number from 0 to 2",
        ),
        ({"max_new_tokens": "0"}, "expected a whole number from 1 to 32768"),
        ({"max_new_tokens": "12.5"}, "expected a whole number"),
        ({"device": "tpu"}, "expected one of auto, cuda, mps, cpu"),
        ({"search": "maybe"}, "expected true or false"),
    ],
)
def test_invalid_flags_name_the_key_and_what_is_allowed(
    flags: dict[str, str], expected: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(flags, environ={})
    assert expected in str(caught.value)


def test_invalid_file_values_and_unknown_keys_name_the_file(tmp_path: Path) -> None:
    bad_type = write(tmp_path / "a.toml", 'max_results = "many"\n')
    with pytest.raises(ConfigError, match=r"'max_results' \(in .*a.toml\)"):
        load_settings(config_file=bad_type, environ={})
    unknown = write(tmp_path / "b.toml", 'modle = "x"\n')
    with pytest.raises(ConfigError, match="unknown setting 'modle'"):
        load_settings(config_file=unknown, environ={})
    broken = write(tmp_path / "c.toml", "model = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(config_file=broken, environ={})


def test_invalid_environment_value_names_the_variable_origin() -> None:
    with pytest.raises(ConfigError, match="from the environment"):
        load_settings(environ={"PHICHAT_TOP_P": "2"})


def test_missing_explicit_config_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(config_file=tmp_path / "nope.toml", environ={})


def test_cli_reports_a_bad_setting_in_one_line_with_exit_code_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(["ask", "--temperature", "hot", "hello"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("phichat: invalid setting 'temperature'")


def test_cli_config_flag_picks_another_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write(tmp_path / "other.toml", "max_new_tokens = -5\n")
    assert main(["ask", "--config", str(config), "hello"]) == 2
    assert "other.toml" in capsys.readouterr().err


def test_every_setting_is_documented() -> None:
    rows = setting_docs()
    assert [row[0] for row in rows] == Settings.names()
    assert all(row[3] for row in rows)


LITERAL_SETTINGS = {
    "backend": Backend,
    "device": Device,
    "dtype": Dtype,
    "engine": Engine,
    "safesearch": SafeSearch,
    "timelimit": TimeLimit,
}


@pytest.mark.parametrize(("name", "kind"), LITERAL_SETTINGS.items())
def test_a_setting_with_choices_takes_them_from_its_literal_type(name: str, kind: object) -> None:
    choices = get_args(kind)
    for choice in choices:
        assert getattr(load_settings({name: choice}, environ={}), name) == choice
    with pytest.raises(ConfigError) as caught:
        load_settings({name: "nope"}, environ={})
    assert f"expected one of {', '.join(choices)}" in str(caught.value)


def test_an_optional_choice_can_be_unset_from_the_environment() -> None:
    assert load_settings(environ={"PHICHAT_TIMELIMIT": "w"}).timelimit == "w"
    assert load_settings(environ={"PHICHAT_TIMELIMIT": "none"}).timelimit is None


@pytest.mark.parametrize("hint", [list[int], int | str, Literal[1, 2], dict[str, int], bytes])
def test_a_setting_type_the_loader_has_no_rule_for_is_refused(hint: object) -> None:
    with pytest.raises(TypeError, match="setting x"):
        config._kind_of("x", hint)
