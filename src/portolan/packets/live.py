"""Live capture on a Linux interface: an ``AF_PACKET`` socket with a BPF filter.

The filter is compiled by libpcap (through ``pcapy-ng``) for the interface's link type and
attached to the socket with ``SO_ATTACH_FILTER`` before the socket is bound, so no packet
gets past it. Timestamps come from the kernel (``SO_TIMESTAMPNS``). On a loopback
interface every packet is seen twice (leaving and arriving); the outgoing copy is
dropped, as tcpdump does.

Opening the socket needs root or the ``CAP_NET_RAW`` capability; without it,
:class:`~portolan.packets.capfile.CaptureError` says which is missing and how to grant it.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import socket
import struct
import time
from pathlib import Path
from typing import Final

from portolan.packets.capfile import CaptureError, Frame

__all__ = ["DEFAULT_FILTER", "LiveCapture", "default_interface", "interface_addresses"]

#: What is captured when no filter is given: IP and IPv6 (VLAN-tagged too).
DEFAULT_FILTER: Final = "ip or ip6 or (vlan and (ip or ip6))"

ETH_P_ALL: Final = 0x0003
SO_ATTACH_FILTER: Final = 26
SO_TIMESTAMPNS: Final = 35
PACKET_OUTGOING: Final = 4
IFF_UP: Final = 0x1
IFF_LOOPBACK: Final = 0x8
SIOCGIFADDR: Final = 0x8915
CAP_NET_RAW: Final = 13
#: Largest frame read (loopback's MTU is 64 KiB; offloaded segments can be as large).
RECV_MAX: Final = 262144
_TIMESPEC: Final = struct.Struct("@ll")
SYS_NET: Final = Path("/sys/class/net")

#: ARPHRD_* hardware types that carry Ethernet frames, and those that carry bare IP.
_ETHERNET_TYPES: Final = frozenset({1, 772})
_RAW_IP_TYPES: Final = frozenset({65534, 768, 776, 778, 823})


def _flags(name: str, root: Path = SYS_NET) -> int:
    try:
        return int((root / name / "flags").read_text().strip(), 16)
    except (OSError, ValueError):
        return 0


def default_interface(root: Path = SYS_NET) -> str | None:
    """The first interface (by index) that is up and is not a loopback, or None."""
    names = []
    for name in os.listdir(root) if root.is_dir() else []:
        try:
            index = int((root / name / "ifindex").read_text())
        except (OSError, ValueError):
            continue
        flags = _flags(name, root)
        if flags & IFF_UP and not flags & IFF_LOOPBACK:
            names.append((index, name))
    return min(names)[1] if names else None


def interface_addresses(name: str) -> list[str]:
    """The interface's IPv4 address and IPv6 addresses, as text (for direction)."""
    found: list[str] = []
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            req = struct.pack("256s", name.encode()[:15])
            res = fcntl.ioctl(s.fileno(), SIOCGIFADDR, req)
            found.append(socket.inet_ntoa(res[20:24]))
    except OSError:
        pass
    try:
        for line in Path("/proc/net/if_inet6").read_text().splitlines():
            parts = line.split()
            if len(parts) >= 6 and parts[5] == name:
                found.append(socket.inet_ntop(socket.AF_INET6, bytes.fromhex(parts[0])))
    except (OSError, ValueError):
        pass
    return found


def _has_cap_net_raw() -> bool:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("CapEff:"):
                return bool(int(line.split()[1], 16) >> CAP_NET_RAW & 1)
    except (OSError, ValueError):
        pass
    return os.geteuid() == 0


def permission_message(interface: str) -> str:
    """Why opening a capture failed for lack of privilege, and how to fix it."""
    grant = ("setcap cap_net_raw+ep on the Python interpreter, or "
             "AmbientCapabilities=CAP_NET_RAW in the systemd unit")
    if os.geteuid() == 0:
        return (f"live capture on {interface} needs the CAP_NET_RAW capability: this process "
                f"runs as root but without it (dropped by a container or a systemd unit?); "
                f"give it CAP_NET_RAW ({grant})")
    return (f"live capture on {interface} needs root or the CAP_NET_RAW capability: this "
            f"process runs as user id {os.geteuid()} without CAP_NET_RAW; run it as root, "
            f"or grant the capability ({grant})")


