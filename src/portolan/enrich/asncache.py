"""A binary copy of the ASN table, so that a start does not parse the CSV files again.

Reading the built-in ASN CSV files (half a million lines) takes about a second; every
``portolan`` command that enriches events would pay it. The table read from them is
written once to ``DATA_DIR/cache/asn-table.bin``: a header line naming the CSV files
(path, size, modification time) and the size of each part, then the arrays as they are
in memory. A start whose CSV files are the same reads that instead (a few milliseconds).
A copy that does not match, is damaged or cannot be written is ignored: the CSV files
are read, as without it.
"""

from __future__ import annotations

import array
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any, Final

from portolan.enrich.asn import AsnTable, _Family

log = logging.getLogger(__name__)

FILE: Final = "asn-table.bin"
_MAGIC: Final = b"portolan asn table 1\n"
_MASK64: Final = (1 << 64) - 1


def sources_key(paths: list[Path | None]) -> list[Any]:
    """What identifies the CSV files: path, size and modification time of each."""
    key: list[Any] = []
    for path in paths:
        if path is None:
            key.append(None)
            continue
        st = path.stat()
        key.append([str(path.resolve()), st.st_size, st.st_mtime_ns])
    return key


def load(folder: Path | None, v4_csv: Path | None, v6_csv: Path | None) -> AsnTable:
    """The table of the two CSV files: from the copy in ``folder`` when it is theirs,
    else read from them (and the copy written). Raises OSError naming a CSV file."""
    if folder is None:
        return AsnTable.load(v4_csv, v6_csv)
    key = sources_key([v4_csv, v6_csv])
    path = folder / FILE
    table = _read(path, key)
    if table is not None:
        table.sources = [p for p in (v4_csv, v6_csv) if p is not None]
        return table
    table = AsnTable.load(v4_csv, v6_csv)
    try:
        _write(path, key, table)
    except (OSError, ValueError) as exc:
        log.debug("%s: the ASN table is not kept: %s", path, exc)
    return table


def _parts(table: AsnTable) -> list[array.array[int]]:
    v4, v6 = table.v4, table.v6
    parts: list[array.array[int]] = [
        array.array("I", v4.starts), array.array("I", v4.ends), v4.asns, v4.orgs,
    ]
    for column in (v6.starts, v6.ends):
        parts.append(array.array("Q", (n >> 64 for n in column)))
        parts.append(array.array("Q", (n & _MASK64 for n in column)))
    parts += [v6.asns, v6.orgs]
    return parts


def _write(path: Path, key: list[Any], table: AsnTable) -> None:
    if array.array("I").itemsize != 4 or array.array("Q").itemsize != 8:
        raise ValueError("unusual sizes of C integers")
    if any("\0" in name for name in table.names):
        raise ValueError("an organisation name holds a NUL character")
    names = "\0".join(table.names).encode("utf-8")
    parts = _parts(table)
    header = {"sources": key, "v4": len(table.v4.starts), "v6": len(table.v6.starts),
              "names": len(table.names), "names_bytes": len(names),
              "skipped": table.skipped, "clipped": table.clipped}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".asn-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(_MAGIC)
            fh.write(json.dumps(header).encode("utf-8") + b"\n")
            for part in parts:
                part.tofile(fh)
            fh.write(names)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _read(path: Path, key: list[Any]) -> AsnTable | None:
    """The table kept in ``path`` if it is the one of the CSV files ``key`` names."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    try:
        return _decode(data, key)
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        log.info("%s: not used (%s); the ASN table is read from its CSV files", path, exc)
        return None


def _decode(data: bytes, key: list[Any]) -> AsnTable | None:
    if not data.startswith(_MAGIC):
        raise ValueError("not a copy of the ASN table")
    end = data.index(b"\n", len(_MAGIC))
    header = json.loads(data[len(_MAGIC):end])
    if header["sources"] != key:
        return None  # the CSV files changed: read them again
    n4, n6, count = int(header["v4"]), int(header["v6"]), int(header["names"])
    sizes = [("I", n4)] * 4 + [("Q", n6)] * 4 + [("I", n6)] * 2
    at = end + 1
    parts: list[array.array[int]] = []
    for code, n in sizes:
        part = array.array(code)
        size = n * part.itemsize
        part.frombytes(data[at:at + size])
        if len(part) != n:
            raise ValueError("truncated")
        parts.append(part)
        at += size
    blob = data[at:]
    if len(blob) != int(header["names_bytes"]):
        raise ValueError("truncated")
    names = blob.decode("utf-8").split("\0") if count else []
    if len(names) != count:
        raise ValueError("names do not add up")
    if any(orgs and max(orgs) >= count for orgs in (parts[3], parts[9])):
        raise ValueError("organisation out of range")
    s4, e4, a4, o4, sh, sl, eh, el, a6, o6 = parts
    v6_starts = [(h << 64) | lo for h, lo in zip(sh, sl, strict=True)]
    v6_ends = [(h << 64) | lo for h, lo in zip(eh, el, strict=True)]
    return AsnTable(_Family(s4, e4, a4, o4), _Family(v6_starts, v6_ends, a6, o6), names,
                    skipped=int(header["skipped"]), clipped=int(header["clipped"]))
