"""Many IPv4 addresses looked up at once: what :meth:`GeoIP.lookup_many` and
:meth:`GeoIP.lookup_columns` do for the pipeline's batches, with the same answers as one
:meth:`GeoIP.lookup` per address.

For a batch, with numpy:

1. the addresses are parsed into integers (``inet_pton``, strict); anything else (IPv6,
   text with spaces, garbage) is looked up one by one, as before;
2. each ``.mmdb`` file's search tree gives the record every address ends on, and the
   prefix length of its network (:mod:`portolan.enrich.tree`);
3. the addresses that end on the same records in every file get the same answer from
   the files (a template: the place, and the AS when a file has one). It is worked out
   once, for the first of them, by the code of a single lookup, and kept, numbered, its
   fields in numpy arrays (:class:`_Templates`): a record is decoded once, however many
   networks and addresses share it, and a batch finds its templates' numbers with numpy
   (a hash table in front of the dictionary of them);
4. the ASN table is searched for the whole batch, and the CIDR block that holds each
   address inside its range is computed arithmetically (:class:`_Ranges`);
5. the answers are put together field by field (:class:`Columns`): each field of every
   address gathered at once from the templates or the table, networks written at once,
   special-purpose addresses and those no database knows given the numbers of their own
   templates. The enricher writes them into its events with no tuple made per address.

Most of what is left per address is Python objects: the ten fields written into each
event, the network's text, and the memory they are read from (random addresses touch
templates all over it).

The templates kept are bounded (:data:`TEMPLATES`), and dropped when a database is
reloaded (a new :class:`Batch` is made).
"""

from __future__ import annotations

import logging
import socket
from itertools import repeat
from typing import TYPE_CHECKING, Any, Final, cast

import numpy as np
import numpy.typing as npt

from portolan.enrich.answer import (
    NO_PLACE,
    Answer,
    Attrs,
    Columns,
    Place,
    special,
    special_place,
)
from portolan.enrich.special import V4_RANGES
from portolan.enrich.tree import SearchTree

if TYPE_CHECKING:
    from portolan.enrich.asn import AsnTable
    from portolan.enrich.geoip import GeoIP

log = logging.getLogger(__name__)

I64 = npt.NDArray[np.int64]
#: A file's search tree, and the record and prefix length each address ends on there.
Walk = tuple[SearchTree, I64, npt.NDArray[np.int8]]

#: Templates kept (one per combination of records met) before they are dropped.
TEMPLATES: Final = 262_144
#: The table that finds most templates of a batch with numpy has ``2**SLOT_BITS`` slots
#: (12 bytes each).
SLOT_BITS: Final = 19
#: The ASN table's ranges are first narrowed down by blocks of ``2**(32 - BLOCK_BITS)``
#: addresses.
BLOCK_BITS: Final = 18
_HASH: Final = np.uint64(0x9E3779B97F4A7C15)  # 2**64 / golden ratio: spreads the keys

_PTON: Final = socket.inet_pton
_AF_INET: Final = socket.AF_INET
_SPECIAL_STARTS: Final = np.array([lo for lo, _, _ in V4_RANGES], np.int64)
_SPECIAL_ENDS: Final = np.array([hi for _, hi, _ in V4_RANGES], np.int64)


#: The template numbers of the answer of no database, and of the first special-purpose
#: block (see :class:`_Templates`).
NOWHERE: Final = 0
SPECIAL: Final = 1


def _objects(values: list[Any], size: int = 0) -> npt.NDArray[np.object_]:
    """A numpy array of these objects (tuples kept whole, not made a dimension), then
    None up to ``size``."""
    out = np.full(max(size, len(values)), None, object)
    for i, value in enumerate(values):
        out[i] = value
    return out


def _special_blocks() -> npt.NDArray[np.int8]:
    """For each /16: the row of ``V4_RANGES`` that holds it whole, -1 when none holds any
    of it, -2 when some of it is special-purpose."""
    out = np.full(1 << 16, -1, np.int8)
    for row, (lo, hi, _) in enumerate(V4_RANGES):
        first, last = lo >> 16, hi >> 16
        whole_first = first if lo & 0xFFFF == 0 else first + 1
        whole_last = last if hi & 0xFFFF == 0xFFFF else last - 1
        for block in (first, last):
            if not whole_first <= block <= whole_last:
                out[block] = -2
        if whole_first <= whole_last:
            out[whole_first:whole_last + 1] = row
    return out