def compile_filter(expression: str, link: int, snaplen: int = 65535) -> bytes:
    """A BPF program (``struct sock_filter`` array) for ``expression``, by libpcap."""
    import pcapy

    try:
        program = pcapy.compile(link, snaplen, expression, 1, 0)
    except Exception as exc:  # pcapy.PcapError / BPFError: the expression is wrong
        raise CaptureError(f"filter {expression!r}: {exc}") from None
    return b"".join(struct.pack("HBBI", *ins) for ins in program.get_bpf())


class LiveCapture:
    """Frames from one interface as they arrive; see the module docstring."""

    def __init__(self, interface: str, expression: str | None = DEFAULT_FILTER) -> None:
        self.interface = interface
        self.expression = expression or None
        self.number = 0
        self.dropped_outgoing = 0
        try:
            hatype = int((SYS_NET / interface / "type").read_text())
        except (OSError, ValueError):
            raise CaptureError(
                f"no network interface {interface!r}; there are: "
                + ", ".join(sorted(os.listdir(SYS_NET)) if SYS_NET.is_dir() else [])
            ) from None
        self.loopback = bool(_flags(interface) & IFF_LOOPBACK)
        if hatype in _ETHERNET_TYPES:
            kind, self.link = socket.SOCK_RAW, 1
        elif hatype in _RAW_IP_TYPES:
            kind, self.link = socket.SOCK_RAW, 101
        else:  # other hardware: the kernel strips the link header
            kind, self.link = socket.SOCK_DGRAM, 101
        try:
            # Protocol 0: nothing is received until bind(), after the filter is attached.
            sock = socket.socket(socket.AF_PACKET, kind, 0)
        except PermissionError:
            raise CaptureError(permission_message(interface)) from None
        try:
            if self.expression:
                program = compile_filter(self.expression, self.link)
                buf = ctypes.create_string_buffer(program)
                fprog = struct.pack("HL", len(program) // 8, ctypes.addressof(buf))
                sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
            except OSError:
                pass
            sock.bind((interface, ETH_P_ALL))
        except OSError as exc:
            sock.close()
            if exc.errno == errno.EPERM:
                raise CaptureError(permission_message(interface)) from None
            raise CaptureError(f"cannot capture on {interface}: {exc.strerror}") from None
        except BaseException:
            sock.close()
            raise
        self.sock = sock
        self._cmsg = socket.CMSG_SPACE(_TIMESPEC.size)

    def read(self, *, max_frames: int = 5000, timeout: float = 0.5) -> list[Frame]:
        """Frames (number, ts_us, link, size, data) as they arrive, until ``max_frames``
        were read or ``timeout`` seconds passed."""
        sock = self.sock
        deadline = time.monotonic() + timeout
        frames: list[Frame] = []
        link = self.link
        loopback = self.loopback
        while len(frames) < max_frames:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            sock.settimeout(left)
            try:
                data, anc, _, addr = sock.recvmsg(RECV_MAX, self._cmsg)
            except TimeoutError:
                break
            except InterruptedError:
                continue
            if loopback and addr[2] == PACKET_OUTGOING:
                self.dropped_outgoing += 1
                continue
            ts = 0
            for level, kind, value in anc:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                    sec, nsec = _TIMESPEC.unpack_from(value)
                    ts = sec * 1_000_000 + nsec // 1000
            if not ts:
                ts = time.time_ns() // 1000
            self.number += 1
            frames.append((self.number, ts, link, len(data), data))
        return frames

    def stats(self) -> tuple[int, int]:
        """(packets received, packets dropped by the kernel) since the last call."""
        PACKET_STATISTICS = 6
        raw = self.sock.getsockopt(263, PACKET_STATISTICS, 8)  # SOL_PACKET
        received, drops = struct.unpack("II", raw)
        return received, drops

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> LiveCapture:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def can_capture() -> bool:
    """Whether this process may open packet sockets (root or CAP_NET_RAW)."""
    return _has_cap_net_raw()
