"""Prometheus remote write 1.0: the protobuf messages, encoded by hand.

``WriteRequest{repeated TimeSeries timeseries = 1}``, ``TimeSeries{repeated Label labels = 1;
repeated Sample samples = 2}``, ``Label{string name = 1; string value = 2}``,
``Sample{double value = 1; int64 timestamp = 2}`` (milliseconds). Four messages of two fields
each: a generated-code dependency would be larger than this module. Labels are sorted by name
and include ``__name__``, as the spec requires; a series' samples are sorted by time.

:class:`SeriesEncoder` keeps each series' encoded labels, so a request costs only its samples.
The body is compressed with :func:`perfmesh.export.snappy.compress`; the HTTP headers are
:data:`HEADERS`.
"""

from __future__ import annotations

import re
import struct
from typing import Iterable, Mapping, Sequence

from ..errors import PerfmeshError
from ..protocol.batch import BatchSchema
from .naming import NameCache
from .snappy import compress, read_uvarint, uvarint

HEADERS = {
    "Content-Encoding": "snappy",
    "Content-Type": "application/x-protobuf",
    "X-Prometheus-Remote-Write-Version": "0.1.0",
}
_DOUBLE = struct.Struct("<d")


class RemoteWriteError(PerfmeshError, ValueError):
    """A remote-write message that cannot be decoded."""


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field (wire type 2)."""
    return uvarint(number << 3 | 2) + uvarint(len(payload)) + payload


def encode_labels(labels: Mapping[str, str]) -> bytes:
    """The ``labels`` fields of a TimeSeries, sorted by name."""
    return b"".join(_field(1, _field(1, k.encode()) + _field(2, str(labels[k]).encode()))
                    for k in sorted(labels))


def encode_sample(value: float, ts_ms: int) -> bytes:
    """A ``samples`` field of a TimeSeries."""
    body = b"\x09" + _DOUBLE.pack(value) + b"\x10" + uvarint(ts_ms & 0xFFFFFFFFFFFFFFFF)
    return b"\x12" + uvarint(len(body)) + body


def encode_series(labels: bytes, samples: Iterable[tuple[int, float]]) -> bytes:
    """One ``timeseries`` field of a WriteRequest: encoded labels and (ts_ms, value) pairs."""
    body = labels + b"".join(encode_sample(v, ts) for ts, v in sorted(samples))
    return _field(1, body)


def encode_request(series: Iterable[tuple[bytes, Iterable[tuple[int, float]]]]) -> bytes:
    """The protobuf WriteRequest (uncompressed)."""
    return b"".join(encode_series(labels, samples) for labels, samples in series)


def write_body(series: Iterable[tuple[bytes, Iterable[tuple[int, float]]]]) -> bytes:
    """The HTTP body: the snappy-compressed WriteRequest."""
    return compress(encode_request(series))


_BAD_LABEL = re.compile(r"[^a-zA-Z0-9_]")


def prom_labels(host: str, labels: Mapping[str, str]) -> dict[str, str]:
    """A series' Prometheus labels: its own (names made valid) and ``host``, which wins."""
    out = {_BAD_LABEL.sub("_", k): v for k, v in labels.items()}
    out["host"] = host
    return out


class SeriesEncoder:
    """Turns ingested batches into remote-write series, with the names of ``/metrics``.

    Each (host, schema) is worked out once: which series are exported, their scale and their
    encoded labels. Bounded: past ``max_schemas`` the cache is cleared, not grown.
    """

    def __init__(self, max_schemas: int = 4096) -> None:
        self.max_schemas = max_schemas
        self.names = NameCache()
        self._plans: dict[tuple[str, bytes], list[tuple[int, bytes, float, float]]] = {}

    def plan(self, host: str, schema: BatchSchema) -> list[tuple[int, bytes, float, float]]:
        """[(index in the batch, encoded labels, scale, per)] of the exported series."""
        key = (host, schema.raw)
        plan = self._plans.get(key)
        if plan is None:
            plan = []
            for i, spec in enumerate(schema.series):
                name = self.names.get(spec.name, spec.unit, bool(spec.labels))
                if name is not None:
                    labels = {"__name__": name.name, **prom_labels(host, spec.labels)}
                    plan.append((i, encode_labels(labels), name.scale, name.per))
            if len(self._plans) >= self.max_schemas:
                self._plans.clear()
            self._plans[key] = plan
        return plan

    def rows(self, host: str, schema: BatchSchema, ts: float,
             values: Sequence[float]) -> list[tuple[bytes, int, float]]:
        """(encoded labels, ts in ms, value in base units) of every exported series."""
        ts_ms = int(round(ts * 1000))
        return [(labels, ts_ms, values[i] * scale / per) for i, labels, scale, per in self.plan(host, schema)]


def group(rows: Iterable[tuple[bytes, int, float]]) -> list[tuple[bytes, list[tuple[int, float]]]]:
    """Rows of many batches -> one series entry per label set, samples in time order."""
    by_series: dict[bytes, list[tuple[int, float]]] = {}
    for labels, ts_ms, value in rows:
        samples = by_series.get(labels)
        if samples is None:
            by_series[labels] = [(ts_ms, value)]
        else:
            samples.append((ts_ms, value))
    return list(by_series.items())


# ------------------------------------------------------------------ decoding (tests, tools)
def _fields(data: bytes) -> Iterable[tuple[int, int, object]]:
    pos = 0
    while pos < len(data):
        key, pos = _uvarint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _uvarint(data, pos)
            yield number, wire, value
        elif wire == 1:
            yield number, wire, data[pos:pos + 8]
            pos += 8
        elif wire == 2:
            n, pos = _uvarint(data, pos)
            if pos + n > len(data):
                raise RemoteWriteError(f"field {number} claims {n} bytes past the end; expected a complete message")
            yield number, wire, data[pos:pos + n]
            pos += n
        else:
            raise RemoteWriteError(f"wire type {wire} of field {number}; expected 0, 1 or 2")


def _uvarint(data: bytes, pos: int) -> tuple[int, int]:
    return read_uvarint(data, pos, RemoteWriteError)


def decode_request(data: bytes) -> list[tuple[dict[str, str], list[tuple[int, float]]]]:
    """A WriteRequest (uncompressed) -> [(labels, [(ts_ms, value), ...]), ...]."""
    out = []
    for number, _, ts in _fields(data):
        if number != 1:
            continue
        labels: dict[str, str] = {}
        samples: list[tuple[int, float]] = []
        for n, _, payload in _fields(ts):   # type: ignore[arg-type]
            parts = dict((k, v) for k, _, v in _fields(payload))   # type: ignore[arg-type]
            if n == 1:
                labels[parts.get(1, b"").decode()] = parts.get(2, b"").decode()   # type: ignore[union-attr]
            elif n == 2:
                value = _DOUBLE.unpack(parts.get(1, b"\0" * 8))[0]   # type: ignore[arg-type]
                ts_ms = parts.get(2, 0)
                samples.append((ts_ms - (1 << 64) if ts_ms >= 1 << 63 else ts_ms, value))   # type: ignore[operator]
        out.append((labels, samples))
    return out
