"""Events for the dashboard's tests and screenshots: attacks from many places, web
requests, listener probes, spyserver sessions and outbound flows, all over the last day.

Addresses are from the documentation ranges (RFC 5737, RFC 3849); places and networks are
real ones, as data.
"""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

from portolan.event import Event, Payload, make_id

#: (country, country name, city, lat, lon, asn, AS organisation)
PLACES = [
    ("CN", "China", "Beijing", 39.90, 116.40, 4134, "Chinanet"),
    ("CN", "China", "Shanghai", 31.23, 121.47, 4812, "China Telecom Shanghai"),
    ("US", "United States", "Ashburn", 39.04, -77.49, 14618, "Amazon.com"),
    ("US", "United States", "San Francisco", 37.77, -122.42, 14061, "DigitalOcean"),
    ("RU", "Russia", "Moscow", 55.76, 37.62, 12389, "Rostelecom"),
    ("NL", "Netherlands", "Amsterdam", 52.37, 4.90, 49981, "WorldStream"),
    ("DE", "Germany", "Frankfurt", 50.11, 8.68, 24940, "Hetzner Online"),
    ("BR", "Brazil", "São Paulo", -23.55, -46.63, 28573, "Claro"),
    ("IN", "India", "Mumbai", 19.08, 72.88, 9829, "BSNL"),
    ("VN", "Vietnam", "Hanoi", 21.03, 105.85, 45899, "VNPT"),
    ("KR", "South Korea", "Seoul", 37.57, 126.98, 4766, "Korea Telecom"),
    ("SG", "Singapore", "Singapore", 1.35, 103.82, 16509, "Amazon.com"),
    ("NG", "Nigeria", "Lagos", 6.52, 3.38, 37282, "MainOne"),
    ("ZA", "South Africa", "Johannesburg", -26.20, 28.05, 37611, "Afrihost"),
    ("AU", "Australia", "Sydney", -33.87, 151.21, 1221, "Telstra"),
    ("FR", "France", "Paris", 48.86, 2.35, 16276, "OVH"),
    ("IR", "Iran", "Tehran", 35.69, 51.39, 58224, "TCI"),
    ("GB", "United Kingdom", "London", 51.51, -0.13, 2856, "British Telecom"),
]
USERS = ["root", "admin", "ubuntu", "test", "oracle", "postgres", "pi", "user", "git", "ftp"]
AGENTS = ["Mozilla/5.0 zgrab/0.x", "curl/8.5.0", "python-requests/2.31", "Go-http-client/1.1"]
PATHS = ["/", "/.env", "/wp-login.php", "/admin", "/.git/config", "/cgi-bin/luci"]


def address(place: int, host: int) -> str:
    net = ("192.0.2", "198.51.100", "203.0.113")[place % 3]
    return f"{net}.{(place * 13 + host) % 250 + 1}"


def geo(place: int) -> dict[str, Any]:
    c, name, city, lat, lon, asn, org = PLACES[place]
    return {"country": c, "country_name": name, "city": city, "lat": lat, "lon": lon,
            "asn": asn, "as_org": org}


