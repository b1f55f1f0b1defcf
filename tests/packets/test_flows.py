"""The flow table: orientation, closing, time-outs, port reuse and the size bound."""

from __future__ import annotations

import collections
import socket
from types import SimpleNamespace

from portolan.packets.decode import Packet, decode
from portolan.packets.flows import Flow, FlowTable, Timeouts

S = 1_000_000  # one second in µs


class Conn:
    """Builds the packets of one TCP conversation between a client and a server."""

    def __init__(self, build: SimpleNamespace, client: str = "10.0.0.1", cport: int = 40000,
                 server: str = "192.0.2.80", sport: int = 80) -> None:
        self.build = build
        self.c, self.cp, self.s, self.sp = client, cport, server, sport

    def up(self, flags: str, seq: int = 100, payload: bytes = b"") -> Packet:
        return self._pkt(self.c, self.s, self.cp, self.sp, flags, seq, payload)

    def down(self, flags: str, seq: int = 900, payload: bytes = b"") -> Packet:
        return self._pkt(self.s, self.c, self.sp, self.cp, flags, seq, payload)

    def _pkt(self, a: str, b: str, ap: int, bp: int, flags: str, seq: int,
             payload: bytes) -> Packet:
        raw = self.build.ipv4(a, b, 6, self.build.tcp(ap, bp, flags, seq, payload))
        pkt = decode(101, raw, collections.Counter())
        assert pkt is not None
        return pkt


def _feed(table: FlowTable, packets: list[tuple[int, Packet]]) -> list[Flow]:
    for frame, (ts, pkt) in enumerate(packets, 1):
        table.packet(pkt, ts, pkt.ip_len, frame)
    return table.take_ended()


def test_handshake_orients_and_fin_closes_after_linger(build: SimpleNamespace) -> None:
    c = Conn(build)
    table = FlowTable(Timeouts(linger=2))
    ended = _feed(table, [
        (0, c.down("SA")),  # the SYN-ACK seen first (the SYN was missed): still oriented
        (1, c.up("A")),
        (2, c.up("FA")),
        (3, c.down("FA")),
        (4, c.up("A")),  # the last ACK, after both FINs: same flow
    ])
    assert ended == []
    flow = next(iter(table.flows.values()))
    assert socket.inet_ntoa(flow.a) == "10.0.0.1" and flow.b_port == 80
    assert (flow.pkts_ab, flow.pkts_ba) == (3, 2)
    table.sweep(4 * S + 2 * S + 1)
    [done] = table.take_ended()
    assert done is flow and done.end == "fin"
    assert len(table) == 0


def test_rst_closes(build: SimpleNamespace) -> None:
    c = Conn(build)
    table = FlowTable(Timeouts(linger=1))
    _feed(table, [(0, c.up("S")), (S, c.down("R"))])
    table.sweep(3 * S)
    [done] = table.take_ended()
    assert done.end == "rst" and done.packets == 2


def test_port_reuse_after_close_is_a_new_flow(build: SimpleNamespace) -> None:
    c = Conn(build)
    table = FlowTable()
    ended = _feed(table, [
        (0, c.up("S", seq=1)), (1, c.down("SA")), (2, c.up("R", seq=2)),
        (3, c.up("S", seq=1)),  # retransmitted SYN: same sequence number, same flow
        (4, c.up("S", seq=5000)),  # a new connection on the same ports
    ])
    assert [f.packets for f in ended] == [4]
    assert len(table) == 1


def test_idle_timeouts_per_protocol(build: SimpleNamespace) -> None:
    c = Conn(build)
    udp_raw = build.ipv4("10.0.0.1", "10.0.0.2", 17, build.udp(5000, 53, b"x"))
    udp = decode(101, udp_raw, collections.Counter())
    assert udp is not None
    table = FlowTable(Timeouts(tcp_idle=100, idle=10))
    _feed(table, [(0, c.up("S")), (0, udp)])
    table.sweep(11 * S)
    assert [f.end for f in table.take_ended()] == ["idle"]
    assert len(table) == 1
    table.sweep(101 * S)
    assert [f.proto for f in table.take_ended()] == [6]


def test_active_timeout_slices_a_long_flow(build: SimpleNamespace) -> None:
    c = Conn(build)
    table = FlowTable(Timeouts(active=10, tcp_idle=1000))
    packets = [(i * S, c.up("A", seq=100 + i)) for i in range(25)]
    for frame, (ts, pkt) in enumerate(packets, 1):
        table.packet(pkt, ts, 40, frame)
    table.flush()
    slices = table.take_ended()
    assert [f.end for f in slices] == ["active", "active", "end"]
    assert sum(f.packets for f in slices) == 25
    assert sum(f.bytes_ab for f in slices) == 25 * 40
    # every slice keeps the orientation of the first
    assert {(f.a, f.a_port) for f in slices} == {(slices[0].a, slices[0].a_port)}


def test_memory_is_bounded_by_max_flows(build: SimpleNamespace) -> None:
    table = FlowTable(Timeouts(max_flows=100))
    ended = 0
    for i in range(1000):
        pkt = Conn(build, cport=10000 + i).up("S")
        table.packet(pkt, i, 40, i + 1)
        ended += len(table.take_ended())
        assert len(table) <= 100
    table.flush()
    ended += len(table.take_ended())
    assert ended == 1000
    assert table.evicted > 0


def test_retransmitted_data_is_not_new(build: SimpleNamespace) -> None:
    flow = Flow((6, b"", 0, b"", 0), 6, b"a", 1, b"b", 2)
    assert flow.new_data(True, 1000, 100)
    assert not flow.new_data(True, 1000, 100)
    assert flow.new_data(True, 1100, 50)
    assert flow.new_data(False, 0xFFFFFFF0, 0x20)  # wraps around 2^32
    assert flow.new_data(False, 0x10, 5)
    assert not flow.new_data(False, 0xFFFFFFF0, 0x20)
