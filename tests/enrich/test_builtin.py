"""Finding and reading the built-in data packages."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from portolan.enrich.builtin import ASN_PACKAGE, Package, find_dir, load_countries, package


def fake_root(tmp_path: Path) -> Path:
    root = tmp_path / "node_modules"
    asn = root / ASN_PACKAGE
    asn.mkdir(parents=True)
    (asn / "package.json").write_text(json.dumps({"version": "2.3.2026061719"}))
    wc = root / "world-countries"
    wc.mkdir()
    (wc / "countries.json").write_text(json.dumps([
        {"cca2": "nl", "name": {"common": "Netherlands"}, "latlng": [52.5, 5.75]},
        {"cca2": "AQ", "name": {"common": "Antarctica"}, "latlng": []},
        {"name": "no code"},
    ]))
    return root


def test_found_where_configured_or_in_the_environment(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    root = fake_root(tmp_path)
    assert find_dir(str(root)) == root
    monkeypatch.setenv("PORTOLAN_GEOIP_DATA", str(root))
    assert find_dir() == root
    assert find_dir(str(tmp_path / "empty")) == root  # a wrong setting falls through


def test_package_version_gives_the_build_date(tmp_path: Path) -> None:
    found = package(fake_root(tmp_path), ASN_PACKAGE)
    assert found is not None
    assert found.build == dt.datetime(2026, 6, 17, 19, tzinfo=dt.UTC)
    assert Package("x", "5.1.0", tmp_path).build is None
    assert package(tmp_path, "absent") is None


def test_countries(tmp_path: Path) -> None:
    countries = load_countries(fake_root(tmp_path))
    assert set(countries) == {"NL", "AQ"}
    assert (countries["NL"].name, countries["NL"].lat, countries["NL"].lon) == (
        "Netherlands", 52.5, 5.75)
    assert countries["AQ"].lat is None
    assert load_countries(None) == {}
    assert load_countries(tmp_path) == {}


def test_installed_packages_are_complete(builtin_root: Path) -> None:
    countries = load_countries(builtin_root)
    assert len(countries) > 240
    assert all(c.lat is not None for code, c in countries.items() if code in ("US", "DE", "BR"))
    asn = package(builtin_root, ASN_PACKAGE)
    assert asn is not None and asn.build is not None
