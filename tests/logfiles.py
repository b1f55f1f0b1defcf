"""Log files made for tests: lines of the shapes a reader must cope with."""

from __future__ import annotations

from pathlib import Path

from portolan.sources.lines import LINE_MAX, READ_BYTES


def awkward_log(path: Path, final_newline: bool) -> Path:
    """Lines of every shape the reader must cut and decode as the line feeder does: CRLF,
    carriage returns alone, invalid UTF-8 (one character cut short just before the
    newline), blank lines, a line longer than the limit, unmatched lines, and chunks."""
    lines = []
    for i in range(3 * READ_BYTES // 70):
        t = f"Nov 23 10:{i // 60 % 60:02d}:{i % 60:02d}"
        lines += [
            f"{t} h sshd[{i}]: Failed password for root from 192.0.2.{i % 250} port {i} ssh2"
            .encode(),
            f"{t} h sshd[{i}]: Invalid user \xe9 from 192.0.2.1 port 1\r".encode("latin-1"),
            f"{t} h sshd[{i}]: Connection closed by 192.0.2.{i % 250} port {i} \xe2\x82"
            .encode("latin-1"),
            b"\r\r", b"", b"  ", f"not a log line {i % 5}".encode(), b"odd line\r",
            f"{t} h sshd[{i}]: Server listening on 0.0.0.0 port 22.\rx".encode(),
        ]
        if i == 100:
            lines.append(f"{t} h sshd[1]: Invalid user {'x' * LINE_MAX} from 192.0.2.1"
                         .encode())
    path.write_bytes(b"\n".join(lines) + (b"\n" if final_newline else b""))
    return path
