"""Many IPv4 addresses looked up at once: what :meth:`GeoIP.lookup_many` does for the
pipeline's batches, with the same answers as one :meth:`GeoIP.lookup` per address.

For a batch, with numpy:

1. the addresses are parsed into integers (``inet_pton``, strict); anything else (IPv6,
   text with spaces, garbage) is looked up one by one, as before;
2. each ``.mmdb`` file's search tree gives the record every address ends on, and the
   prefix length of its network (:mod:`portolan.enrich.tree`);
3. the addresses that end on the same records in every file get the same answer from
   the files (a template: the place, and the AS when a file has one). It is worked out
   once, for the first of them, by the code of a single lookup, and kept: a record is
   decoded once, however many networks and addresses share it;
4. the ASN table is searched for the whole batch, and the CIDR block that holds each
   address inside its range is computed arithmetically (:class:`_Ranges`);
5. the answers are put together column by column, networks formatted all at once, and
   special-purpose addresses get their label, as always.

The templates kept are bounded (:data:`TEMPLATES`), and dropped when a database is
reloaded (a new :class:`Batch` is made).
"""

from __future__ import annotations

import logging
import socket
from functools import partial
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import numpy.typing as npt

from portolan.enrich.answer import NOTHING, Answer, Attrs
from portolan.enrich.answer import special as special_answer
from portolan.enrich.special import V4_RANGES
from portolan.enrich.tree import SearchTree

if TYPE_CHECKING:
    from portolan.enrich.asn import AsnTable
    from portolan.enrich.geoip import GeoIP

log = logging.getLogger(__name__)

I64 = npt.NDArray[np.int64]
#: A file's search tree, and the record and prefix length each address ends on there.
Walk = tuple[SearchTree, I64, npt.NDArray[np.int8]]
#: A template, arranged: the place, ``geo_db`` when the AS is not from the table, and
#: when it is, the AS from the files, and the file that gave it (index in the walks).
_Stub = tuple[str | None, str | None, str | None, float | None, float | None,
              Attrs | None, str | None, str | None, int | None, str | None, int]

#: Templates kept (one per combination of records met) before they are dropped.
TEMPLATES: Final = 262_144

_PTON4: Final = partial(socket.inet_pton, socket.AF_INET)
_CIDR: Final = "%d.%d.%d.%d/%d\n"
_SPECIAL_STARTS: Final = np.array([lo for lo, _, _ in V4_RANGES], np.int64)
_SPECIAL_ENDS: Final = np.array([hi for _, hi, _ in V4_RANGES], np.int64)
_SPECIAL_LABELS: Final = [label for _, _, label in V4_RANGES]


class _Ranges:
    """The IPv4 ranges of the ASN table, arranged for searching a batch at once.

    Row 0 is a sentinel before every address, and ranges of AS 0 (not announced) end
    before they start: an address is in the row ``i`` of the last start at or before it
    when it is not after ``ends[i]``. For each block of 65,536 addresses (``/16``) the rows
    that can hold its addresses are known in advance; the batch is bisected inside them,
    every address at once (a bisection per address, as ``searchsorted`` does it, waits
    for the memory on every step)."""

    def __init__(self, table: AsnTable) -> None:
        fam = table.v4
        self.starts: I64 = np.concatenate(([-1], np.array(fam.starts, np.int64)))
        ends: I64 = np.concatenate(([-2], np.array(fam.ends, np.int64)))
        self.asns: I64 = np.concatenate(([0], np.array(fam.asns, np.int64)))
        self.ends: I64 = np.where(self.asns != 0, ends, -2)
        # the trailing zero bits of each start, and the trailing one bits of each end
        self.start_zeros = _trailing_zeros(np.maximum(self.starts, 0)).astype(np.int8)
        self.end_ones = _trailing_zeros(np.maximum(ends + 1, 0)).astype(np.int8)
        names = np.array([name or None for name in table.names], object)
        self.orgs: npt.NDArray[np.object_] = np.empty(len(self.starts), object)
        """The organisation of each row (None: not named), shared strings."""
        self.orgs[1:] = names[np.array(fam.orgs, np.int64)]
        blocks: I64 = np.arange(1 << 16, dtype=np.int64) << 16
        self.first: I64 = np.searchsorted(self.starts, blocks, side="right") - 1
        self.last: I64 = np.searchsorted(self.starts, blocks + 0xFFFF, side="right") - 1

    def rows(self, nums: I64) -> I64:
        """The row of the last start at or before each address."""
        block = nums >> 16
        low: I64 = self.first[block]
        high: I64 = self.last[block]
        open_ = np.flatnonzero(low < high)
        starts = self.starts
        while open_.size:
            lo, hi, n = low[open_], high[open_], nums[open_]
            mid = (lo + hi + 1) >> 1
            after = starts[mid] <= n
            lo = np.where(after, mid, lo)
            hi = np.where(after, hi, mid - 1)
            low[open_] = lo
            high[open_] = hi
            open_ = open_[lo < hi]
        return low


