"""``portolan geoip status|lookup|import|reenrich``, run as a user runs them."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from click.testing import CliRunner

from portolan.cli.app import main
from portolan.event import Event, make_id
from portolan.store import EventFilter, Store


def config(tmp_path: Path, *databases: Path, **extra: object) -> Path:
    lines = [f'data_dir = "{tmp_path / "data"}"', "[geoip]", "builtin = false",
             "databases = [" + ", ".join(f'"{d}"' for d in databases) + "]"]
    lines += [f"{k} = {json.dumps(v)}" for k, v in extra.items()]
    path = tmp_path / "portolan.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_status_lists_databases_and_warns_when_old(cli: CliRunner, mmdb_dir: Path,
                                                   tmp_path: Path) -> None:
    cfg = config(tmp_path, mmdb_dir / "GeoIP2-City-Test.mmdb",
                 mmdb_dir / "GeoLite2-ASN-Test.mmdb", max_age_days=1)
    result = cli.invoke(main, ["-c", str(cfg), "geoip", "status"])
    assert result.exit_code == 0, result.output
    assert "GeoIP2-City-Test" in result.stdout and "GeoLite2-ASN-Test" in result.stdout
    assert "built 2026-" in result.stdout or "built 20" in result.stdout
    assert "warning: GeoIP2-City-Test is older than 1 days" in result.stderr
    rows = [json.loads(line) for line in cli.invoke(
        main, ["-c", str(cfg), "geoip", "status", "--json"]).stdout.splitlines()]
    assert [(r["name"], r["role"], r["origin"]) for r in rows] == [
        ("GeoIP2-City-Test", "place", "configured"), ("GeoLite2-ASN-Test", "asn", "configured")]
    assert all(r["stale"] and r["records"] > 0 and r["age_days"] > 1 for r in rows)
    fresh = config(tmp_path, mmdb_dir / "GeoIP2-City-Test.mmdb", max_age_days=100000)
    assert "warning" not in cli.invoke(main, ["-c", str(fresh), "geoip", "status"]).stderr


def test_status_names_a_broken_database(cli: CliRunner, tmp_path: Path) -> None:
    bad = tmp_path / "City.mmdb"
    bad.write_text("not a database")
    result = cli.invoke(main, ["-c", str(config(tmp_path, bad)), "geoip", "status"])
    assert result.exit_code == 1
    assert f"error: {bad}: not a usable MaxMind DB" in result.stderr


def test_lookup(cli: CliRunner, mmdb_dir: Path, tmp_path: Path) -> None:
    cfg = config(tmp_path, mmdb_dir / "GeoIP2-City-Test.mmdb", mmdb_dir / "GeoLite2-ASN-Test.mmdb")
    result = cli.invoke(main, ["-c", str(cfg), "geoip", "lookup", "--json", "81.2.69.142",
                               "1.128.0.1", "192.168.1.1", "\x1b[31mevil"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert (rows[0]["country"], rows[0]["city"]) == ("GB", "London")
    assert (rows[1]["asn"], rows[1]["network"]) == (1221, "1.128.0.0/11")
    assert rows[2]["attrs"] == {"geo": "private"} and rows[2]["country"] is None
    assert rows[3]["attrs"] == {"geo": "invalid"}
    text = cli.invoke(main, ["-c", str(cfg), "geoip", "lookup", "81.2.69.142", "10.0.0.1",
                             "\x1b[31mevil"]).stdout
    assert "London, United Kingdom" in text
    assert "10.0.0.1: private address" in text
    assert "\x1b" not in text  # attacker text is made printable


def test_import_checks_then_copies(cli: CliRunner, mmdb_dir: Path, tmp_path: Path) -> None:
    cfg = config(tmp_path)
    before = json.loads(cli.invoke(main, ["-c", str(cfg), "geoip", "lookup", "--json",
                                          "1.128.0.1"]).stdout)
    assert before["asn"] is None
    result = cli.invoke(main, ["-c", str(cfg), "geoip", "import",
                               str(mmdb_dir / "GeoLite2-ASN-Test.mmdb"), "--name", "asn"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "data" / "geoip" / "asn.mmdb").is_file()
    after = json.loads(cli.invoke(main, ["-c", str(cfg), "geoip", "lookup", "--json",
                                         "1.128.0.1"]).stdout)
    assert after["asn"] == 1221
    status = cli.invoke(main, ["-c", str(cfg), "geoip", "status", "--json"]).stdout
    assert json.loads(status.splitlines()[0])["origin"] == "imported"


def test_import_refuses_a_broken_file(cli: CliRunner, mmdb_dir: Path, tmp_path: Path) -> None:
    cut = tmp_path / "GeoLite2-City.mmdb"
    data = (mmdb_dir / "GeoLite2-City-Test.mmdb").read_bytes()
    cut.write_bytes(data[: len(data) // 3])
    result = cli.invoke(main, ["-c", str(config(tmp_path)), "geoip", "import", str(cut)])
    assert result.exit_code == 2
    assert str(cut) in result.stderr
    folder = tmp_path / "data" / "geoip"
    assert not folder.exists() or list(folder.iterdir()) == []


def test_reenrich_updates_stored_events(cli: CliRunner, mmdb_dir: Path,
                                        tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'events.db'}"
    store = Store(url)
    store.migrate()
    ts = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    store.write([Event(id=make_id("cli", i), ts=ts, src_ip=ip, service="ssh",
                       action="auth_failure") for i, ip in enumerate(["81.2.69.142", "1.128.0.1"])])
    cfg = config(tmp_path, mmdb_dir / "GeoIP2-City-Test.mmdb")
    result = cli.invoke(main, ["-c", str(cfg), "geoip", "reenrich", "--since", "2h",
                               "--db", url])
    assert result.exit_code == 0, result.output
    assert "2 events looked at, 1 updated" in result.stdout
    cities = {e.src_ip: e.city for e in store.events(EventFilter(), limit=5)}
    assert cities == {"81.2.69.142": "London", "1.128.0.1": None}
    store.close()
    missing = cli.invoke(main, ["-c", str(cfg), "geoip", "reenrich", "--db", url])
    assert missing.exit_code == 2  # --since is required


def test_ingest_enriches_through_the_pipeline(cli: CliRunner, mmdb_dir: Path,
                                              tmp_path: Path) -> None:
    ts = "2026-11-20T10:00:00Z"
    lines = [
        {"id": f"e{i}", "ts": ts, "service": "ssh", "action": "auth_failure", "src_ip": ip}
        for i, ip in enumerate(["81.2.69.142", "1.128.0.9", "10.9.9.9", "what?"])
    ]
    log = tmp_path / "events.jsonl"
    log.write_text("".join(json.dumps(line) + "\n" for line in lines))
    url = f"sqlite:///{tmp_path / 'events.db'}"
    cfg = config(tmp_path, mmdb_dir / "GeoIP2-City-Test.mmdb", mmdb_dir / "GeoLite2-ASN-Test.mmdb")
    result = cli.invoke(main, ["-c", str(cfg), "ingest", str(log), "--format", "jsonl",
                               "--db", url, "--no-progress"])
    assert result.exit_code == 0, result.output
    store = Store(url)
    found = {e.src_ip: e for e in store.events(EventFilter(), limit=10)}
    store.close()
    assert (found["81.2.69.142"].city, found["81.2.69.142"].country) == ("London", "GB")
    assert found["1.128.0.9"].asn == 1221
    assert found["10.9.9.9"].attrs == {"geo": "private"}
    assert found["what?"].attrs == {"geo": "invalid"}
