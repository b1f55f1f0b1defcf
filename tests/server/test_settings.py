"""The ``[server]`` table: defaults that keep the server private, clear errors."""

from __future__ import annotations

import pytest

from portolan.config import ConfigError, validate
from portolan.server.settings import ServerSection


def test_defaults_are_loopback_and_no_cors() -> None:
    s = validate({}).get(ServerSection)
    assert s.listen == "127.0.0.1:8080" and s.cors_origins == [] and not s.metrics_per_ip


def test_errors_name_the_key() -> None:
    with pytest.raises(ConfigError, match=r"unknown key 'server\.lsten'"):
        validate({"server": {"lsten": "0.0.0.0:80"}})
    with pytest.raises(ConfigError, match=r"server\.max_events"):
        validate({"server": {"max_events": "many"}})
