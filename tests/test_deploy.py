"""The deployment files: example configs load, systemd units pass systemd's own check."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from portolan.config import load

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"


@pytest.mark.parametrize("name", ["sensor.toml", "collector.toml", "all-in-one.toml"])
def test_example_configs_are_valid(name: str) -> None:
    config = load(DEPLOY / "config" / name, environ={})
    assert config.path is not None


def test_sensor_example_forwards_and_stores_nothing() -> None:
    from portolan.sinks.forward import ForwardSection

    config = load(DEPLOY / "config" / "sensor.toml", environ={})
    assert not config.store.enabled
    assert config.get(ForwardSection).url.startswith("https://")
    assert {s.type for s in config.sources} == {"file", "listener"}


@pytest.mark.parametrize("unit", sorted(p.name for p in (DEPLOY / "systemd").glob("*.service")))
def test_systemd_units_verify(unit: str, tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    text = (DEPLOY / "systemd" / unit).read_text()
    assert "ExecStart=/usr/local/bin/portolan " in text
    # verify checks that the program exists: point it at one that does
    (tmp_path / unit).write_text(text.replace("/usr/local/bin/portolan", "/bin/true"))
    out = subprocess.run([analyze, "verify", "--man=no", str(tmp_path / unit)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stderr.strip() == "", out.stderr


def test_collector_unit_has_no_capabilities_and_sensor_only_the_two() -> None:
    collector = (DEPLOY / "systemd" / "portolan-collector.service").read_text()
    sensor = (DEPLOY / "systemd" / "portolan-sensor.service").read_text()
    assert "CapabilityBoundingSet=\n" in collector
    assert "CapabilityBoundingSet=CAP_NET_BIND_SERVICE CAP_NET_RAW\n" in sensor


def test_readme_config_example_is_valid(tmp_path: Path) -> None:
    """The config shown in the README loads as it is."""
    readme = (DEPLOY.parent / "README.md").read_text()
    block = readme.split("```toml\n", 1)[1].split("```", 1)[0]
    (tmp_path / "p.toml").write_text(block)
    config = load(tmp_path / "p.toml", environ={})
    assert [s.type for s in config.sources] == ["file", "listener"]
