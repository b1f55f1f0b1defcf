"""The search tree of a MaxMind DB (``.mmdb``) file, walked for many IPv4 addresses at once.

A ``.mmdb`` file starts with a binary tree: each node is two records (left for a 0 bit,
right for a 1 bit) of 24, 28 or 32 bits; a record below ``node_count`` is the next node,
``node_count`` itself means "no data", and a larger one points into the data section.
:class:`SearchTree` memory-maps the file and follows the bits of a whole array of
addresses with numpy, one level of the tree per step, for the addresses still inside the
tree. A table of where the first :data:`TOP_BITS` bits lead (built on first use, in a
tenth of a second, 5 MB) replaces the first steps: each step waits for the memory (the
tree is tens of megabytes, read at random), and most networks are longer than /20.

The answer for each address is the record it ends on (what ``maxminddb`` decodes for it)
and the prefix length of its network, exactly as ``Reader.get_with_prefix_len`` gives
them. Decoding the record is left to the caller (who decodes each distinct one once).
A damaged tree cannot make it read outside the tree: only records below ``node_count``
are followed, at most 32 times.
"""

from __future__ import annotations

import mmap
import os
import struct
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt

#: Bits of the address resolved by the precomputed table (5 MB for 20 bits).
TOP_BITS: Final = 20

#: Fewer addresses than this still inside the tree are walked one at a time.
FEW: Final = 32

_WORD: Final = struct.Struct(">I").unpack_from
U32 = npt.NDArray[np.uint32]
I64 = npt.NDArray[np.int64]


