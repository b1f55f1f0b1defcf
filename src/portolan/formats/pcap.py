"""``pcap``: capture files (pcap and pcapng) to flow and request events.

Not a line format: :func:`read_file` reads the whole file through the packet analyzer
(:mod:`portolan.packets.analyzer`) and yields batches of events. Event ids come from the
file's fingerprint (its first bytes) and frame numbers, so importing the same capture
twice, or a copy of it, stores nothing twice. Skipped frames (not IP, truncated,
malformed) are counted by reason in the context's counters.

The ``capture`` source passes the analyzer's settings (time-outs, local networks) as the
option ``analyzer`` (an :class:`~portolan.packets.analyzer.AnalyzerOptions`).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from portolan.event import Event
from portolan.formats.base import FORMATS, FormatSpec, ParseContext

# The packet analysers load when a capture is read, not when the format registers: looking
# up another format does not import them.
if TYPE_CHECKING:
    from portolan.packets.analyzer import Analyzer
    from portolan.packets.capfile import CaptureFile

#: Frames read between two batches handed to the pipeline.
FRAMES_PER_BATCH = 5000


def read_file(path: Path, ctx: ParseContext) -> Iterator[list[Event]]:
    """Every flow and request of a capture file, in batches."""
    from portolan.packets.analyzer import Analyzer, AnalyzerOptions
    from portolan.packets.capfile import CaptureError, CaptureFile

    try:
        capture = CaptureFile(path, ctx.counters)
    except CaptureError as exc:
        from portolan.config import ConfigError

        raise ConfigError(str(exc)) from None
    options = ctx.options.get("analyzer")
    analyzer = Analyzer(
        sensor=ctx.sensor, source=ctx.source or path.name, id_key=capture.fingerprint,
        options=options if isinstance(options, AnalyzerOptions) else None,
        counters=ctx.counters,
    )
    yield from batches(capture, analyzer)


def batches(capture: CaptureFile, analyzer: Analyzer) -> Iterator[list[Event]]:
    """The events of every frame of ``capture``, in batches, all flows ended at the end."""
    frames = iter(capture)
    while True:
        chunk = list(itertools.islice(frames, FRAMES_PER_BATCH))
        if not chunk:
            break
        analyzer.feed(chunk)
        events = analyzer.take()
        if events:
            yield events
    analyzer.finish()
    events = analyzer.take()
    if events:
        yield events
    if analyzer.frames and not analyzer.ip_packets:
        analyzer.counters[f"not an IP capture: no IP packet in {analyzer.frames} frames"] += 1

FORMATS.add("pcap", FormatSpec("pcap", "pcap and pcapng capture files: flows, HTTP "
                               "requests, TLS server names, DNS queries", read_file=read_file))
