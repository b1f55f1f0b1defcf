"""The listener sensor: accept every TCP connection and UDP datagram on a set of ports and
say who it was and what it sent.

For each TCP connection it reports a ``connect`` event at once (also for port scans and
clients that wait for a banner), the first payload as one ``payload`` event with what was
recognised in it (TLS ClientHello, HTTP request, SSH banner and HASSH, else its first
bytes), and a ``disconnect`` event with duration and bytes; one session id ties them.
UDP gives one ``datagram`` event per datagram. Behind an iptables/nftables REDIRECT of
many ports to one, the destination reported is the original one (``SO_ORIGINAL_DST``),
and when that is unavailable the event says so.

Sockets are bound when the source is made, before anything runs, so that a process
started as root can then drop to ``user`` with every port already open. The connections
themselves are handled in :mod:`portolan.sources.listener_conn`; what a payload is, in
:mod:`portolan.sources.listener_recognise`.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import logging
import os
import resource
import socket
import time
from collections.abc import Callable
from typing import Any, Final

import msgspec

from portolan.config import ConfigError
from portolan.sources.base import SOURCES, Emitter, SourceContext, SourceOptions, SourceSpec
from portolan.sources.listener_conn import Hub, Limits, Port, TcpConnection, UdpPort

log = logging.getLogger(__name__)

#: Most sockets one listener opens (ports times addresses). Beyond this, redirect the
#: ports to one with iptables/nftables instead.
MAX_SOCKETS: Final = 4096
#: File descriptors kept free for everything but connections (the store, log files, the
#: pipeline's threads).
FD_RESERVE: Final = 64
#: How long events are gathered before they are handed to the pipeline, in seconds.
GATHER_FOR: Final = 0.01
#: How often time-outs are checked, in seconds.
SWEEP_EVERY: Final = 0.25
#: How often the counts of refused connections are logged, at most, in seconds.
REPORT_EVERY: Final = 60.0

DEFAULT_SSH_BANNER: Final = "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3"
DEFAULT_HTTP_BODY: Final = "<html><body><h1>It works!</h1></body></html>"

PortList = list[int | str]
#: Where a listener listens unless told: every IPv4 and every IPv6 address. A listener is
#: meant to be reached from outside; it never serves data, only records.
ALL_ADDRESSES: Final = ("0.0.0.0", "::")  # noqa: S104


def parse_ports(values: PortList, key: str) -> list[int]:
    """Port numbers from ``[22, "8000-8100"]``; raises ValueError naming ``key``."""
    out: list[int] = []
    for value in values:
        text = str(value).strip()
        low, sep, high = text.partition("-")
        try:
            first = int(low)
            last = int(high) if sep else first
        except ValueError:
            raise ValueError(
                f"{key}: {value!r} is not a port or a range (allowed: 2222, \"8000-8100\")"
            ) from None
        if not (0 <= first <= last <= 65535):
            raise ValueError(f"{key}: {value!r}: ports are 0 to 65535, low-high")
        out.extend(range(first, last + 1))
    return list(dict.fromkeys(out))


class ListenerOptions(SourceOptions):
    """A catch-all TCP/UDP listener (``type = "listener"``)."""

    ports: PortList = []
    """TCP ports to listen on: numbers and ranges, ``[2222, "8000-8100"]``."""
    udp_ports: PortList = []
    """UDP ports to listen on: one event per datagram received."""
    bind: list[str] = msgspec.field(default_factory=lambda: list(ALL_ADDRESSES))
    """Addresses to listen on (IPv4 and IPv6; ``::`` is IPv6 only, beside ``0.0.0.0``)."""
    reply_ssh: PortList = []
    """Ports that answer with an SSH banner (so clients send their KEXINIT: HASSH)."""
    ssh_banner: str = DEFAULT_SSH_BANNER
    """The banner sent on ``reply_ssh`` ports."""
    reply_http: PortList = []
    """Ports that answer an HTTP request with a small page, then close."""
    http_server: str = "nginx"
    """``Server`` header of that answer."""
    http_body: str = DEFAULT_HTTP_BODY
    """Body of that answer (HTML)."""
    max_payload: int = 4096
    """Most bytes of a first payload kept, per connection (up to 65536)."""
    read_timeout: float = 10.0
    """Seconds to wait for the first payload; a silent connection is closed after this."""
    payload_gap: float = 0.5
    """A pause this long (seconds) ends a first payload that is not a recognised message."""
    idle_timeout: float = 60.0
    """Seconds without data after the first payload before the connection is closed."""
    max_duration: float = 600.0
    """Longest a connection is kept open, in seconds."""
    max_connections: int = 10000
    """Connections open at once; at the cap the oldest is closed to make room."""
    max_per_source: int = 100
    """Connections open at once from one address; more are logged, then closed (0: no cap)."""
    accept_rate: float = 1000.0
    """New TCP connections handled per second (bursts as large); above it they are closed
    unlogged and counted (0: no limit)."""
    udp_rate: float = 1000.0
    """UDP datagrams reported per second; above it they are dropped and counted (0: no limit)."""
    backlog: int = 4096
    """Length of each socket's queue of connections not yet accepted."""
    original_dst: bool = True
    """Ask conntrack for the destination before a REDIRECT (``SO_ORIGINAL_DST``)."""
    user: str = ""
    """When started as root: the user to switch to once every port is open (e.g. ``nobody``).
    The data directory must then be writable by that user."""
    skip_unavailable: bool = False
    """Skip (with a warning) a port that cannot be opened instead of stopping start-up."""

    def __post_init__(self) -> None:
        self.ports_list()
        if not 1 <= self.max_payload <= 65536:
            raise ValueError("max_payload: must be 1 to 65536")
        for key in ("read_timeout", "payload_gap", "idle_timeout", "max_duration"):
            if getattr(self, key) <= 0:
                raise ValueError(f"{key}: must be more than 0 seconds")
        for key in ("max_connections", "max_per_source", "accept_rate", "udp_rate"):
            if getattr(self, key) < 0:
                raise ValueError(f"{key}: must be 0 or more")
        if self.ssh_banner and not self.ssh_banner.startswith("SSH-"):
            raise ValueError("ssh_banner: must start with SSH- (e.g. SSH-2.0-OpenSSH_9.2p1)")

    def ports_list(self) -> tuple[list[int], list[int], set[int], set[int]]:
        """TCP ports, UDP ports, SSH-reply ports, HTTP-reply ports."""
        return (
            parse_ports(self.ports, "ports"),
            parse_ports(self.udp_ports, "udp_ports"),
            set(parse_ports(self.reply_ssh, "reply_ssh")),
            set(parse_ports(self.reply_http, "reply_http")),
        )

    def limits(self) -> Limits:
        return Limits(
            max_payload=self.max_payload,
            read_timeout=self.read_timeout,
            payload_gap=self.payload_gap,
            idle_timeout=self.idle_timeout,
            max_duration=self.max_duration,
            max_connections=self.max_connections,
            max_per_source=self.max_per_source,
            accept_rate=self.accept_rate,
            udp_rate=self.udp_rate,
            original_dst=self.original_dst,
        )

    def http_reply(self) -> bytes:
        body = self.http_body.encode()
        head = (
            "HTTP/1.1 200 OK\r\n"
            f"Server: {self.http_server}\r\n"
            "Content-Type: text/html\r\n"
            f"Content-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n"
        )
        return head.encode() + body