_SPECIAL_BLOCKS: Final = _special_blocks()


def _special_rows(nums: I64) -> I64:
    """The row of ``V4_RANGES`` of each address (-1: not special-purpose)."""
    rows: I64 = _SPECIAL_BLOCKS[nums >> 16].astype(np.int64)
    some = np.flatnonzero(rows == -2)
    if some.size:
        part = nums[some]
        at = np.searchsorted(_SPECIAL_STARTS, part, side="right") - 1
        inside = (at >= 0) & (part <= _SPECIAL_ENDS[np.maximum(at, 0)])
        rows[some] = np.where(inside, at, -1)
    return rows


class _Ranges:
    """The IPv4 ranges of the ASN table, arranged for searching a batch at once.

    Row 0 is a sentinel before every address, and ranges of AS 0 (not announced) end
    before they start: an address is in the row ``i`` of the last start at or before it
    when it is not after ``ends[i]``. For each block of 16,384 addresses (``/18``) the rows
    that can hold its addresses are known in advance (2 MB); the batch is bisected inside
    them, every address at once (a bisection per address, as ``searchsorted`` does it,
    waits for the memory on every step)."""

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
        distinct, which = np.unique(self.asns, return_inverse=True)
        self.asn_numbers: npt.NDArray[np.object_] = _objects(distinct.tolist())[which]
        """The AS of each row, as Python integers (one per AS, shared by the answers);
        None in row 0."""
        self.asn_numbers[0] = None
        shift = 32 - BLOCK_BITS
        blocks: I64 = np.arange(1 << BLOCK_BITS, dtype=np.int64) << shift
        self.first = (np.searchsorted(self.starts, blocks, side="right") - 1).astype(np.int32)
        self.last = (np.searchsorted(self.starts, blocks + ((1 << shift) - 1), side="right")
                     - 1).astype(np.int32)

    def rows(self, nums: I64) -> I64:
        """The row of the last start at or before each address."""
        block = nums >> (32 - BLOCK_BITS)
        low: I64 = self.first[block].astype(np.int64)
        high: I64 = self.last[block].astype(np.int64)
        open_ = np.flatnonzero(low < high)
        if not open_.size:
            return low
        starts = self.starts
        lo, hi, n = low[open_], high[open_], nums[open_]
        # as many halvings as the most rows to choose from need (those already found
        # stay where they are): fewer numpy calls than setting the others aside
        for _ in range(int((hi - lo).max()).bit_length()):
            mid = (lo + hi + 1) >> 1
            after = starts[mid] <= n
            lo = np.where(after, mid, lo)
            hi = np.where(after, hi, mid - 1)
        low[open_] = lo
        return low


