"""The flow table: packets grouped into bidirectional flows by their five-tuple.

A flow is kept in the orientation of whoever opened it (the *initiator*): the sender of
a TCP SYN, the receiver of a SYN-ACK, else the side on the ephemeral port, else the first
sender. It counts packets and bytes each way, the first and last time, and the union of
TCP flags each way.

A flow ends, and is handed back by :meth:`FlowTable.take_ended`, when:

- ``fin`` / ``rst``: both sides sent FIN, or one sent RST; late packets of the closing
  handshake (the last ACK) still count until ``linger`` seconds have passed, and a new
  SYN with another sequence number (the port reused) ends it at once;
- ``idle``: no packet for the idle time-out (TCP and the others have their own);
- ``active``: it has lasted the active time-out (checked at its next packet); it goes on
  as a new flow record, so a long transfer is reported in slices;
- ``evicted``: the table is full (``max_flows``) and this is the oldest flow;
- ``end``: :meth:`FlowTable.flush` at the end of the input.

Memory is bounded by ``max_flows``, never by the number of packets. Times are integer
microseconds from the packets themselves, so reading a file gives the same flows however
fast it is read; a clock that jumps (merged captures) only delays the idle checks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from portolan.packets.decode import Packet

__all__ = ["Flow", "FlowTable", "Timeouts"]

FIN: Final = 0x01
SYN: Final = 0x02
RST: Final = 0x04
ACK: Final = 0x10
_SWEEP_US: Final = 1_000_000

Key = tuple[int, bytes, int, bytes, int]


@dataclass(frozen=True)
class Timeouts:
    """When flows end without a FIN or RST (seconds)."""

    tcp_idle: float = 300.0
    """A TCP flow with no packet for this long has ended."""
    idle: float = 60.0
    """A UDP, ICMP or other flow with no packet for this long has ended."""
    active: float = 1800.0
    """A flow is reported (and goes on as a new record) after lasting this long."""
    linger: float = 5.0
    """After FIN from both sides or a RST, late packets still count for this long."""
    max_flows: int = 100_000
    """Open flows at most; beyond, the oldest is ended (``evicted``)."""


class Flow:
    """One bidirectional flow; ``ab`` is initiator to responder, ``ba`` the way back."""

    __slots__ = (
        "a",
        "a_port",
        "app",
        "b",
        "b_port",
        "bytes_ab",
        "bytes_ba",
        "closed_us",
        "end",
        "fin_ab",
        "fin_ba",
        "first_frame",
        "first_type",
        "first_us",
        "flags_ab",
        "flags_ba",
        "id",
        "isn",
        "key",
        "last_us",
        "nseq_ab",
        "nseq_ba",
        "pkts_ab",
        "pkts_ba",
        "proto",
    )

    def __init__(self, key: Key, proto: int, a: bytes, a_port: int, b: bytes,
                 b_port: int) -> None:
        self.key = key
        self.proto = proto
        self.a, self.a_port, self.b, self.b_port = a, a_port, b, b_port
        self.id = ""
        self.first_frame = 0
        self.first_us = -1
        self.last_us = 0
        self.pkts_ab = self.pkts_ba = self.bytes_ab = self.bytes_ba = 0
        self.flags_ab = self.flags_ba = 0
        self.fin_ab = self.fin_ba = False
        self.closed_us = 0
        self.isn = -1
        self.nseq_ab = self.nseq_ba = -1
        self.end = ""
        self.first_type = -1
        self.app: Any = None
        """Per-flow state of the application recognisers (opaque here)."""

    @property
    def packets(self) -> int:
        return self.pkts_ab + self.pkts_ba

    def successor(self) -> Flow:
        """The record that goes on after an active time-out: same ends, counts at zero."""
        nxt = Flow(self.key, self.proto, self.a, self.a_port, self.b, self.b_port)
        nxt.fin_ab, nxt.fin_ba, nxt.closed_us = self.fin_ab, self.fin_ba, self.closed_us
        nxt.isn, nxt.nseq_ab, nxt.nseq_ba = self.isn, self.nseq_ab, self.nseq_ba
        nxt.last_us = self.last_us
        nxt.app = self.app
        return nxt

    def new_data(self, forward: bool, seq: int, size: int) -> bool:
        """Whether a TCP segment brings bytes not seen before in its direction (so a
        retransmitted request is recognised once)."""
        end = (seq + size) & 0xFFFFFFFF
        last = self.nseq_ab if forward else self.nseq_ba
        if last >= 0 and not 0 < ((end - last) & 0xFFFFFFFF) < 0x80000000:
            return False
        if forward:
            self.nseq_ab = end
        else:
            self.nseq_ba = end
        return True


def _initiator_is_receiver(pkt: Packet) -> bool:
    """For the first packet of a flow: did the other side open it?"""
    if pkt.proto == 6:
        if pkt.flags & SYN:
            return bool(pkt.flags & ACK)
    elif pkt.proto not in (17, 132):
        return False
    # No handshake seen: the side on the well-known (lower) port is the server.
    return pkt.sport < 1024 <= pkt.dport or (pkt.sport < pkt.dport and pkt.sport in _SERVICES)


#: Ports above 1024 that are servers' (so a flow caught mid-way is oriented right).
_SERVICES: Final = frozenset({1080, 1194, 1433, 1521, 1883, 1900, 2049, 3128, 3306, 3389,
                              5060, 5222, 5353, 5355, 5432, 5900, 6379, 6443, 8000, 8008,
                              8080, 8443, 8888, 9000, 9090, 9200, 11211, 27017})


class FlowTable:
    """Open flows by five-tuple; see the module docstring."""

    def __init__(self, timeouts: Timeouts | None = None) -> None:
        t = timeouts or Timeouts()
        self.timeouts = t
        self.flows: dict[Key, Flow] = {}
        self.ended: list[Flow] = []
        """Flows that ended and were not taken yet (see :meth:`take_ended`)."""
        self._tcp_idle = int(t.tcp_idle * 1e6)
        self._idle = int(t.idle * 1e6)
        self._active = int(t.active * 1e6)
        self._linger = int(t.linger * 1e6)
        self._next_sweep = -1
        self._max_flows = t.max_flows
        self.evicted = 0

    def __len__(self) -> int:
        return len(self.flows)

    def packet(self, pkt: Packet, ts: int, size: int, frame: int) -> tuple[Flow, bool]:
        """Count one packet of ``size`` bytes; returns its flow and whether it went from
        initiator to responder. A flow new with this packet has ``first_frame == frame``."""
        if ts >= self._next_sweep:
            self.sweep(ts)
        elif ts < self._next_sweep - 2 * _SWEEP_US:
            # The clock went back (merged captures): flows from "later" cannot be idle
            # yet, so there is nothing to sweep; start counting again from here.
            self._next_sweep = ts + _SWEEP_US
        src, dst, proto, sport, dport, flags, seq, _, _ = pkt
        if proto == 1 or proto == 58:
            sport = dport = 0
        flows = self.flows
        key = (proto, src, sport, dst, dport)
        flow = flows.pop(key, None)
        forward = True
        if flow is None:
            flow = flows.pop((proto, dst, dport, src, sport), None)
            forward = False
        if flow is not None:
            # Back at the end of the table: it is kept in order of last activity, so a
            # sweep looks only at the flows that have been quiet for a while.
            flows[flow.key] = flow
            if proto == 6 and flags & SYN and not flags & ACK and flow.closed_us \
                    and seq != flow.isn:
                self._end(flow, "rst" if flow.end == "rst" else "fin")
                flow = None
            elif flow.first_us >= 0 and ts - flow.first_us > self._active:
                self._end(flow, "active")
                flow = flows[flow.key]
        if flow is None:
            if _initiator_is_receiver(pkt):
                key = (proto, dst, dport, src, sport)
                flow = Flow(key, proto, dst, dport, src, sport)
                forward = False
            else:
                flow = Flow(key, proto, src, sport, dst, dport)
                forward = True
            flows[key] = flow
            if len(flows) > self._max_flows:
                self._evict()
        if flow.first_us < 0:
            flow.first_us = ts
            flow.first_frame = frame
            if proto == 1 or proto == 58:
                flow.first_type = (pkt.sport << 8) | pkt.dport
        if ts > flow.last_us:
            flow.last_us = ts
        if forward:
            flow.pkts_ab += 1
            flow.bytes_ab += size
        else:
            flow.pkts_ba += 1
            flow.bytes_ba += size
        if proto == 6:
            if forward:
                flow.flags_ab |= flags
            else:
                flow.flags_ba |= flags
            if flags & (SYN | FIN | RST):
                self._tcp_state(flow, forward, flags, seq, ts)
        return flow, forward

    def _tcp_state(self, flow: Flow, forward: bool, flags: int, seq: int, ts: int) -> None:
        if flags & SYN:
            if forward and not flags & ACK and flow.isn < 0:
                flow.isn = seq
            # the SYN takes one sequence number: data starts after it
            end = (seq + 1) & 0xFFFFFFFF
            if forward:
                flow.nseq_ab = end
            else:
                flow.nseq_ba = end
        if flags & RST:
            if not flow.closed_us:
                flow.closed_us = ts
            flow.end = "rst"
        elif flags & FIN:
            if forward:
                flow.fin_ab = True
            else:
                flow.fin_ba = True
            if flow.fin_ab and flow.fin_ba and not flow.closed_us:
                flow.closed_us = ts
                flow.end = "fin"

    def sweep(self, now: int) -> None:
        """End the flows that closed or went idle, as of ``now`` (µs). The table is in
        order of last activity: the sweep stops at the first flow active within the
        shortest wait (``linger``), so its cost follows the quiet flows, not all of them.
        A flow that lasts too long is ended (``active``) by its next packet."""
        self._next_sweep = now + _SWEEP_US
        linger, tcp_idle, idle = self._linger, self._tcp_idle, self._idle
        done: list[tuple[Flow, str]] = []
        for flow in self.flows.values():
            quiet = now - flow.last_us
            if quiet <= linger:
                break
            if flow.closed_us:
                if now - flow.closed_us > linger:
                    done.append((flow, flow.end or "fin"))
            elif quiet > (tcp_idle if flow.proto == 6 else idle):
                done.append((flow, "idle"))
        for flow, why in done:
            self._end(flow, why)

    def _end(self, flow: Flow, why: str) -> None:
        del self.flows[flow.key]
        if why == "active":
            self.flows[flow.key] = flow.successor()
        flow.end = why
        if flow.first_us >= 0:
            self.ended.append(flow)

    def _evict(self) -> None:
        """Make room: first the flows that are done anyway, then the oldest."""
        self.sweep(max((f.last_us for f in self.flows.values()), default=0))
        # Evict a slice at once, so a full table does not sweep on every new flow.
        target = self.timeouts.max_flows - max(1, self.timeouts.max_flows // 100)
        while len(self.flows) > target:
            oldest = next(iter(self.flows.values()))
            self._end(oldest, "evicted")
            self.evicted += 1

    def flush(self) -> None:
        """End every open flow (end of input)."""
        for flow in list(self.flows.values()):
            self._end(flow, flow.end if flow.closed_us else "end")

    def take_ended(self) -> list[Flow]:
        """The flows that ended since the last call, in the order they ended."""
        ended, self.ended = self.ended, []
        return ended
