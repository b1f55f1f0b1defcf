"""The configuration: validation messages, environment overrides, generated docs."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from portolan.config import (
    ConfigError,
    PipelineSection,
    StoreSection,
    example_config,
    load,
    markdown_reference,
    validate,
)

REPO = Path(__file__).resolve().parent.parent


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "portolan.toml"
    path.write_text(text)
    return path


def test_defaults_without_a_file() -> None:
    config = load(None, environ={})
    assert config.store.url == ""
    assert config.pipeline.batch_size == PipelineSection().batch_size
    assert config.sensor


def test_values_are_read(tmp_path: Path) -> None:
    config = load(write(tmp_path, 'sensor = "edge1"\n[store]\nurl = "sqlite:///x.db"\n'), {})
    assert config.sensor == "edge1"
    assert config.get(StoreSection).url == "sqlite:///x.db"


def test_unknown_table_lists_the_allowed(tmp_path: Path) -> None:
    path = write(tmp_path, "[stor]\nurl = 'x'\n")
    with pytest.raises(ConfigError) as info:
        load(path, {})
    message = str(info.value)
    assert message.startswith(str(path))
    assert "'stor'" in message
    assert "store" in message


def test_unknown_key_in_a_table(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load(write(tmp_path, "[store]\nulr = 'x'\n"), {})
    assert "unknown key 'store.ulr'" in str(info.value)
    assert "url" in str(info.value)


def test_wrong_type_names_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"pipeline\.batch_size: Expected `int`, got `str`"):
        load(write(tmp_path, "[pipeline]\nbatch_size = 'many'\n"), {})


def test_bad_toml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load(write(tmp_path, "[store\n"), {})
    with pytest.raises(ConfigError, match="no such file"):
        load(tmp_path / "absent.toml", {})


def test_log_level_is_checked() -> None:
    with pytest.raises(ConfigError, match="allowed: debug, info, warning, error"):
        validate({"log_level": "loud"})


def test_source_needs_a_known_type() -> None:
    with pytest.raises(ConfigError, match=r"sources\[0\]: needs a 'type'"):
        validate({"sources": [{"path": "/x"}]})
    with pytest.raises(ConfigError, match=r"sources\[0\]\.type: unknown source 'nope'"):
        validate({"sources": [{"type": "nope"}]})


def test_environment_overrides(tmp_path: Path) -> None:
    path = write(tmp_path, "[store]\nurl = 'sqlite:///a.db'\n")
    env = {"PORTOLAN_STORE__URL": "sqlite:///b.db", "PORTOLAN_PIPELINE__BATCH_SIZE": "42",
           "PORTOLAN_SENSOR": "from-env", "OTHER": "x"}
    config = load(path, env)
    assert config.store.url == "sqlite:///b.db"
    assert config.pipeline.batch_size == 42
    assert config.sensor == "from-env"


def test_other_portolan_variables_are_not_settings() -> None:
    config = load(None, {"PORTOLAN_TEST_SOMETHING": "1", "PORTOLAN_STORE__URL": "sqlite:///c.db"})
    assert config.store.url == "sqlite:///c.db"
    with pytest.raises(ConfigError, match=r"unknown key 'store\.ulr'"):
        load(None, {"PORTOLAN_STORE__ULR": "x"})


def test_environment_values_are_validated() -> None:
    with pytest.raises(ConfigError, match=r"pipeline\.batch_size"):
        load(None, {"PORTOLAN_PIPELINE__BATCH_SIZE": "lots"})


def test_example_config_is_valid_toml_that_loads(tmp_path: Path) -> None:
    text = example_config()
    assert tomllib.loads(text) is not None
    # uncommenting every "key = value" line of the top tables gives a valid config too
    assert load(write(tmp_path, text), {}).store.url == ""


def test_configuration_reference_is_current() -> None:
    """docs/configuration.md is generated from the code; regenerate it with
    `portolan init --markdown > docs/configuration.md`."""
    assert (REPO / "docs" / "configuration.md").read_text() == markdown_reference()


@pytest.mark.parametrize(("text", "message"), [
    ("batch_size = 0", r"pipeline\.batch_size: must be at least 1"),
    ("batch_delay = 0", r"pipeline\.batch_delay: must be more than 0"),
    ("write_max = -1", r"pipeline\.write_max: must be 0 or more"),
])
def test_pipeline_limits_are_checked(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load(write(tmp_path, f"[pipeline]\n{text}\n"), {})
