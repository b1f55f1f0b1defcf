"""Reading the annotated sample files of ``tests/formats/samples/`` (see the head of any
of them for the annotations), and checking a parser against them."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from portolan.event import Event
from portolan.formats.base import FORMATS, ParseContext, Parser

SAMPLES = Path(__file__).parent / "samples"


@dataclass
class Sample:
    """One annotated line."""

    number: int
    line: str
    expect: Any
    """A list of field dicts, or "ignored" / "unmatched"."""
    options: dict[str, Any] = field(default_factory=dict)
    now: dt.datetime | None = None
    group: int = 0
    """Lines of one group share a parser (state carries over between them)."""


def read(path: Path) -> list[Sample]:
    """The samples of one file; every log line must carry an expectation."""
    out: list[Sample] = []
    expect: Any = None
    options: dict[str, Any] = {}
    now: dt.datetime | None = None
    group = 0
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if raw.startswith("# expect:"):
            text = raw.partition(":")[2].strip()
            expect = text if text in ("ignored", "unmatched") else json.loads(text)
            continue
        if raw.startswith("# options:"):
            options = json.loads(raw.partition(":")[2])
            group += 1
            continue
        if raw.startswith("# now:"):
            now = dt.datetime.fromisoformat(raw.partition(":")[2].strip())
            group += 1
            continue
        if raw.startswith("#") or not raw.strip():
            continue
        if expect is None:
            raise AssertionError(f"{path.name}:{number}: a sample line without '# expect:'")
        out.append(Sample(number, raw, expect, options, now, group))
        expect = None
    return out


def value(event: Event, name: str) -> Any:
    if name.startswith("attrs."):
        return event.attrs.get(name[6:], "<absent>")
    return getattr(event, name)


def check(sample: Sample, events: list[Event] | None, where: str) -> None:
    """Assert that a parser's answer to one sample is what the annotation says."""
    label = f"{where}:{sample.number}: {sample.line[:120]!r}"
    if sample.expect == "unmatched":
        assert events is None, f"{label}: expected unmatched, got {events}"
        return
    assert events is not None, f"{label}: not recognised"
    if sample.expect == "ignored":
        assert events == [], f"{label}: expected nothing, got {events}"
        return
    assert len(events) == len(sample.expect), f"{label}: {len(events)} events: {events}"
    for event, fields in zip(events, sample.expect, strict=True):
        for name, want in fields.items():
            got = value(event, name)
            if name == "ts":
                want = dt.datetime.fromisoformat(want)
            if want == "*":
                assert got, f"{label}: {name} is empty"
                continue
            assert got == want, f"{label}: {name} is {got!r}, expected {want!r}"


def run(path: Path, format_name: str, make_options: Any = None) -> list[str]:
    """Check every sample of a file with a fresh parser per group; returns the lines'
    messages for further checks."""
    spec = FORMATS.get(format_name)
    parser: Parser | None = None
    group = -1
    for sample in read(path):
        if parser is None or sample.group != group:
            group = sample.group
            now = sample.now or dt.datetime(2026, 11, 23, tzinfo=dt.UTC)
            ctx = ParseContext(sensor="test", source=path.name, options=sample.options,
                               now=lambda now=now: now)
            assert spec.make_parser is not None
            parser = spec.make_parser(ctx)
        check(sample, parser.parse(sample.line), path.name)
    return [s.line for s in read(path)]