class Batch:
    """The batch lookups of one :class:`GeoIP`, for its files as they are now."""

    def __init__(self, geo: GeoIP) -> None:
        self.geo = geo
        self.trees: list[tuple[int, SearchTree]] | None = []
        """(index in ``geo.files``, search tree) of every file asked for IPv4 addresses;
        None when one of them cannot be walked here (every address is then looked up
        one by one)."""
        for i, f in enumerate(geo.files):
            if f.only_version not in (0, 4):
                continue
            try:
                tree = SearchTree(f.path, f.records, f.record_size, f.ip_version, f.identity)
            except (OSError, ValueError) as exc:
                log.info("GeoIP: %s: looked up one address at a time (%s)", f.path, exc)
                self.close()
                self.trees = None
                break
            self.trees.append((i, tree))
        trees = self.trees or []
        # One place database without AS data (the built-in case): the record an address
        # ends on is its template's key, and the AS always comes from the table.
        self._simple = len(trees) <= 1 and not any(geo.files[i].provides_asn
                                                   for i, _ in trees)
        # the AS may come from a file: each address's network comes from there or the table
        self._file_asn = any(geo.files[i].provides_asn for i, _ in trees)
        self._stubs: dict[object, _Stub] = {}
        """Templates by the record of the one file, or by the number given to each
        combination of records (several files, or AS data in one)."""
        self._numbers: dict[object, int] = {}
        table = geo.asn_table
        self._ranges = _Ranges(table) if table is not None and len(table.v4.starts) else None

    def close(self) -> None:
        for _, tree in self.trees or ():
            tree.close()
        self.trees = None

    def lookup(self, ips: list[str]) -> list[Answer]:
        """The answer for each address, in order."""
        geo = self.geo
        if self.trees is None:
            return [geo._lookup(ip) for ip in ips]
        try:
            packed = b"".join(map(_PTON4, ips))
        except (OSError, ValueError, TypeError):
            return self._mixed(ips)
        return self._v4(ips, np.frombuffer(packed, ">u4").astype(np.int64))

    def _mixed(self, ips: list[str]) -> list[Answer]:
        """A batch with some addresses that are not plain IPv4."""
        out: list[Answer | None] = [None] * len(ips)
        where: list[int] = []
        words: list[bytes] = []
        for i, ip in enumerate(ips):
            try:
                words.append(_PTON4(ip))
            except (OSError, ValueError, TypeError):
                out[i] = self.geo._lookup(ip)
            else:
                where.append(i)
        if where:
            nums = np.frombuffer(b"".join(words), ">u4").astype(np.int64)
            for i, r in zip(where, self._v4([ips[i] for i in where], nums), strict=True):
                out[i] = r
        return out  # type: ignore[return-value]  # every slot is filled

    def _v4(self, ips: list[str], nums: I64) -> list[Answer]:
        """Answers for IPv4 addresses (``ips``, and their values ``nums``)."""
        assert self.trees is not None
        walks = [(tree, *tree.lookup(nums)) for _, tree in self.trees]
        damaged = np.zeros(len(nums), bool)
        for tree, node, _ in walks:
            damaged |= node < tree.node_count
        if damaged.any():  # the file's reader says what is wrong (or reads it otherwise)
            out: list[Answer] = [self.geo._lookup(ip) if bad else None  # type: ignore[misc]
                                 for ip, bad in zip(ips, damaged.tolist(), strict=True)]
            good = np.flatnonzero(~damaged)
            if good.size:
                sub = self._answer([ips[i] for i in good.tolist()], nums[good],
                                   [(t, node[good], pre[good]) for t, node, pre in walks])
                for i, r in zip(good.tolist(), sub, strict=True):
                    out[i] = r
            return out
        return self._answer(ips, nums, walks)

    def _answer(self, ips: list[str], nums: I64, walks: list[Walk]) -> list[Answer]:
        if len(self._stubs) >= TEMPLATES:
            self._stubs.clear()
            self._numbers.clear()
        n = len(nums)
        stubs = self._stubs_of(ips, walks)
        (country, country_name, city, lat, lon, extra, label_files, label_table, file_asn,
         file_org, source) = zip(*stubs, strict=True)
        asn = np.array(file_asn, object)
        org = np.array(file_org, object)
        dbs = np.array(label_files, object)
        # -- the network: from the file that gave the AS, or from the table --------------
        length = np.full(n, -1, np.int64)  # -1: no network
        from_file: npt.NDArray[np.bool_] | None = None
        if self._file_asn:
            where = np.array(source, np.int64)
            for w, (_, _, prefix) in enumerate(walks):
                mine = where == w
                length[mine] = prefix[mine]
            from_file = where >= 0
        ranges = self._ranges
        if ranges is not None:
            at = ranges.rows(nums)
            start, end = ranges.starts[at], ranges.ends[at]
            hit = nums <= end
            if from_file is not None:
                hit &= ~from_file
            if hit.any():
                bits = _block_bits(nums, start, end, ranges.start_zeros[at],
                                   ranges.end_ones[at])
                length = np.where(hit, 32 - bits, length)
                row = at[hit]
                asn[hit] = ranges.asns[row]
                org[hit] = ranges.orgs[row]
                dbs[hit] = np.array(label_table, object)[hit]
        shift = np.where(length >= 0, 32 - length, 32)
        network = _networks((nums >> shift) << shift, length)
        out: list[Answer] = list(zip(country, country_name, city, lat, lon, asn.tolist(),
                                     org.tolist(), network, dbs.tolist(), extra, strict=True))
        # -- no database answered; special-purpose addresses -----------------------------
        for i in np.flatnonzero(~dbs.astype(bool)).tolist():
            out[i] = NOTHING
        at = np.searchsorted(_SPECIAL_STARTS, nums, side="right") - 1
        special = np.flatnonzero((at >= 0) & (nums <= _SPECIAL_ENDS[np.maximum(at, 0)]))
        for i, s in zip(special.tolist(), at[special].tolist(), strict=True):
            out[i] = special_answer(_SPECIAL_LABELS[s])
        return out

    def _stubs_of(self, ips: list[str], walks: list[Walk]) -> list[_Stub]:
        """The template of each address."""
        stubs = self._stubs
        if self._simple:  # keyed by the record of the one file
            keys: list[object] = walks[0][1].tolist() if walks else [0] * len(ips)
            found = list(map(stubs.get, keys))
            if None in found:
                for i, stub in enumerate(found):
                    if stub is None:
                        key = keys[i]
                        stub = stubs.get(key)
                        if stub is None:
                            stub = stubs[key] = self._stub(ips[i])
                        found[i] = stub
            return found  # type: ignore[return-value]  # every slot is filled
        # keyed by the records of every file: numbered once per distinct combination
        if len(walks) == 1:
            unique, first, inverse = np.unique(walks[0][1], return_index=True,
                                               return_inverse=True)
            combos: list[object] = unique.tolist()
        else:
            stacked = np.stack([node for _, node, _ in walks], axis=1)
            unique, first, inverse = np.unique(stacked, axis=0, return_index=True,
                                               return_inverse=True)
            combos = [tuple(row) for row in unique.tolist()]
        numbers = self._numbers
        distinct = []
        for combo, at in zip(combos, first.tolist(), strict=True):
            number = numbers.get(combo)
            if number is None:
                number = numbers[combo] = len(numbers)
                stubs[number] = self._stub(ips[at])
            distinct.append(stubs[number])
        return [distinct[i] for i in inverse.reshape(-1).tolist()]

    def _stub(self, ip: str) -> _Stub:
        """The template of the address ``ip``, arranged for :meth:`_answer`."""
        geo = self.geo
        t = geo._files(4, ip)
        source = -1
        if t.asn_file >= 0:
            source = [i for i, _ in self.trees or ()].index(t.asn_file)
        return (t.country, t.country_name, t.city, t.lat, t.lon, t.extra,
                geo._label(t.place_db, t.asn_db), geo._label(t.place_db, geo.asn_label),
                t.asn, t.as_org, source)