class _Templates:
    """The templates met so far, numbered, each field in a numpy array: a batch gathers
    the fields of its addresses' templates at once.

    The first numbers are those of the answers without a template: no database answered
    (:data:`NOWHERE`), and each special-purpose block (``SPECIAL + `` its row in
    ``V4_RANGES``). ``geo_db`` is kept as a number in :attr:`labels` (0: None)."""

    def __init__(self, slot_bits: int = SLOT_BITS) -> None:
        self.slot_bits = slot_bits
        self.numbers: dict[object, int] = {}
        """The number of each template, by the record of the one file, or by the records
        of every file (several files, or AS data in one)."""
        self.labels: list[str | None] = [None]
        self.label_objects = _objects(self.labels)
        """:attr:`labels` as an array."""
        self._label_numbers: dict[str | None, int] = {None: 0}
        self.size = SPECIAL + len(V4_RANGES)
        capacity = 1024
        self.place = _objects([NO_PLACE, *(special_place(label) for _, _, label in V4_RANGES)],
                              capacity)
        self.pairs = _objects([None, *(special(label)[9] for _, _, label in V4_RANGES)],
                              capacity)
        """The ``attrs`` to add, as pairs (those of :attr:`place` are a dictionary)."""
        self.label_files = np.zeros(capacity, np.int32)
        """``geo_db`` when the AS is not from the table."""
        self.label_table = np.zeros(capacity, np.int32)
        """``geo_db`` when the AS is from the table."""
        self.asn = _objects([], capacity)
        """The AS from the files, and its organisation."""
        self.as_org = _objects([], capacity)
        self.source = np.full(capacity, -1, np.int64)
        """The file that gave the AS: its index in the walks (-1: none did)."""
        self.attrs: dict[Attrs, dict[str, Any]] = {}
        """The ``attrs`` of the places as one dictionary per distinct value."""
        self.texts: dict[str, str] = {}
        """The names of the places, one string per distinct value."""
        self._coordinates: dict[float | str, float] = {}
        self._slot_keys: I64 | None = None
        self._slot_numbers: npt.NDArray[np.int32] | None = None

    def find(self, keys: I64) -> tuple[I64, I64]:
        """For integer keys: the number of each one's template where the table of
        ``2**slot_bits`` slots says it (-1 elsewhere: ask :attr:`numbers`), and its slot.

        The table is a cache of :attr:`numbers` searched with numpy: a key's slot is a
        hash of it, and holds the last key put there (:meth:`remember`)."""
        if self._slot_keys is None or self._slot_numbers is None:
            self._slot_keys = np.full(1 << self.slot_bits, -1, np.int64)
            self._slot_numbers = np.zeros(1 << self.slot_bits, np.int32)
        hashed = (keys.astype(np.uint64) * _HASH) >> np.uint64(64 - self.slot_bits)
        slot: I64 = hashed.astype(np.int64)
        found: I64 = np.where(self._slot_keys[slot] == keys, self._slot_numbers[slot], -1)
        return found, slot

    def remember(self, keys: I64, numbers: I64, slots: I64) -> None:
        """Put these keys and their numbers into the table, in their slots."""
        assert self._slot_keys is not None and self._slot_numbers is not None
        self._slot_keys[slots] = keys
        self._slot_numbers[slots] = numbers

    def __len__(self) -> int:
        return len(self.numbers)

    def coordinate(self, value: float | None) -> float | None:
        """The coordinate of a place, one object per distinct value."""
        if type(value) is not float:
            return value
        # a zero by its text: -0.0 equals 0.0, but is not written the same
        return self._coordinates.setdefault(value or repr(value), value)

    def label(self, text: str | None) -> int:
        """The number of a ``geo_db`` value."""
        number = self._label_numbers.get(text)
        if number is None:
            number = self._label_numbers[text] = len(self.labels)
            self.labels.append(text)
            self.label_objects = _objects(self.labels)
        return number

    def add(self, key: object, place: Place, pairs: Attrs | None, label_files: str | None,
            label_table: str | None, asn: int | None, as_org: str | None,
            source: int) -> int:
        """The number of a new template."""
        number = self.numbers[key] = self.size
        self.size += 1
        if number == len(self.place):  # full: twice as large
            for name in ("place", "pairs", "label_files", "label_table", "asn", "as_org",
                         "source"):
                column = getattr(self, name)
                setattr(self, name, np.concatenate((column, np.full_like(column, None
                                                    if column.dtype == object else 0))))
        self.place[number] = place
        self.pairs[number] = pairs
        self.label_files[number] = self.label(label_files)
        self.label_table[number] = self.label(label_table)
        self.asn[number] = asn
        self.as_org[number] = as_org
        self.source[number] = source
        return number


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
        # the AS may come from a file: each address's network comes from there or the table
        self._file_asn = any(geo.files[i].provides_asn for i, _ in trees)
        self._templates = _Templates()
        self.template_limit = TEMPLATES
        """Templates kept before they are all dropped."""
        table = geo.asn_table
        self._ranges = _Ranges(table) if table is not None and len(table.v4.starts) else None

    def close(self) -> None:
        for _, tree in self.trees or ():
            tree.close()
        self.trees = None

    def lookup(self, ips: list[str]) -> list[Answer]:
        """The answer for each address, in order."""
        return self.columns(ips).answers()

    def columns(self, ips: list[str]) -> Columns:
        """The answers for the addresses, in order, field by field."""
        geo = self.geo
        if self.trees is None:
            return Columns.of([geo._lookup(ip) for ip in ips])
        try:
            packed = b"".join(map(_PTON, repeat(_AF_INET, len(ips)), ips))
        except (OSError, ValueError, TypeError):
            return self._mixed(ips)
        return self._v4(ips, np.frombuffer(packed, ">u4").astype(np.int64))

    def _mixed(self, ips: list[str]) -> Columns:
        """A batch with some addresses that are not plain IPv4."""
        where: list[int] = []
        words: list[bytes] = []
        others: list[int] = []
        for i, ip in enumerate(ips):
            try:
                words.append(_PTON(_AF_INET, ip))
            except (OSError, ValueError, TypeError):
                others.append(i)
            else:
                where.append(i)
        parts = [(others, Columns.of([self.geo._lookup(ips[i]) for i in others]))]
        if where:
            nums = np.frombuffer(b"".join(words), ">u4").astype(np.int64)
            parts.append((where, self._v4([ips[i] for i in where], nums)))
        return Columns.merged(len(ips), parts)

    def _v4(self, ips: list[str], nums: I64) -> Columns:
        """Answers for IPv4 addresses (``ips``, and their values ``nums``)."""
        assert self.trees is not None
        walks = [(tree, *tree.lookup(nums)) for _, tree in self.trees]
        damaged = np.zeros(len(nums), bool)
        for tree, node, _ in walks:
            damaged |= node < tree.node_count
        if damaged.any():  # the file's reader says what is wrong (or reads it otherwise)
            bad = np.flatnonzero(damaged).tolist()
            parts = [(bad, Columns.of([self.geo._lookup(ips[i]) for i in bad]))]
            good = np.flatnonzero(~damaged)
            if good.size:
                parts.append((good.tolist(), self._answer(
                    [ips[i] for i in good.tolist()], nums[good],
                    [(t, node[good], pre[good]) for t, node, pre in walks])))
            return Columns.merged(len(ips), parts)
        return self._answer(ips, nums, walks)

    def _answer(self, ips: list[str], nums: I64, walks: list[Walk]) -> Columns:
        if len(self._templates) >= self.template_limit:
            self._templates = _Templates(self._templates.slot_bits)
        templates = self._templates
        n = len(nums)
        number = self._numbers(ips, walks)
        # -- the network, and geo_db: from the file that gave the AS, or from the table --
        length = np.full(n, -1, np.int64)  # -1: no network
        ranges = self._ranges
        if ranges is not None:
            at = ranges.rows(nums)
            hit = nums <= ranges.ends[at]
        else:
            at = np.zeros(n, np.int64)
            hit = np.zeros(n, bool)
        from_file: npt.NDArray[np.bool_] | None = None
        if self._file_asn:
            source = templates.source[number]
            for w, (_, _, prefix) in enumerate(walks):
                mine = source == w
                length[mine] = prefix[mine]
            from_file = source >= 0
            hit &= ~from_file
        if hit.any():
            assert ranges is not None
            bits = _block_bits(nums, ranges.starts[at], ranges.ends[at],
                               ranges.start_zeros[at], ranges.end_ones[at])
            length = np.where(hit, 32 - bits, length)
        label = np.where(hit, templates.label_table[number], templates.label_files[number])
        # -- no database answered; special-purpose addresses -----------------------------
        special = _special_rows(nums)
        nowhere = label == 0
        blank = nowhere | (special >= 0)
        if blank.any():
            number = number.copy()
            number[nowhere] = NOWHERE
            where = np.flatnonzero(special >= 0)
            number[where] = SPECIAL + special[where]
            length[blank] = -1
            label[blank] = 0
            hit &= ~blank
            if from_file is not None:
                from_file &= ~blank
        # -- the AS -----------------------------------------------------------------------
        if from_file is None:  # the table's, or none: a row of it for each address
            row = np.where(hit, at, 0)  # row 0: none
            asn = ranges.asn_numbers[row].tolist() if ranges is not None else [None] * n
            org = ranges.orgs[row].tolist() if ranges is not None else [None] * n
        else:
            asn_of, org_of = templates.asn[number], templates.as_org[number]
            asn_of[~from_file] = None
            org_of[~from_file] = None
            if ranges is not None:
                asn_of[hit] = ranges.asn_numbers[at[hit]]
                org_of[hit] = ranges.orgs[at[hit]]
            asn, org = asn_of.tolist(), org_of.tolist()
        shift = np.where(length >= 0, 32 - length, 32)
        return Columns(templates.place[number].tolist(),
                       lambda: templates.pairs[number].tolist(),
                       asn, org, _networks((nums >> shift) << shift, length),
                       templates.label_objects[label].tolist())

    def _numbers(self, ips: list[str], walks: list[Walk]) -> I64:
        """The number of each address's template (made the first time it is met)."""
        templates = self._templates
        get = templates.numbers.get
        if len(walks) <= 1:  # keyed by the record of the one file
            nodes = walks[0][1] if walks else np.zeros(len(ips), np.int64)
            number, slot = templates.find(nodes)
            missed = np.flatnonzero(number < 0)
            if missed.size:
                for i, key in zip(missed.tolist(), nodes[missed].tolist(), strict=True):
                    found = get(key)
                    if found is None:  # never met
                        found = self._template(key, ips[i])
                    number[i] = found
                templates.remember(nodes[missed], number[missed], slot[missed])
            return number
        # keyed by the records of every file
        stacked = np.stack([node for _, node, _ in walks], axis=1)
        unique, first, inverse = np.unique(stacked, axis=0, return_index=True,
                                           return_inverse=True)
        keys = [tuple(row) for row in unique.tolist()]
        number = np.fromiter(map(get, keys, repeat(-1)), np.int64, len(keys))
        for i in np.flatnonzero(number < 0).tolist():
            number[i] = self._template(keys[i], ips[int(first[i])])
        return number[inverse.reshape(-1)]

    def _template(self, key: object, ip: str) -> int:
        """The number of a new template, that of the address ``ip``."""
        geo = self.geo
        t = geo._files(4, ip)
        source = -1
        if t.asn_file >= 0:
            source = [i for i, _ in self.trees or ()].index(t.asn_file)
        templates = self._templates
        attrs = None
        if t.extra is not None:
            attrs = templates.attrs.get(t.extra)
            if attrs is None:
                attrs = templates.attrs[t.extra] = dict(t.extra)
        # The values of earlier templates are shared: the answers of a batch then touch
        # fewer distinct objects in memory (most of their cost, for random addresses).
        text = templates.texts.setdefault
        place = (None if t.country is None else text(t.country, t.country),
                 None if t.country_name is None else text(t.country_name, t.country_name),
                 None if t.city is None else text(t.city, t.city),
                 templates.coordinate(t.lat), templates.coordinate(t.lon), attrs)
        return templates.add(
            key, place, t.extra,
            geo._label(t.place_db, t.asn_db), geo._label(t.place_db, geo.asn_label),
            t.asn, t.as_org, source)


