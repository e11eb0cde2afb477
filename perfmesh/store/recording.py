"""Recordings of the aggregator's stream: a compact, append-only file of length-prefixed records.

Layout (all integers little-endian)::

    magic  b"PMREC\\r\\n\\x1a" (8 bytes)  version u16  reserved u16
    record*                                  u32 length, u32 crc32 of the payload, payload

Every payload is one msgpack list (packed by the wire codec) whose first item is its type:

    [0, {info}]                                           the header record (always first)
    [1, schema_id, schema_raw]                            a batch schema, before its first use
    [2, recv_time, host, boot, seq, sent, schema_id, ts, values_raw]    one metric batch
    [3, recv_time, {event body}]                          one stream event (violation, host, ...)

A schema travels once per id; ids wrap at :data:`MAX_SCHEMAS` (a schema record with a known id
replaces it), so a reader keeps at most that many. Readers skip record types they do not know.
A file cut short by a crash is readable up to its last whole record: iteration raises
:class:`RecordingTruncated` (or :class:`RecordingCorrupt` for a bad crc or payload) only after
yielding every record before the damage, naming the file and the offset.
"""

from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Iterator

from ..errors import PerfmeshError, WireError
from ..protocol import wire

MAGIC = b"PMREC\r\n\x1a"
FORMAT_VERSION = 1
FILE_HEADER = struct.Struct("<8sHH")
RECORD_HEADER = struct.Struct("<II")
MAX_RECORD_BYTES = wire.MAX_FRAME_BYTES + 64 * 1024
MAX_SCHEMAS = 4096
T_INFO, T_SCHEMA, T_BATCH, T_EVENT = 0, 1, 2, 3


class RecordingError(PerfmeshError):
    """A recording that cannot be created or read; names the file (and offset when known)."""

    def __init__(self, path: str | os.PathLike, message: str, offset: int | None = None) -> None:
        where = f"{path}" if offset is None else f"{path} at byte {offset}"
        super().__init__(f"recording {where}: {message}")
        self.path, self.offset = str(path), offset


class RecordingTruncated(RecordingError):
    """The file ends inside a record (the recorder was cut short): what came before is good."""


class RecordingCorrupt(RecordingError):
    """A record whose crc, length or payload is wrong: what came before is good."""


@dataclass(frozen=True)
class RecordingInfo:
    """The header record: what was recorded, from where, when."""

    created: float
    source: str = ""
    hosts: tuple[str, ...] = ()
    version: int = FORMAT_VERSION

    def to_dict(self) -> dict[str, Any]:
        return {"format": "perfmesh-recording", "version": self.version, "created": self.created,
                "source": self.source, "hosts": list(self.hosts)}

    @classmethod
    def from_dict(cls, data: Any) -> "RecordingInfo":
        if not isinstance(data, dict) or data.get("format") != "perfmesh-recording":
            raise ValueError(f"header record {data!r:.80} is not a perfmesh-recording map")
        hosts = data.get("hosts") or []
        created = data.get("created")
        if not isinstance(created, (int, float)) or not all(isinstance(h, str) for h in hosts):
            raise ValueError("header record needs created (number) and hosts (strings)")
        return cls(float(created), str(data.get("source", "")), tuple(hosts), int(data.get("version", 1)))


@dataclass(frozen=True)
class BatchRecord:
    """One metric batch as the stream carried it (the agent's envelope, schema resolved)."""

    recv_time: float
    host: str
    boot: str
    seq: int
    sent: float
    schema_raw: bytes
    ts: float
    values_raw: bytes

    def envelope(self) -> wire.Envelope:
        """The batch as the aggregator received it, for the same ingest path."""
        return wire.Envelope("metrics", self.host, self.boot, self.seq, self.sent,
                             {"schema": self.schema_raw, "ts": self.ts, "values": self.values_raw})


@dataclass(frozen=True)
class EventRecord:
    """One stream event (its body as published: type, host, category, ...)."""

    recv_time: float
    body: dict[str, Any]

    @property
    def type(self) -> str:
        return str(self.body.get("type", "-"))


@dataclass
class WriterCounters:
    batches: int = 0
    events: int = 0
    schemas: int = 0
    bytes: int = 0


class RecordingWriter:
    """Appends records to a new file; :meth:`flush` hands them to the OS (a crash of this
    process then loses nothing written), :meth:`close` also syncs them to disk."""

    def __init__(self, path: str | os.PathLike, info: RecordingInfo) -> None:
        self.path = Path(path)
        try:
            self._file: BinaryIO = open(self.path, "xb")
        except FileExistsError:
            raise RecordingError(path, "already exists; expected a new file (recordings are never "
                                       "overwritten)") from None
        except OSError as exc:
            raise RecordingError(path, f"cannot create it: {exc.strerror or exc}") from None
        self.counters = WriterCounters()
        self._schema_ids: dict[bytes, int] = {}
        self._next_id = 0
        self._file.write(FILE_HEADER.pack(MAGIC, FORMAT_VERSION, 0))
        self.counters.bytes = FILE_HEADER.size
        self._write([T_INFO, info.to_dict()])

    def _write(self, payload: list[Any]) -> None:
        data = wire.pack(payload)
        self._file.write(RECORD_HEADER.pack(len(data), zlib.crc32(data)))
        self._file.write(data)
        self.counters.bytes += RECORD_HEADER.size + len(data)

    def _schema_id(self, raw: bytes) -> int:
        sid = self._schema_ids.get(raw)
        if sid is None:
            if self._next_id >= MAX_SCHEMAS:     # wrap: ids are reused, each re-sent before use
                self._schema_ids.clear()
                self._next_id = 0
            sid = self._schema_ids[raw] = self._next_id
            self._next_id += 1
            self._write([T_SCHEMA, sid, raw])
            self.counters.schemas += 1
        return sid

    def write_batch(self, recv_time: float, env: wire.Envelope) -> None:
        """A validated metric envelope (body: schema, ts, values)."""
        body = env.body
        sid = self._schema_id(body["schema"])
        self._write([T_BATCH, recv_time, env.host, env.boot, env.seq, env.time, sid,
                     float(body["ts"]), body["values"]])
        self.counters.batches += 1

    def write_event(self, recv_time: float, body: dict[str, Any]) -> None:
        self._write([T_EVENT, recv_time, body])
        self.counters.events += 1

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        if self._file.closed:
            return
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
        finally:
            try:
                self._file.close()
            except OSError:
                pass        # the flush above already raised what went wrong


