"""Bounded history of columnar batches: about 8 bytes of RAM per stored sample.

A :class:`BlockRing` keeps the last ``capacity`` rows of one batch schema: one float64
timestamp per row and one float64 per series, in preallocated arrays written in place.
A series' history is a strided read of its column. :class:`SeriesHistory` groups the rings
of one host (a schema per category, a new one when the set of series changes) under a cap.
"""

from __future__ import annotations

from array import array
from typing import Iterator

from ..protocol.batch import BatchSchema

DEFAULT_HISTORY_ROWS = 1000


class BlockRing:
    __slots__ = ("schema", "capacity", "width", "_ts", "_values", "_flags", "_next", "_latest", "count", "live",
                 "unlabeled_columns", "unlabeled_keys")

    def __init__(self, schema: BatchSchema, capacity: int = DEFAULT_HISTORY_ROWS) -> None:
        self.schema = schema
        self.capacity = capacity
        self.width = schema.width
        # the series without labels (what analysis reads): their columns and their keys
        self.unlabeled_columns = [i for i, s in enumerate(schema.series) if not s.labels]
        self.unlabeled_keys = [s.key for s in schema.series if not s.labels]
        self._ts = array("d", bytes(8 * capacity))
        self._values = array("d", bytes(8 * capacity * self.width))
        self._flags = bytearray(capacity)      # 1: the row was backfilled
        self._next = 0
        self._latest = -1                      # newest live (not backfilled) row
        self.count = 0
        self.live = True   # False once evicted from its SeriesHistory

    def append(self, ts: float, values: array, backfilled: bool = False) -> None:
        i = self._next
        self._ts[i] = ts
        w = self.width
        self._values[i * w:(i + 1) * w] = values
        self._flags[i] = backfilled
        if not backfilled:
            self._latest = i
        elif i == self._latest:
            self._latest = -1                  # the live row was overwritten: fall back to the newest
        self._next = (i + 1) % self.capacity
        if self.count < self.capacity:
            self.count += 1

    def _rows(self) -> Iterator[int]:
        start = (self._next - self.count) % self.capacity
        return ((start + k) % self.capacity for k in range(self.count))

    def column(self, index: int, since: float = float("-inf")) -> list[tuple[float, float, bool]]:
        """(timestamp, value, backfilled) of one series, in arrival order."""
        ts, vals, flags, w = self._ts, self._values, self._flags, self.width
        return [(ts[r], vals[r * w + index], bool(flags[r])) for r in self._rows() if ts[r] >= since]

    def last(self) -> tuple[float, array] | None:
        """The newest live row (backfilled rows are older by nature)."""
        r = self._latest if self._latest >= 0 else (self._next - 1) % self.capacity
        if not self.count:
            return None
        return self._ts[r], self._values[r * self.width:(r + 1) * self.width]

    def last_at(self, indices: list[int]) -> tuple[float, list[float]] | None:
        """Like :meth:`last`, but only the values at ``indices`` (no copy of the whole row)."""
        if not self.count:
            return None
        r = self._latest if self._latest >= 0 else (self._next - 1) % self.capacity
        vals, base = self._values, r * self.width
        return self._ts[r], [vals[base + i] for i in indices]

    @property
    def nbytes(self) -> int:
        return self._ts.itemsize * len(self._ts) + self._values.itemsize * len(self._values) + len(self._flags)


class SeriesHistory:
    """The rings of one host, newest schema per category first; at most ``max_series`` series."""

    def __init__(self, capacity: int = DEFAULT_HISTORY_ROWS, max_series: int = 10_000) -> None:
        self.capacity = capacity
        self.max_series = max_series
        self._rings: dict[bytes, BlockRing] = {}
        self.series_count = 0

    def ring_for(self, schema: BatchSchema) -> BlockRing | None:
        """The ring of ``schema``, created on first use; None when it would pass the series cap."""
        ring = self._rings.get(schema.raw)
        if ring is None:
            if self.series_count + schema.width > self.max_series:
                if not self._evict_superseded(schema.category, schema.width):
                    return None
            ring = self._rings[schema.raw] = BlockRing(schema, self.capacity)
            self.series_count += schema.width
        return ring

    def _evict_superseded(self, category: str, width: int) -> bool:
        """Drop older schemas of the category a new schema replaces (a NIC came and went).

        Only when that makes room for ``width`` more series; returns whether it did.
        """
        stale = [raw for raw, r in self._rings.items() if r.schema.category == category]
        freed = sum(self._rings[raw].width for raw in stale)
        if self.series_count - freed + width > self.max_series:
            return False
        for raw in stale:
            ring = self._rings.pop(raw)
            ring.live = False
            self.series_count -= ring.width
        return True

    def rings(self) -> list[BlockRing]:
        return list(self._rings.values())

    def query(self, key: str, since: float = float("-inf")) -> list[tuple[float, float, bool]]:
        """(timestamp, value, backfilled) of one series across its schemas, by time."""
        out: list[tuple[float, float, bool]] = []
        for ring in self._rings.values():
            idx = ring.schema.index_of(key)
            if idx is not None:
                out.extend(ring.column(idx, since))
        out.sort()
        return out

    def latest(self) -> dict[str, tuple[float, float, str, str]]:
        """series key -> (timestamp, value, category, unit) of the newest row of each ring."""
        out: dict[str, tuple[float, float, str, str]] = {}
        for ring in self._rings.values():
            last = ring.last()
            if last is None:
                continue
            ts, row = last
            cat = ring.schema.category
            for spec, v in zip(ring.schema.series, row):
                prev = out.get(spec.key)
                if prev is None or prev[0] <= ts:
                    out[spec.key] = (ts, v, cat, spec.unit)
        return out

    def latest_unlabeled(self) -> dict[str, float]:
        """series key -> newest value, for series without labels only (what analysis reads);
        the same values :meth:`latest` gives for those keys, without building the rest."""
        newest: dict[str, tuple[float, float]] = {}
        for ring in self._rings.values():
            if not ring.unlabeled_columns:
                continue
            last = ring.last_at(ring.unlabeled_columns)
            if last is None:
                continue
            ts, row = last
            for key, v in zip(ring.unlabeled_keys, row):
                prev = newest.get(key)
                if prev is None or prev[0] <= ts:
                    newest[key] = (ts, v)
        return {k: v[1] for k, v in newest.items()}

    @property
    def nbytes(self) -> int:
        return sum(r.nbytes for r in self._rings.values())

    @property
    def samples(self) -> int:
        return sum(r.count * r.width for r in self._rings.values())