def _texts(texts: list[str]) -> npt.NDArray[np.uint32]:
    """Each text (up to four ASCII characters) as four bytes, NUL after the text."""
    out = np.zeros((len(texts), 4), np.uint8)
    for i, text in enumerate(texts):
        out[i, :len(text)] = np.frombuffer(text.encode("ascii"), np.uint8)
    return out.view(np.uint32).reshape(len(texts))


#: The text of each octet, followed by a dot but for the last, and of each prefix length
#: (then, last, a newline alone).
_OCTETS: Final = _texts([f"{n}." for n in range(256)])
_LAST_OCTETS: Final = _texts([f"{n}" for n in range(256)])
_PREFIXES: Final = _texts([*(f"/{n}\n" for n in range(33)), "\n"])


def _networks(lows: I64, lengths: I64) -> list[str | None]:
    """``a.b.c.d/n`` for each network (None where the length is -1), formatted at once:
    each text is put together in 20 bytes from those of its numbers (nothing but its
    newline where there is no network), then the bytes left empty are taken out."""
    parts = np.empty((len(lows), 5), np.uint32)
    parts[:, 0] = _OCTETS[lows >> 24]
    parts[:, 1] = _OCTETS[(lows >> 16) & 255]
    parts[:, 2] = _OCTETS[(lows >> 8) & 255]
    parts[:, 3] = _LAST_OCTETS[lows & 255]
    parts[:, 4] = _PREFIXES[lengths]  # the last one, for -1: a newline alone
    none = np.flatnonzero(lengths < 0)
    parts[none, :4] = 0
    texts = cast("list[str | None]",
                 parts.tobytes().translate(None, b"\0").decode("ascii").split("\n"))
    texts.pop()  # after the last newline
    for i in none.tolist():
        texts[i] = None
    return texts


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