class RecordingReader:
    """Reads a recording: :attr:`info` from the header, then records in file order (once);
    :attr:`offset` is where the next record starts."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.offset = 0
        try:
            self._file: BinaryIO = open(self.path, "rb")
        except OSError as exc:
            raise RecordingError(self.path, f"cannot open it: {exc.strerror or exc}") from None
        head = self._file.read(FILE_HEADER.size)
        if len(head) < FILE_HEADER.size or head[:8] != MAGIC:
            self._file.close()
            raise RecordingError(self.path, "is not a perfmesh recording (no PMREC header); "
                                            "expected a file written by `perfmesh record`", 0)
        _, version, _ = FILE_HEADER.unpack(head)
        if version != FORMAT_VERSION:
            self._file.close()
            raise RecordingError(self.path, f"format version {version} is not supported; "
                                            f"expected {FORMAT_VERSION}", 8)
        self.offset = FILE_HEADER.size
        first = self._next_payload()
        if first is None or first[0] != T_INFO:
            self._file.close()
            raise RecordingCorrupt(self.path, "the first record is not the header record", FILE_HEADER.size)
        try:
            self.info = RecordingInfo.from_dict(first[1] if len(first) > 1 else None)
        except ValueError as exc:
            self._file.close()
            raise RecordingCorrupt(self.path, str(exc), FILE_HEADER.size) from None
        self._schemas: dict[int, bytes] = {}

    def _next_payload(self) -> list[Any] | None:
        """The next record's payload; None at a clean end of file."""
        at = self.offset
        head = self._file.read(RECORD_HEADER.size)
        if not head:
            return None
        if len(head) < RECORD_HEADER.size:
            raise RecordingTruncated(self.path, f"the file ends inside a record header ({len(head)} of "
                                                f"{RECORD_HEADER.size} bytes); the recording stops here", at)
        length, crc = RECORD_HEADER.unpack(head)
        if not 0 < length <= MAX_RECORD_BYTES:
            raise RecordingCorrupt(self.path, f"record length {length} is out of range; expected 1 to "
                                              f"{MAX_RECORD_BYTES} bytes", at)
        data = self._file.read(length)
        if len(data) < length:
            raise RecordingTruncated(self.path, f"the file ends inside a record ({len(data)} of {length} "
                                                "bytes); the recording stops here", at)
        if zlib.crc32(data) != crc:
            raise RecordingCorrupt(self.path, f"record crc {zlib.crc32(data):#010x} does not match "
                                              f"the stored {crc:#010x}", at)
        try:
            payload = wire.unpack(data, MAX_RECORD_BYTES)
        except WireError as exc:
            raise RecordingCorrupt(self.path, f"record payload is not valid: {exc}", at) from None
        if type(payload) is not list or not payload or type(payload[0]) is not int:
            raise RecordingCorrupt(self.path, "record payload is not a [type, ...] list", at)
        self.offset = at + RECORD_HEADER.size + length
        return payload

    def __iter__(self) -> Iterator[BatchRecord | EventRecord]:
        try:
            while True:
                at = self.offset
                payload = self._next_payload()
                if payload is None:
                    return
                try:
                    record = self._record(payload)
                except (ValueError, TypeError, KeyError) as exc:
                    raise RecordingCorrupt(self.path, f"record of type {payload[0]}: {exc}", at) from None
                if record is not None:
                    yield record
        finally:
            self._file.close()

    def _record(self, p: list[Any]) -> BatchRecord | EventRecord | None:
        kind = p[0]
        if kind == T_BATCH:
            _, recv, host, boot, seq, sent, sid, ts, values = p
            raw = self._schemas.get(sid)
            if raw is None:
                raise ValueError(f"batch names schema id {sid!r}, which no earlier record defines")
            if not (type(host) is str and type(boot) is str and type(seq) is int and type(values) is bytes):
                raise ValueError("batch fields have the wrong types; expected host, boot (str), seq (int), "
                                 "values (bytes)")
            return BatchRecord(float(recv), host, boot, seq, float(sent), raw, float(ts), values)
        if kind == T_EVENT:
            _, recv, body = p
            if type(body) is not dict:
                raise ValueError(f"event body is {type(body).__name__}; expected a map")
            return EventRecord(float(recv), body)
        if kind == T_SCHEMA:
            _, sid, raw = p
            if type(sid) is not int or not 0 <= sid < MAX_SCHEMAS or type(raw) is not bytes:
                raise ValueError(f"schema record id {sid!r:.20}; expected 0..{MAX_SCHEMAS - 1} with bytes")
            self._schemas[sid] = raw
        return None       # schema records, and record types a newer writer added

    def close(self) -> None:
        self._file.close()