def day_of_events(now: dt.datetime, n: int = 600, seed: int = 1, sensor: str = "edge-1"
                  ) -> list[Event]:
    """``n`` events over the 24 hours before ``now``; the busiest places first."""
    rnd = random.Random(seed)
    weights = [1.0 / (i + 1) for i in range(len(PLACES))]
    out: list[Event] = []
    for i in range(n):
        p = rnd.choices(range(len(PLACES)), weights)[0]
        ts = now - dt.timedelta(seconds=rnd.uniform(30, 86400))
        ip = address(p, rnd.randrange(6))
        kind = rnd.random()
        base: dict[str, Any] = {"id": make_id("dash", seed, i), "ts": ts, "sensor": sensor,
                                "src_ip": ip, "src_port": rnd.randrange(1024, 65535),
                                "dst_ip": "192.0.2.250", "proto": "tcp", **geo(p)}
        if kind < 0.6:
            base.update(source="auth.log", service="ssh", dst_port=22,
                        action="auth_failure" if rnd.random() < 0.9 else "invalid_user",
                        user=rnd.choice(USERS))
        elif kind < 0.62:
            base.update(source="auth.log", service="ssh", dst_port=22, action="auth_success",
                        user="deploy")
        elif kind < 0.85:
            path = rnd.choice(PATHS)
            base.update(source="access.log", service="http", dst_port=80, action="request",
                        attrs={"method": "GET", "path": path, "status": 404,
                               "user_agent": rnd.choice(AGENTS)})
        else:
            port = rnd.choice([23, 445, 3389, 6379, 8080])
            base.update(source=f"listener:{port}", service="tcp", dst_port=port,
                        action="probe", payload=Payload(b"\x16\x03\x01\x00\xa5") if port == 8080
                        else Payload(b"GET / HTTP/1.1\r\n"))
        out.append(Event(**base))
    for i in range(12):  # outbound flows: whom this machine talks to
        p = (i * 5) % len(PLACES)
        out.append(Event(
            id=make_id("dash-out", seed, i), ts=now - dt.timedelta(minutes=10 * i + 3),
            sensor=sensor, source="capture:eth0", service="https", action="flow",
            direction="outbound", proto="tcp", src_ip="192.0.2.250", src_port=50000 + i,
            dst_ip=address(p, 200), dst_port=443, bytes_out=1000 * (i + 1) ** 2,
            bytes_in=300 * (i + 1), packets=10 + i, **geo(p)))
    return out


def sessions(now: dt.datetime, sensor: str = "edge-1") -> list[Event]:
    """Spyserver sessions: two closed, one still open."""
    out = []
    for i, (p, minutes, open_) in enumerate([(5, 50, False), (6, 20, False), (15, 8, True)]):
        sid = f"spy-{i}"
        start = now - dt.timedelta(minutes=minutes)
        common: dict[str, Any] = {
            "sensor": sensor, "source": "spyserver:hf.config", "service": "spyserver",
            "session": sid, "src_ip": address(p, 99), "src_port": 40000 + i,
            "dst_port": 5555, "proto": "tcp",
            "attrs": {"client": "SDR#", "client_version": "1.0.0.1700", "os": "Windows",
                      "instance": "hf"}, **geo(p)}
        out.append(Event(id=make_id("spy", i, 0), ts=start, action="connect", **common))
        if not open_:
            out.append(Event(id=make_id("spy", i, 1), ts=start + dt.timedelta(minutes=7),
                             action="disconnect", duration=420.0, **common))
    return out


#: Attacker text that must show as text, never run.
HOSTILE_USER = '<script>window.__pwned="user"</script>'
HOSTILE_AGENT = '<img src=x onerror="window.__pwned=\'agent\';alert(1)">'
HOSTILE_PAYLOAD = (b'<img src=y onerror="window.__pwned=\'payload\';alert(2)">'
                   b"<script>alert(3)</script>")
HOSTILE_PATH = '/"><svg onload=alert(4)>'


def hostile(now: dt.datetime, sensor: str = "edge-1") -> list[Event]:
    """Events whose user name, payload, user agent and path are markup."""
    ip = "198.51.100.66"
    g = geo(4)
    return [
        Event(id=make_id("xss", 0), ts=now - dt.timedelta(seconds=5), sensor=sensor,
              source="auth.log", service="ssh", action="invalid_user", src_ip=ip,
              dst_port=22, user=HOSTILE_USER, **g),
        Event(id=make_id("xss", 1), ts=now - dt.timedelta(seconds=4), sensor=sensor,
              source="access.log", service="http", action="request", src_ip=ip, dst_port=80,
              attrs={"method": "GET", "path": HOSTILE_PATH, "status": 400,
                     "user_agent": HOSTILE_AGENT}, **g),
        Event(id=make_id("xss", 2), ts=now - dt.timedelta(seconds=3), sensor=sensor,
              source="listener:2323", service="tcp", action="probe", src_ip=ip, dst_port=2323,
              payload=Payload(HOSTILE_PAYLOAD), **g),
    ]