def _bind(proto: int, host: str, port: int, backlog: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((host, port))
        if proto == socket.SOCK_STREAM:
            sock.listen(backlog)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def _why(exc: OSError, port: int) -> str:
    text = exc.strerror or str(exc)
    if exc.errno == errno.EACCES and port < 1024:
        text += " (ports below 1024 need root, or CAP_NET_BIND_SERVICE)"
    return text


class ListenerSource:
    """The listener as a source: its sockets are open from construction on."""

    def __init__(self, options: ListenerOptions, ctx: SourceContext) -> None:
        self.options = options
        self.label = options.name or "listener"
        self.name = self.label
        self.ctx = ctx
        self.hub = Hub(ctx.sensor, ctx.now, options.limits(), ctx.counters)
        self.sockets: list[tuple[socket.socket, Port, int]] = []
        try:
            tcp, udp, reply_ssh, reply_http = options.ports_list()
        except ValueError as exc:  # options built in code rather than from a config
            raise ConfigError(f"listener {self.name}: {exc}") from None
        if not tcp and not udp:
            raise ConfigError(f"listener {self.name}: no ports; set ports = [2222, \"8000-8100\"]"
                              " and/or udp_ports")
        wanted = (len(tcp) + len(udp)) * len(options.bind)
        if wanted > MAX_SOCKETS:
            raise ConfigError(
                f"listener {self.name}: {wanted} sockets asked for, at most {MAX_SOCKETS}; "
                "to catch every port, redirect them to one with iptables/nftables "
                "(see docs/listener.md)"
            )
        banner = (options.ssh_banner.rstrip("\r\n") + "\r\n").encode()
        http = options.http_reply()
        try:
            for host in options.bind:
                for number in tcp:
                    self._open(socket.SOCK_STREAM, host, number,
                               banner if number in reply_ssh else None,
                               http if number in reply_http else None)
                for number in udp:
                    self._open(socket.SOCK_DGRAM, host, number, None, None)
        except BaseException:
            self.close()
            raise
        if not self.sockets:
            raise ConfigError(f"listener {self.name}: could not open any port")
        self.name = f"{self.label} ({self.summary()})"

    def summary(self) -> str:
        """What is listened on, briefly: ``tcp 127.0.0.1:2222,2323; udp [::]:53``."""
        groups: dict[tuple[str, str], list[str]] = {}
        for kind, host, port in self.addresses():
            where = f"[{host}]" if ":" in host else host
            groups.setdefault((kind, where), []).append(str(port))
        return "; ".join(f"{kind} {where}:{','.join(ports)}"
                         for (kind, where), ports in groups.items())

    def _open(self, proto: int, host: str, number: int, ssh_reply: bytes | None,
              http_reply: bytes | None) -> None:
        kind = "tcp" if proto == socket.SOCK_STREAM else "udp"
        try:
            sock = _bind(proto, host, number, self.options.backlog)
        except OSError as exc:
            where = f"[{host}]:{number}" if ":" in host else f"{host}:{number}"
            message = f"listener {self.name}: cannot listen on {kind} {where}: {_why(exc, number)}"
            if self.options.skip_unavailable:
                log.warning("%s; skipped", message)
                return
            raise ConfigError(message) from None
        actual = sock.getsockname()[1]
        suffix = "" if kind == "tcp" else "/udp"
        port = Port(self.hub, f"{self.label}:{actual}{suffix}", host, actual,
                    reply_ssh=ssh_reply, reply_http=http_reply)
        self.sockets.append((sock, port, proto))

    def addresses(self) -> list[tuple[str, str, int]]:
        """What is listened on: (``tcp``/``udp``, address, port)."""
        return [("tcp" if proto == socket.SOCK_STREAM else "udp", port.bind, port.number)
                for _, port, proto in self.sockets]

    def close(self) -> None:
        for sock, _, _ in self.sockets:
            sock.close()

    async def run(self, out: Emitter) -> None:
        loop = asyncio.get_running_loop()
        hub = self.hub
        _raise_file_limit(self.options.max_connections + len(self.sockets) + FD_RESERVE)
        self._fit_connections_to_file_limit()
        servers: list[asyncio.AbstractServer | Acceptor] = []
        endpoints: list[asyncio.BaseTransport] = []
        sweeper: asyncio.Task[None] | None = None
        uvloop = type(loop).__module__.startswith("uvloop")
        try:
            for sock, port, proto in self.sockets:
                factory = functools.partial(TcpConnection, port)
                if proto == socket.SOCK_STREAM and uvloop:
                    servers.append(await loop.create_server(
                        factory, sock=sock, backlog=self.options.backlog))
                elif proto == socket.SOCK_STREAM:
                    servers.append(Acceptor(loop, sock, factory, self.hub))
                else:
                    transport, _ = await loop.create_datagram_endpoint(
                        functools.partial(UdpPort, port), sock=sock)
                    endpoints.append(transport)
            if self.options.user:
                drop_privileges(self.options.user)
            sweeper = asyncio.create_task(self._sweep(), name=f"{self.name}-sweep")
            while True:
                await hub.wake.wait()
                # gather what a busy moment brings: one hand-over per few hundred events
                # costs the pipeline far less than one per event
                await asyncio.sleep(GATHER_FOR)
                hub.wake.clear()
                batch, hub.pending = hub.pending, []
                if batch:
                    await out.emit(batch)
        finally:
            hub.stopping = True
            if sweeper is not None:
                sweeper.cancel()
            for server in servers:
                server.close()
            for endpoint in endpoints:
                endpoint.close()
            hub.close_all("shutdown")
            batch, hub.pending = hub.pending, []
            self.close()
            if batch:
                await out.emit(batch)

    def _fit_connections_to_file_limit(self) -> None:
        """Keep ``max_connections`` below what the file limit allows, with room to spare:
        at the cap the oldest connection makes way for a new one, so running out of
        descriptors (where nothing can be accepted, logged or written) does not happen
        through the listener's own connections."""
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft == resource.RLIM_INFINITY:
            return
        try:
            used = len(os.listdir("/proc/self/fd"))
        except OSError:
            used = 64
        room = max(1, soft - used - min(FD_RESERVE, soft // 4))
        limits = self.hub.limits
        if limits.max_connections == 0 or limits.max_connections > room:
            log.warning("%s: open files are limited to %d; at most %d connections are kept "
                        "open at once (max_connections = %d)", self.name, soft, room,
                        limits.max_connections)
            limits.max_connections = room

    async def _sweep(self) -> None:
        reported: dict[str, int] = {}
        last_report = time.monotonic()
        while True:
            await asyncio.sleep(SWEEP_EVERY)
            now = time.monotonic()
            self.hub.sweep(now)
            if now - last_report >= REPORT_EVERY:
                last_report = now
                current = {k: v for k, v in self.ctx.counters.items()
                           if k.startswith("listener: ")}
                changed = {k: v - reported.get(k, 0) for k, v in current.items()
                           if v != reported.get(k, 0)}
                if changed:
                    log.warning("%s: %s", self.name, "; ".join(
                        f"{k.removeprefix('listener: ')}: {v}" for k, v in sorted(changed.items())))
                reported = current


class Acceptor:
    """Accepts connections on asyncio's own event loop, which (up to Python 3.13) turns a
    lack of file descriptors into a storm of retries. Here a lack pauses accepting for a
    moment (doubling up to a few seconds) and is counted; nothing spins. uvloop's server
    already behaves, and is used as it is."""

    #: Most connections accepted per wake-up, so that one busy port cannot starve the rest.
    BATCH: Final = 64
    #: Longest pause when descriptors have run out, in seconds.
    PAUSE_MAX: Final = 5.0

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket,
                 factory: Callable[[], asyncio.Protocol], hub: Hub) -> None:
        self.loop = loop
        self.sock = sock
        self.factory = factory
        self.hub = hub
        self.pause = 0.1
        self.tasks: set[asyncio.Task[Any]] = set()
        self.closed = False
        self.start()

    def start(self) -> None:
        if not self.closed:
            self.loop.add_reader(self.sock.fileno(), self._ready)

    def _ready(self) -> None:
        for _ in range(self.BATCH):
            try:
                conn, _ = self.sock.accept()
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                return
            except OSError as exc:
                self.loop.remove_reader(self.sock.fileno())
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    self.hub.count("accepting paused: out of file descriptors")
                    if self.pause == 0.1:
                        log.warning("out of file descriptors (%s); accepting pauses, and "
                                    "resumes as connections close", exc.strerror)
                    self.loop.call_later(self.pause, self.start)
                    self.pause = min(self.pause * 2, self.PAUSE_MAX)
                else:
                    self.hub.count(f"accept failed: {exc.strerror}")
                    self.loop.call_later(0.1, self.start)
                return
            self.pause = 0.1
            conn.setblocking(False)
            task = self.loop.create_task(self.loop.connect_accepted_socket(self.factory, conn))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    def close(self) -> None:
        self.closed = True
        self.loop.remove_reader(self.sock.fileno())


def _raise_file_limit(wanted: int) -> None:
    """Raise the soft limit on open files towards ``wanted`` (as far as the hard limit
    allows), so that the connection cap, not the file limit, is what binds."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        if target < wanted:
            log.warning("open files are limited to %d; fewer connections than max_connections "
                        "can be open at once (raise it with ulimit -n or LimitNOFILE=)", hard)


def drop_privileges(user: str) -> None:
    """Switch the whole process to ``user`` (its group, no supplementary groups) when it
    runs as root; refuse to go on as root if that fails."""
    import pwd

    if os.geteuid() != 0:
        log.info("not running as root; user = %r has nothing to drop", user)
        return
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise ConfigError(f"listener: user {user!r} does not exist") from None
    os.setgroups([])
    os.setgid(entry.pw_gid)
    os.setuid(entry.pw_uid)
    if os.geteuid() == 0 or os.getuid() == 0:  # pragma: no cover - the kernel refused
        raise ConfigError(f"listener: could not switch to user {user!r}")
    log.info("listening ports open; now running as %s (uid %d)", user, entry.pw_uid)


def _make(options: Any, ctx: SourceContext) -> ListenerSource:
    assert isinstance(options, ListenerOptions)
    return ListenerSource(options, ctx)


def _defaults(ctx: SourceContext) -> list[SourceOptions]:
    return [ListenerOptions(type="listener", name="listener", ports=list(DEFAULT_PORTS),
                            bind=["127.0.0.1"], skip_unavailable=True)]


#: Ports of the listener that ``portolan run`` starts with no config, on 127.0.0.1 only:
#: SSH-like, telnet-like and HTTP-like ports that need no privileges.
DEFAULT_PORTS: Final = (2222, 2323, 8081)

SOURCES.add("listener", SourceSpec(
    name="listener",
    summary="Catch-all TCP/UDP listener: every connection, its first payload (TLS, HTTP, "
            "SSH recognised), original destination behind a REDIRECT",
    options=ListenerOptions,
    make=_make,
    defaults=_defaults,
))
