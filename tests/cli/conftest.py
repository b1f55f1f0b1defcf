"""Running the real ``portolan`` command group in-process."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from portolan.cli import _load


@pytest.fixture
def cli() -> CliRunner:
    """A runner for :data:`portolan.cli.app.main` with every command module loaded."""
    _load()
    return CliRunner()


@pytest.fixture
def mmdb_dir(shared_data: Path) -> Path:
    """MaxMind's own test databases (City, Country, ASN) from the shared sample data."""
    folder = shared_data / "geoip"
    if not (folder / "GeoIP2-City-Test.mmdb").is_file():
        pytest.skip(f"MaxMind test databases absent from {folder}")
    return folder