def _networks(lows: I64, lengths: I64) -> list[str | None]:
    """``a.b.c.d/n`` for each network (None where the length is -1), formatted at once."""
    has = np.flatnonzero(lengths >= 0)
    if not has.size:
        return [None] * len(lows)
    low = lows[has]
    fields = np.stack((low >> 24, (low >> 16) & 255, (low >> 8) & 255, low & 255,
                       lengths[has]), axis=1)
    texts = (_CIDR * has.size % tuple(fields.ravel().tolist())).split("\n")
    texts.pop()  # after the last newline
    if has.size == len(lows):
        return list(texts)
    out = np.full(len(lows), None, object)
    out[has] = texts
    return out.tolist()


def _bit_length(x: I64) -> I64:
    """``int.bit_length`` of each value (0 <= x <= 2**33)."""
    out: I64 = np.frexp(x.astype(np.float64))[1].astype(np.int64)
    return out


def _trailing_zeros(x: I64) -> I64:
    """The trailing zero bits of each value (0 <= x <= 2**32; 32 for 0)."""
    out: I64 = np.where(x == 0, 32, _bit_length(x & -x) - 1)
    return out


def _block_bits(n: I64, start: I64, end: I64, start_zeros: npt.NDArray[np.integer[Any]],
                end_ones: npt.NDArray[np.integer[Any]]) -> I64:
    """For addresses ``n`` inside ranges ``[start, end]``: the size, in bits, of the
    largest CIDR block inside the range that holds the address (``start_zeros``: the
    trailing zero bits of ``start``, ``end_ones``: the trailing one bits of ``end``).

    A block of ``2**k`` addresses around ``n`` starts at or after ``start`` when ``k`` is
    at most the highest bit where ``n`` and ``start`` differ, or at most the trailing
    zero bits of ``start``; it ends at or before ``end`` when ``k`` is at most the highest
    bit where ``n`` and ``end`` differ, or at most the trailing one bits of ``end``."""
    out: I64 = np.minimum(np.maximum(_bit_length(n ^ start) - 1, start_zeros),
                          np.maximum(_bit_length(n ^ end) - 1, end_ones))
    return out
