"""``/api/v1/asn-traffic`` reads the capture sensor's per-AS totals when that part is
installed, and says clearly when it is not."""

from __future__ import annotations

import importlib.util

from .conftest import Running, ev

INSTALLED = importlib.util.find_spec("portolan.sinks.asn_traffic") is not None


def test_asn_traffic(server: Running) -> None:
    if not INSTALLED:
        r = server.get("/api/v1/asn-traffic")
        assert r.status_code == 404 and "not recorded" in r.json()["error"]
        return
    flows = [ev(i, action="flow", direction="outbound", src_ip="192.168.1.2",
                dst_ip=f"198.51.100.{i % 2}", asn=64500 + i % 2, as_org=f"AS {i % 2}",
                network="198.51.100.0/24", bytes_in=100 * i, bytes_out=10, packets=2)
             for i in range(10)]
    server.runtime.store().write(flows)
    rows = server.get("/api/v1/asn-traffic", params={"since": "2026-11-23"}).json()["rows"]
    expected = {64500: sum(100 * i + 10 for i in range(0, 10, 2)),
                64501: sum(100 * i + 10 for i in range(1, 10, 2))}
    assert {r["asn"]: r["bytes"] for r in rows} == expected
    assert rows[0]["asn"] == 64501 and rows[0]["flows"] == 5
    r = server.get("/api/v1/asn-traffic", params={"by": "planet"})
    assert r.status_code == 400 and r.json()["error"].startswith("by:")
