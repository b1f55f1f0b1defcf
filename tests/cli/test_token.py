"""``portolan token``: create, list, revoke, through the real command line."""

from __future__ import annotations

import json

from click.testing import CliRunner

from portolan.cli import _load
from portolan.cli.app import main
from portolan.server.tokens import Tokens
from portolan.store import Store


def run(*args: str) -> tuple[int, str, str]:
    _load()
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_create_list_revoke(sqlite_url: str) -> None:
    code, out, err = run("token", "create", "--scope", "ingest", "--name", "edge-1",
                         "--db", sqlite_url)
    assert code == 0, err
    secret = out.strip()
    assert secret.startswith("ptk_") and "not shown again" in err
    store = Store(sqlite_url)
    assert Tokens(store).scope_of(secret) == "ingest"
    code, out, _ = run("token", "list", "--json", "--db", sqlite_url)
    (row,) = [json.loads(line) for line in out.splitlines()]
    assert row["name"] == "edge-1" and row["scope"] == "ingest" and row["revoked"] is None
    assert secret not in out
    code, out, _ = run("token", "revoke", "edge-1", "--db", sqlite_url)
    assert code == 0 and "1 token" in out
    assert Tokens(store).scope_of(secret) is None
    code, out, err = run("token", "revoke", "edge-1", "--db", sqlite_url)
    assert code == 2 and "no active token" in err
    code, out, _ = run("token", "list", "--db", sqlite_url)
    assert "revoked" in out and "edge-1" in out
    store.close()


def test_scope_is_checked(sqlite_url: str) -> None:
    code, _, err = run("token", "create", "--scope", "root", "--db", sqlite_url)
    assert code == 2 and "ingest" in err
