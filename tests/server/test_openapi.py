"""Schemathesis over the served OpenAPI document: generated requests to every operation
(the endless stream aside) never get a 5xx, and every response matches the document.
Bounded: a fixed number of examples per operation, no example database.

One check is left out: "schema-valid data is accepted". Times (``30m``, an RFC 3339 date),
networks and cursors have grammars that JSON Schema only approximates, so a generated value
can fit the document and still be refused, with a 400 that names the parameter (which the
other checks hold to the document)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import positive_data_acceptance

from portolan.server.tokens import Tokens

from .conftest import Running, ev, make_runtime, start_server


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    tmp: Path = tmp_path_factory.mktemp("openapi")
    rt = make_runtime(tmp, f"sqlite:///{tmp / 'portolan.db'}")
    rt.store().write([ev(i, payload=b"GET / HTTP/1.0\r\n", session=f"s{i % 5}",
                         attrs={"host": "example.org"}) for i in range(60)])
    yield from start_server(rt)


@pytest.fixture(scope="module")
def admin(running: Running) -> str:
    secret, _ = Tokens(running.runtime.store()).create("admin", "schemathesis")
    return secret


def test_the_document_is_served(running: Running) -> None:
    doc = running.get("/api/v1/openapi.json").json()
    assert doc["openapi"].startswith("3.1")
    assert "/api/v1/ingest" in doc["paths"] and "Event" in doc["components"]["schemas"]


def test_no_server_errors(running: Running, admin: str) -> None:
    api = schemathesis.openapi.from_url(f"{running.url}/api/v1/openapi.json")
    tried = []
    for result in api.get_all_operations():
        operation = result.ok()
        if operation.path == "/api/v1/stream":
            continue  # endless by design; tested in test_stream.py

        @given(case=operation.as_strategy())
        @settings(max_examples=60, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        def check(case: schemathesis.Case) -> None:
            case.call_and_validate(headers={"Authorization": f"Bearer {admin}"},
                                   excluded_checks=[positive_data_acceptance])

        check()
        tried.append(f"{operation.method.upper()} {operation.path}")
    assert len(tried) == 15, tried
