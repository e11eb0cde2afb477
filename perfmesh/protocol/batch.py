"""Columnar metric batches: one message per sample tick, never one per metric.

A batch body is ``{"schema": bin, "ts": float, "values": bin}``:

- ``schema`` is the packed list ``[category, [[name, unit, {label: value}], ...]]``. It changes
  only when the set of series changes (a disk appears), so receivers cache the parsed form
  keyed by these bytes and pay for parsing once.
- ``values`` is little-endian float64, one per series, in schema order.
"""

from __future__ import annotations

import math
import sys
from array import array
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Iterable, Mapping, Sequence

from ..errors import WireError
from ..model.metric import CATEGORIES, METRIC_NAME_RE, PerformanceMetric, series_key
from . import wire

MAX_SERIES_PER_BATCH = 4096
MAX_SCHEMA_BYTES = 256 * 1024
MAX_LABELS = 8
MAX_LABEL_KEY_LEN = 64
MAX_LABEL_VALUE_LEN = 128
MAX_UNIT_LEN = 16
BODY_KEYS = frozenset({"schema", "ts", "values"})
NAME_RE = METRIC_NAME_RE
_BIG_ENDIAN = sys.byteorder == "big"


@dataclass(frozen=True)
class SeriesSpec:
    name: str
    unit: str
    labels: Mapping[str, str]
    key: str


@dataclass(eq=False)
class BatchSchema:
    """The parsed, validated form of a schema blob. A receiver that caches something per schema
    keeps that cache itself (keyed by ``raw``), typed."""

    raw: bytes
    category: str
    series: tuple[SeriesSpec, ...]

    @property
    def width(self) -> int:
        return len(self.series)

    @cached_property
    def columns(self) -> dict[str, int]:
        """Series key -> column, built on first use."""
        return {s.key: i for i, s in enumerate(self.series)}

    def index_of(self, key: str) -> int | None:
        return self.columns.get(key)


def encode_schema(category: str, metrics: Iterable[PerformanceMetric]) -> bytes:
    return wire.pack([category, [[m.name, m.unit, dict(m.context)] for m in metrics]])


def parse_schema(raw: bytes) -> BatchSchema:
    """Validate an untrusted schema blob."""
    if len(raw) > MAX_SCHEMA_BYTES:
        raise WireError("too_large", f"schema of {len(raw)} bytes exceeds {MAX_SCHEMA_BYTES}")
    data = wire.unpack(raw, MAX_SCHEMA_BYTES)
    if type(data) is not list or len(data) != 2 or type(data[1]) is not list:
        raise WireError("bad_schema", "batch schema must be [category, [[name, unit, labels], ...]]")
    category, rows = data
    if category not in CATEGORIES:
        raise WireError("bad_category", f"category {category!r:.40} is not one of {CATEGORIES}")
    if len(rows) > MAX_SERIES_PER_BATCH:
        raise WireError("too_many_series", f"{len(rows)} series in one batch exceeds {MAX_SERIES_PER_BATCH}")
    series = []
    seen = set()
    for row in rows:
        spec = _parse_series(row)
        if spec.key in seen:
            raise WireError("duplicate_series", f"series {spec.key!r:.200} appears twice in one batch")
        seen.add(spec.key)
        series.append(spec)
    return BatchSchema(raw, category, tuple(series))


def _parse_series(row: Any) -> SeriesSpec:
    if type(row) is not list or len(row) != 3:
        raise WireError("bad_schema", f"series entry must be [name, unit, labels], got {row!r:.80}")
    name, unit, labels = row
    if type(name) is not str or not NAME_RE.match(name):
        raise WireError("bad_name", f"metric name {name!r:.140} must match {NAME_RE.pattern}")
    if type(unit) is not str or len(unit) > MAX_UNIT_LEN:
        raise WireError("bad_unit", f"unit {unit!r:.40} of {name} must be a string of at most {MAX_UNIT_LEN} characters")
    if type(labels) is not dict or len(labels) > MAX_LABELS:
        raise WireError("bad_labels", f"labels of {name} must be a map of at most {MAX_LABELS} entries")
    for k, v in labels.items():
        if type(k) is not str or not NAME_RE.match(k) or len(k) > MAX_LABEL_KEY_LEN:
            raise WireError("bad_labels", f"label key {k!r:.80} of {name} must match {NAME_RE.pattern} and be at most {MAX_LABEL_KEY_LEN} long")
        if type(v) is not str or len(v) > MAX_LABEL_VALUE_LEN:
            raise WireError("bad_labels", f"label {k} of {name} must be a string of at most {MAX_LABEL_VALUE_LEN} characters, got {v!r:.80}")
    return SeriesSpec(name, unit, labels, series_key(name, labels))


