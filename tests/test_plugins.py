"""The registries: built-in pieces found on first use, and only the packages a registry needs
imported (checked in fresh interpreters, where nothing is imported yet)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

#: Modules that `portolan parse` has no use for, slow to import: the store, the server, the
#: GeoIP data, the alerts, the packet analysers.
HEAVY = ("sqlalchemy", "starlette", "portolan.store", "portolan.server", "portolan.enrich.geoip",
         "portolan.enrich.asn", "portolan.alerts", "portolan.packets.analyzer")
#: The end of every script below: which of those modules it imported.
REPORT = f"""
import json, sys
heavy = sorted(m for m in sys.modules if m.startswith({HEAVY!r}))
print(json.dumps({{**found, "heavy": heavy}}))
"""


def fresh(code: str, tmp_path: Path) -> tuple[dict[str, Any], str]:
    """Run ``code`` (which fills the dict ``found``) in a new interpreter, without a config:
    what it found, and what it printed before."""
    (tmp_path / "empty.toml").write_text("")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PORTOLAN_")}
    env["PORTOLAN_DATA_DIR"] = str(tmp_path / "data")
    env["PORTOLAN_CONFIG"] = str(tmp_path / "empty.toml")
    done = subprocess.run([sys.executable, "-c", code + REPORT], capture_output=True,
                          text=True, env=env, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    *before, last = done.stdout.splitlines()
    return json.loads(last), "\n".join(before)


def test_looking_up_a_format_imports_the_formats_alone(tmp_path: Path) -> None:
    found, _ = fresh("from portolan.formats.base import FORMATS\n"
                     "FORMATS.get('sshd')\n"
                     "found = {'names': FORMATS.names()}\n", tmp_path)
    assert {"sshd", "weblog", "jsonl", "pcap", "spyserver"} <= set(found["names"])
    assert found["heavy"] == []


def test_the_other_registries_still_load_every_package(tmp_path: Path) -> None:
    found, _ = fresh("from portolan.formats.base import FORMATS\n"
                     "FORMATS.get('sshd')\n"
                     "from portolan.config import SECTIONS\n"
                     "from portolan.sinks.base import SINKS\n"
                     "found = {'sinks': SINKS.names(), 'sections': SECTIONS.names()}\n",
                     tmp_path)
    assert "store" in found["sinks"]
    assert {"store", "geoip", "server", "alerts", "formats"} <= set(found["sections"])


def test_parse_loads_neither_the_store_nor_the_server(tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    log.write_text("Nov 23 10:00:00 web1 sshd[1]: Invalid user a from 192.0.2.1 port 1\n")
    found, out = fresh("import contextlib, sys\n"
                       "from portolan.cli import main\n"
                       f"sys.argv = ['portolan', 'parse', {str(log)!r}, '--format', 'sshd']\n"
                       "with contextlib.suppress(SystemExit):\n"
                       "    main()\n"
                       "found = {}\n", tmp_path)
    assert "matched:   1 (1 events)" in out
    assert found["heavy"] == []
