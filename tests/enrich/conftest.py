"""Fixtures of the enrichment tests: MaxMind's test databases and the built-in data."""

from __future__ import annotations

from pathlib import Path

import pytest

from portolan.enrich.builtin import find_dir


@pytest.fixture
def mmdb_dir(shared_data: Path) -> Path:
    """MaxMind's own test databases (City, Country, ASN) from the shared sample data."""
    folder = shared_data / "geoip"
    if not (folder / "GeoIP2-City-Test.mmdb").is_file():
        pytest.skip(f"MaxMind test databases absent from {folder}")
    return folder


@pytest.fixture
def builtin_root() -> Path:
    """The built-in data packages (installed by scripts/bootstrap with npm ci)."""
    root = find_dir()
    if root is None:
        pytest.skip("built-in GeoIP data absent: run scripts/bootstrap (needs npm)")
    return root