def _record(tree: mmap.mmap | bytes, size: int, node: int, bit: int) -> int:
    """Record ``bit`` (0: left, 1: right) of ``node``, for records of ``size`` bits."""
    v: int = _WORD(tree, node * (size // 4) + bit * (size // 8))[0]
    if size == 28:
        return v & 0x0FFFFFFF if bit else ((v & 0xF0) << 20) | (v >> 8)
    return v >> 8 if size == 24 else v


def first_networks(path: Path, node_count: int, record_size: int, ip_version: int, *,
                   count: int = 50, visits: int = 100_000) -> list[tuple[int, int]]:
    """The first ``count`` networks of the file that have data, in the order of their
    addresses (as (first address as an integer, prefix length)), found by walking the
    tree from its root, at most ``visits`` records, and never deeper than an address: a
    damaged tree that loops ends the walk early, with what it found. (``maxminddb``'s own
    walk through every network may corrupt its memory on such a tree.) As in that walk,
    the IPv4 networks of an IPv6 tree are found once, under ``::/96``, not again where
    the tree leads to them from other prefixes (``::ffff:0:0/96``...).
    Raises ValueError when the file is shorter than its tree, or OSError."""
    if record_size not in (24, 28, 32):
        raise ValueError(f"record size {record_size} is not 24, 28 or 32 bits")
    bits = 128 if ip_version == 6 else 32
    found: list[tuple[int, int]] = []
    with path.open("rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        if len(mm) < node_count * record_size // 4:
            raise ValueError("shorter than its search tree")
        ipv4 = -1  # the node of ::/96 in an IPv6 tree
        if ip_version == 6:
            ipv4 = 0
            for _ in range(96):
                if ipv4 >= node_count:
                    break
                ipv4 = _record(mm, record_size, ipv4, 0)
        todo = [(0, 0, 0)]  # (record, first address, depth): the root
        while todo and len(found) < count and visits > 0:
            visits -= 1
            record, address, depth = todo.pop()
            if record > node_count:
                found.append((address, depth))
            elif record < node_count and depth < bits and (record != ipv4 or address == 0):
                step = 1 << (bits - depth - 1)
                todo.append((_record(mm, record_size, record, 1), address | step, depth + 1))
                todo.append((_record(mm, record_size, record, 0), address, depth + 1))
    return found


class SearchTree:
    """The IPv4 part of one file's search tree; see the module docstring."""

    def __init__(self, path: Path, node_count: int, record_size: int, ip_version: int,
                 identity: tuple[int, int, int, int] | None = None) -> None:
        """Raises ValueError when the file cannot be walked here, or OSError."""
        if record_size not in (24, 28, 32):
            raise ValueError(f"record size {record_size} is not 24, 28 or 32 bits")
        self.node_count = node_count
        self.record_size = record_size
        tree_bytes = node_count * record_size // 4
        with path.open("rb") as fh:
            st = os.fstat(fh.fileno())
            if identity is not None and identity != (
                    st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns):
                raise ValueError("replaced since it was opened")
            if st.st_size < tree_bytes + 16:  # the tree, then 16 bytes before the data
                raise ValueError("shorter than its search tree")
            self._mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        # big-endian 32-bit words at every byte offset of the tree: one gather per step
        self._words: U32 = np.ndarray((tree_bytes,), dtype=">u4", buffer=self._mm,
                                      strides=(1,))
        self._start = 0
        if ip_version == 6:  # IPv4 addresses are ::a.b.c.d: 96 zero bits first
            node = 0
            for _ in range(96):
                if node >= node_count:
                    break
                node = int(self._step(np.array([node], np.int64), np.zeros(1, np.int64))[0])
            self._start = node
        self._top_node: npt.NDArray[np.uint32] | None = None
        self._top_prefix: npt.NDArray[np.int8] | None = None

    def _step(self, node: I64, bit: I64) -> I64:
        """The records that ``node`` (each below ``node_count``) has for ``bit``."""
        size = self.record_size
        word: U32 = self._words[node * (size // 4) + bit * (size // 8)]
        v = word.astype(np.int64)
        out: I64
        if size == 28:  # left: 24 bits, then the high half of the middle byte on top
            out = np.where(bit != 0, v & 0x0FFFFFFF, ((v & 0xF0) << 20) | (v >> 8))
        elif size == 24:
            out = v >> 8
        else:
            out = v
        return out

    def _record(self, node: int, bit: int) -> int:
        """:meth:`_step` for one node."""
        return _record(self._mm, self.record_size, node, bit)

    def _walk(self, nums: I64, node: I64, depth: int, prefix: npt.NDArray[np.int8],
              stop: int = 32) -> None:
        """Follow bits ``depth`` to ``stop`` of ``nums``, from ``node``; both ``node`` and
        ``prefix`` are changed in place (records and prefix lengths reached)."""
        count = self.node_count
        where = np.flatnonzero(node < count)  # the addresses still inside the tree
        at = node[where]
        bits = nums[where]
        while depth < stop:
            if where.size < FEW:  # a step with numpy costs more than these few steps
                self._walk_each(nums, node, depth, prefix, stop, where, at)
                return
            at = self._step(at, (bits >> (31 - depth)) & 1)
            depth += 1
            inside = at < count
            out = ~inside
            done = where[out]
            node[done] = at[out]
            prefix[done] = depth
            where, at, bits = where[inside], at[inside], bits[inside]
        node[where] = at  # still inside after ``stop`` bits

    def _walk_each(self, nums: I64, node: I64, depth: int, prefix: npt.NDArray[np.int8],
                   stop: int, where: I64, at: I64) -> None:
        """:meth:`_walk` for the addresses ``where`` (now at ``at``), one at a time."""
        count = self.node_count
        record = self._record
        for i, n, a in zip(where.tolist(), nums[where].tolist(), at.tolist(), strict=True):
            d = depth
            while a < count and d < stop:
                a = record(a, (n >> (31 - d)) & 1)
                d += 1
            node[i] = a
            if a >= count:
                prefix[i] = d

    def _table(self) -> tuple[npt.NDArray[np.uint32], npt.NDArray[np.int8]]:
        """Where each value of the first :data:`TOP_BITS` bits leads, and the prefix
        length there (:data:`TOP_BITS` while still inside the tree): made one level at a
        time, each entry of a level followed by its two children."""
        if self._top_node is None or self._top_prefix is None:
            count = self.node_count
            node = np.array([self._start], np.int64)
            prefix = np.array([TOP_BITS if self._start < count else 0], np.int8)
            for depth in range(TOP_BITS):
                node, prefix = np.repeat(node, 2), np.repeat(prefix, 2)
                inside = np.flatnonzero(node < count)
                node[inside] = reached = self._step(node[inside], inside & 1)
                prefix[inside[reached >= count]] = depth + 1
            self._top_node, self._top_prefix = node.astype(np.uint32), prefix
        return self._top_node, self._top_prefix

    def lookup(self, nums: I64) -> tuple[I64, npt.NDArray[np.int8]]:
        """For IPv4 addresses given as integers: the record each one ends on (above
        ``node_count``: it has data; ``node_count``: none; below: the tree is damaged
        there) and its prefix length."""
        top_node, top_prefix = self._table()
        index = nums >> (32 - TOP_BITS)
        node = top_node[index].astype(np.int64)
        prefix = top_prefix[index]
        self._walk(nums, node, TOP_BITS, prefix)
        return node, prefix

    def close(self) -> None:
        self._top_node = self._top_prefix = None
        del self._words
        try:
            self._mm.close()
        except BufferError:  # an array of the caller still views the file; GC closes it
            pass