class SchemaCache:
    """Parsed schemas by their raw bytes, bounded; a full cache is cleared, not grown."""

    def __init__(self, max_entries: int = 4096) -> None:
        self.max_entries = max_entries
        self._by_raw: dict[bytes, BatchSchema] = {}

    def get(self, raw: bytes) -> BatchSchema:
        schema = self._by_raw.get(raw)
        if schema is None:
            schema = parse_schema(raw)
            if len(self._by_raw) >= self.max_entries:
                self._by_raw.clear()
            self._by_raw[raw] = schema
        return schema

    def __len__(self) -> int:
        return len(self._by_raw)


def pack_values(values: Sequence[float]) -> bytes:
    arr = array("d", values)
    if _BIG_ENDIAN:  # pragma: no cover - no big-endian machine here
        arr.byteswap()
    return arr.tobytes()


def unpack_values(raw: Any, width: int) -> array:
    """Untrusted value blob -> float64 array of ``width`` finite values."""
    if type(raw) is not bytes or len(raw) != 8 * width:
        got = len(raw) if type(raw) is bytes else type(raw).__name__
        raise WireError("bad_values", f"values must be {8 * width} bytes ({width} float64), got {got}")
    arr = array("d")
    arr.frombytes(raw)
    if _BIG_ENDIAN:  # pragma: no cover
        arr.byteswap()
    if not math.isfinite(sum(arr)) and not all(map(math.isfinite, arr)):
        bad = next(i for i, v in enumerate(arr) if not math.isfinite(v))
        raise WireError("non_finite", f"value #{bad} is {arr[bad]!r}; only finite numbers are accepted")
    return arr


def make_body(schema_raw: bytes, ts: float, values: Sequence[float]) -> dict[str, Any]:
    return {"schema": schema_raw, "ts": ts, "values": pack_values(values)}


def check_body(body: Any) -> tuple[bytes, float, bytes]:
    """Shape check of an untrusted batch body; returns (schema_raw, ts, values_raw)."""
    if type(body) is not dict or body.keys() != BODY_KEYS:
        raise WireError("bad_body", "metric batch body must be a map with exactly schema, ts, values")
    raw, ts, values = body["schema"], body["ts"], body["values"]
    if type(raw) is not bytes:
        raise WireError("bad_body", f"batch schema must be bytes, got {type(raw).__name__}")
    if type(ts) is int:
        ts = float(ts)
    if type(ts) is not float or not math.isfinite(ts):
        raise WireError("bad_body", f"batch ts must be a finite number, got {ts!r:.40}")
    return raw, ts, values


class BatchEncoder:
    """Turns a list of metrics into a batch body, reusing the schema bytes while it holds."""

    def __init__(self) -> None:
        self._shape: tuple = ()
        self._raw = b""

    def encode(self, category: str, ts: float, metrics: Sequence[PerformanceMetric]) -> dict[str, Any]:
        shape = (category, *((m.name, m.unit, *m.context.items()) for m in metrics))
        if shape != self._shape:
            self._shape, self._raw = shape, encode_schema(category, metrics)
        return make_body(self._raw, ts, [m.value for m in metrics])


def decode_batch(body: Any, cache: SchemaCache) -> tuple[BatchSchema, float, array]:
    raw, ts, values = check_body(body)
    schema = cache.get(raw)
    return schema, ts, unpack_values(values, schema.width)


def batch_metrics(schema: BatchSchema, ts: float, values: array) -> list[dict[str, Any]]:
    """Row form of a batch (for JSON output and the library)."""
    return [
        {"category": schema.category, "name": s.name, "value": v, "unit": s.unit,
         "timestamp": ts, "labels": dict(s.labels)}
        for s, v in zip(schema.series, values)
    ]
