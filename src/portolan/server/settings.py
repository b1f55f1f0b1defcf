"""The ``[server]`` table: where the HTTP server listens and who may read what."""

from __future__ import annotations

from portolan.config import SECTIONS, Section


class ServerSection(Section):
    """The HTTP server: REST API, ingest from remote sensors, live stream, ``/metrics``."""

    enabled: bool = True
    """Start the server in ``portolan run``."""
    listen: str = "127.0.0.1:8080"
    """Address and port to listen on, ``HOST:PORT`` (``[::1]:8080`` for IPv6). Anything but
    a loopback address exposes the server: set ``read_token_required`` then."""
    read_token_required: bool = False
    """Require a ``read`` (or ``admin``) token for every read, also from loopback. When
    false, clients on the loopback address read without a token and every other client
    needs one. Behind a reverse proxy on the same machine every client looks local: set
    this to true there."""
    cors_origins: list[str] = []
    """Web origins allowed to call the API from a browser (``https://dash.example``), or
    ``["*"]`` for any. Empty: no cross-origin access."""
    tile_url: str = ""
    """Map tile URL template for the dashboard (``https://tile.example/{z}/{x}/{y}.png``).
    Empty: the map is drawn without tiles (works offline)."""
    max_body_bytes: int = 16 * 1024 * 1024
    """Largest ingest request body, in bytes, as sent (gzip-compressed or not)."""
    max_decoded_bytes: int = 64 * 1024 * 1024
    """Largest ingest body once decompressed, in bytes."""
    max_events: int = 50000
    """Most events in one ingest request."""
    metrics_top: int = 20
    """Countries and ASNs named in ``/metrics``; the rest are summed under ``other``."""
    metrics_per_ip: bool = False
    """Export one series per remote address in ``/metrics`` (the busiest ones; privacy
    mode applies to the label)."""
    metrics_per_ip_max: int = 50
    """How many addresses ``metrics_per_ip`` exports at most."""
    stream_buffer: int = 10000
    """Newest events kept for live-stream clients that reconnect with ``Last-Event-ID``."""


SECTIONS.add("server", ServerSection)
