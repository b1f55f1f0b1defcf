"""Each kind of rule, the shared filters, and what the lines say."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest

from portolan.alerts.rules import Rule, build
from portolan.alerts.settings import RuleSettings
from portolan.alerts.state import State
from portolan.enrich.privacy import Privacy

SECRET = b"k" * 32


def rule(tmp_path: Path, mode: str = "full", **settings: Any) -> Rule:
    state = State(tmp_path / "alerts.db")
    return build("r", msgspec.convert(settings, RuleSettings), Privacy(mode, SECRET),  # type: ignore[arg-type]
                 1000, lambda name: state.seen(name, 1000))


def hits(r: Rule, events: list[Any]) -> list[str]:
    return [h.line for e in events if (h := r.check(e)) is not None]


def test_match_equality_lists_regex_and_cidr(tmp_path: Path, make_event: Any) -> None:
    r = rule(tmp_path, match={"service": "ssh", "action": ["auth_success", "invalid_user"],
                              "asn": 64500},
             regex={"user": "^(root|adm)"}, cidr={"src_ip": ["198.51.100.0/24", "2001:db8::/32"]},
             exclude={"attrs.port_kind": "internal"})
    good = dict(action="auth_success", user="root", asn=64500, src_ip="198.51.100.9")
    assert r.check(make_event(**good)) is not None
    assert r.check(make_event(**{**good, "src_ip": "2001:db8::5"})) is not None
    assert r.check(make_event(**{**good, "action": "invalid_user", "user": "admin"})) is not None
    for change in ({"action": "auth_failure"}, {"asn": 64501}, {"asn": None},
                   {"user": "bob"}, {"user": None}, {"src_ip": "198.51.101.9"},
                   {"src_ip": "not an ip"}, {"service": "http"},
                   {"attrs": {"port_kind": "internal"}}):
        assert r.check(make_event(**{**good, **change})) is None, change


def test_exclude_cidr_and_regex(tmp_path: Path, make_event: Any) -> None:
    r = rule(tmp_path, exclude_cidr={"src_ip": "10.0.0.0/8"},
             exclude_regex={"attrs.path": "^/health"})
    assert r.check(make_event(src_ip="10.1.2.3")) is None
    assert r.check(make_event(src_ip="11.1.2.3", attrs={"path": "/healthz"})) is None
    hit = r.check(make_event(src_ip="11.1.2.3", attrs={"path": "/admin"}, user="x"))
    assert hit is not None
    assert hit.line == "r: ssh auth_failure from 11.1.2.3 (unknown), user x"


def test_first_seen_country_per_service_survives_a_restart(tmp_path: Path,
                                                          make_event: Any) -> None:
    from portolan.alerts.sink import AlertSink  # noqa: F401 - the state is the sink's file

    state = State(tmp_path / "alerts.db")
    settings = msgspec.convert({"kind": "first_seen"}, RuleSettings)
    privacy = Privacy("full", SECRET)
    r = build("new-country", settings, privacy, 100, lambda n: state.seen(n, 100))
    events = [make_event(1, country="FR", country_name="France", city="Lyon"),
              make_event(2, country="FR"),
              make_event(3, country="FR", service="http"),
              make_event(4, country="DE", country_name="Germany"),
              make_event(5, country=None)]
    lines = hits(r, events)
    assert lines == [
        "First country FR France on ssh: 203.0.113.7 (Lyon, France)",
        "First country FR on http: 203.0.113.7 (FR)",
        "First country DE Germany on ssh: 203.0.113.7 (Germany)",
    ]
    state.save([r.seen])  # type: ignore[attr-defined]
    state.close()
    again = State(tmp_path / "alerts.db")
    r2 = build("new-country", settings, privacy, 100, lambda n: again.seen(n, 100))
    assert hits(r2, [make_event(6, country="FR"), make_event(7, country="DE")]) == []
    assert len(hits(r2, [make_event(8, country="IT")])) == 1


def test_first_seen_asn_and_address_with_privacy(tmp_path: Path, make_event: Any) -> None:
    r = rule(tmp_path, "hash", kind="first_seen", field="src_ip", per_service=False)
    hit = r.check(make_event(src_ip="203.0.113.50"))
    assert hit is not None
    hashed = Privacy("hash", SECRET).hash_ip("203.0.113.50")
    assert "203.0.113.50" not in hit.line and hashed in hit.line and hit.label == hashed
    assert r.check(make_event(src_ip="203.0.113.50", service="http")) is None
    a = rule(tmp_path, kind="first_seen", field="asn")
    hit = a.check(make_event(asn=64500, as_org="Example <Net>"))
    assert hit is not None and "AS64500 Example ＜Net＞" in hit.line


def test_login_after_failures(tmp_path: Path, make_event: Any) -> None:
    r = rule(tmp_path, kind="login_after_failures", failures=3, window="10m")
    fail = [make_event(i, action="auth_failure") for i in range(3)]
    other = make_event(4, action="auth_failure", src_ip="198.51.100.1")
    ok = make_event(10, action="auth_success", user="root", country="NL",
                    country_name="Netherlands")
    assert hits(r, [*fail, other, ok]) == [
        "Login as root on ssh from 203.0.113.7 (Netherlands) after 3 failures"]
    # the success reset the count; and failures older than the window do not count
    assert hits(r, [make_event(20, action="auth_success", user="root")]) == []
    old = [make_event(i, action="invalid_user") for i in range(100, 103)]
    assert hits(r, [*old, make_event(103 + 601, action="auth_success")]) == []
    # two failures are not enough
    assert hits(r, [make_event(2000), make_event(2001),
                    make_event(2002, action="auth_success")]) == []


def spy(n: float, action: str, port: int = 5678, **kw: Any) -> dict[str, Any]:
    return dict(service="spyserver", action=action, src_ip="100.200.30.40", src_port=port,
                attrs={"instance": "hf.config", "client": "SDR# 1700.0.0.1 on Windows",
                       "software": "SDR#", "os": "Windows"},
                city="Chicago", country="US", country_name="United States", **kw)


def test_spyserver_open_and_close_like_the_old_monitor(tmp_path: Path,
                                                      make_event: Any) -> None:
    r = rule(tmp_path, kind="spyserver")
    lines = hits(r, [make_event(0, **spy(0, "connect")),
                     make_event(3725, **spy(3725, "disconnect")),
                     make_event(4000, **spy(4000, "disconnect", port=9, duration=90061.0)),
                     make_event(4001, service="spyserver", action="rejected")])
    assert lines == [
        "Open 100.200.30.40#hf.config Chicago, United States running SDR# 1700.0.0.1 on Windows",
        "Close 100.200.30.40#hf.config Chicago, United States @01:02:05",
        "Close 100.200.30.40#hf.config Chicago, United States @1d 01:01:01",
    ]


def test_spyserver_hostile_client_name(tmp_path: Path, make_event: Any) -> None:
    r = rule(tmp_path, kind="spyserver", actions=["connect"])
    fields = spy(0, "connect")
    fields["attrs"]["client"] = "x\nClient disconnected: 1.2.3.4:5 <!channel> @here " + "A" * 500
    hit = r.check(make_event(**fields))
    assert hit is not None
    assert "\n" not in hit.line and "<!channel>" not in hit.line and "@here" not in hit.line
    assert len(hit.line) < 200
    assert r.check(make_event(**spy(5, "disconnect"))) is None  # only connects asked for


def test_custom_message(tmp_path: Path, make_event: Any) -> None:
    r = rule(tmp_path, "truncate", kind="spyserver",
             message="{instance}: {client} from {src_ip} in {city} ({country}), {asn}")
    hit = r.check(make_event(**spy(0, "connect"), asn=7922))
    assert hit is not None
    assert hit.line == "hf.config: SDR# 1700.0.0.1 on Windows from 100.200.30.0/24 in Chicago " \
                       "(US), AS7922"


def test_rate_per_address_and_as(tmp_path: Path, make_event: Any) -> None:
    r = rule(tmp_path, kind="rate", threshold=5, window="60s")
    slow = [make_event(i * 20) for i in range(10)]  # 3 per minute at most
    assert hits(r, slow) == []
    fast = [make_event(1000 + i) for i in range(11)]  # the 6th hits, then counting restarts
    lines = hits(r, fast)
    assert lines == ["6 events from src_ip 203.0.113.7 within 00:01:00 (last: ssh "
                     "auth_failure from 203.0.113.7, unknown)"]
    per_as = rule(tmp_path, kind="rate", field="asn", threshold=2, window="1m")
    spread = [make_event(i, src_ip=f"198.51.100.{i}", asn=64500) for i in range(3)]
    assert len(hits(per_as, spread)) == 1


@pytest.mark.parametrize("kind", ["first_seen", "rate", "login_after_failures", "spyserver"])
def test_filters_apply_to_every_kind(tmp_path: Path, make_event: Any, kind: str) -> None:
    r = rule(tmp_path, kind=kind, exclude_cidr={"src_ip": "0.0.0.0/0"}, threshold=1,
             failures=1)
    events = [make_event(i, **spy(i, "connect")) for i in range(3)]
    events += [make_event(5, action="auth_failure"), make_event(6, action="auth_success")]
    assert hits(r, events) == []
