"""``jsonl``: Portolan's own events, one JSON object per line (the ``--json`` output)."""

from __future__ import annotations

from portolan.event import Event, EventError, decode
from portolan.formats.base import FORMATS, FormatSpec, LineParser, ParseContext


class JsonLinesParser(LineParser):
    """One :class:`~portolan.event.Event` per line, validated; blank lines are skipped."""

    def parse(self, line: str) -> list[Event] | None:
        if not line.strip():
            return []
        try:
            event = decode(line)
        except EventError as exc:
            self.ctx.counters[f"invalid event: {str(exc).partition(':')[0]}"] += 1
            return None
        if not event.sensor:
            event.sensor = self.ctx.sensor
        if not event.source:
            event.source = self.ctx.source
        return [event]


def _make(ctx: ParseContext) -> JsonLinesParser:
    return JsonLinesParser(ctx)


FORMATS.add(
    "jsonl",
    FormatSpec("jsonl", "Portolan events as JSON lines (the --json output)", make_parser=_make),
)
