"""The recording file format: round trip, compactness, and damage found at the right offset."""

from __future__ import annotations

import zlib

import pytest

from perfmesh.errors import PerfmeshError
from perfmesh.store import recording
from perfmesh.store.recording import (BatchRecord, EventRecord, RecordingCorrupt, RecordingError,
                                      RecordingInfo, RecordingReader, RecordingTruncated, RecordingWriter)
from tests.recordings import CPU_SCHEMA, T0, batches, write_recording


def records(path):
    return list(RecordingReader(path))


def record_offsets(data: bytes) -> list[int]:
    """Where each record starts, walking the length prefixes."""
    at, out = recording.FILE_HEADER.size, []
    while at < len(data):
        out.append(at)
        at += recording.RECORD_HEADER.size + recording.RECORD_HEADER.unpack_from(data, at)[0]
    assert at == len(data)
    return out


def test_batches_and_events_come_back_as_written_in_order(tmp_path):
    path = write_recording(tmp_path / "a.rec", seconds=5)
    got = records(path)
    sent = list(batches(seconds=5))
    assert [r.envelope() for r in got[:-1]] == sent
    assert isinstance(got[-1], EventRecord) and got[-1].type == "host" and got[-1].body["state"] == "down"
    assert all(isinstance(r, BatchRecord) and r.recv_time == r.sent + 0.01 for r in got[:-1])
    reader = RecordingReader(path)
    assert reader.info == RecordingInfo(T0, "synthetic", ())
    reader.close()


def test_a_schema_is_stored_once_so_a_batch_costs_its_values_and_a_few_dozen_bytes(tmp_path):
    path = write_recording(tmp_path / "a.rec", seconds=600)
    size = path.stat().st_size
    assert size < 1200 * (8 * 7 + 60)          # 1200 batches of at most 7 float64 each
    assert path.read_bytes().count(CPU_SCHEMA) == 1


def test_a_file_cut_anywhere_in_its_last_record_yields_every_whole_record_then_says_where(tmp_path):
    path = write_recording(tmp_path / "a.rec", seconds=3)
    data = path.read_bytes()
    whole = records(path)
    last_start = record_offsets(data)[-1]
    for cut in range(last_start + 1, len(data)):
        (tmp_path / "cut.rec").write_bytes(data[:cut])
        got = []
        with pytest.raises(RecordingTruncated) as info:
            for r in RecordingReader(tmp_path / "cut.rec"):
                got.append(r)
        assert got == whole[:-1]
        assert info.value.offset == last_start and "cut.rec at byte" in str(info.value)
    (tmp_path / "cut.rec").write_bytes(data[:last_start])
    assert records(tmp_path / "cut.rec") == whole[:-1]   # cut between records: a clean end


def test_a_flipped_byte_is_a_crc_error_naming_the_file_and_offset_after_the_good_records(tmp_path):
    path = write_recording(tmp_path / "a.rec", seconds=10)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x55
    path.write_bytes(bytes(data))
    got = []
    with pytest.raises(RecordingCorrupt) as info:
        for r in RecordingReader(path):
            got.append(r)
    assert 5 < len(got) < 20
    assert info.value.offset <= len(data) // 2 and "crc" in str(info.value) and "a.rec" in str(info.value)
    assert isinstance(info.value, PerfmeshError)


def test_a_record_naming_an_undefined_schema_is_corrupt(tmp_path):
    path = tmp_path / "a.rec"
    w = RecordingWriter(path, RecordingInfo(T0))
    w._write([recording.T_BATCH, T0, "web01", "b", 1, T0, 7, T0, b"\x00" * 8])
    w.close()
    with pytest.raises(RecordingCorrupt, match="schema id 7"):
        records(path)


def test_unknown_record_types_from_a_newer_writer_are_skipped(tmp_path):
    path = tmp_path / "a.rec"
    w = RecordingWriter(path, RecordingInfo(T0))
    w._write([99, "something new"])
    w.write_event(T0, {"type": "gap", "host": "web01"})
    w.close()
    assert [r.type for r in records(path)] == ["gap"]


def test_schema_ids_wrap_and_a_redefined_id_replaces_the_old_schema(tmp_path, monkeypatch):
    monkeypatch.setattr(recording, "MAX_SCHEMAS", 2)
    envs = []
    for n in range(5):     # five distinct schemas through two ids
        raw = recording.wire.pack(["cpu", [[f"m{n}", "%", {}]]])
        envs.append(recording.wire.Envelope("metrics", "h", "b", n + 1, T0 + n,
                                            {"schema": raw, "ts": T0 + n, "values": b"\x00" * 8}))
    w = RecordingWriter(tmp_path / "a.rec", RecordingInfo(T0))
    for env in envs + envs[:1]:
        w.write_batch(T0, env)
    w.close()
    assert [r.envelope() for r in records(tmp_path / "a.rec")] == envs + envs[:1]


def test_not_a_recording_a_newer_version_and_a_missing_file_are_clear_errors(tmp_path):
    (tmp_path / "x.txt").write_text("hello, this is not a recording")
    with pytest.raises(RecordingError, match=r"x.txt at byte 0: is not a perfmesh recording"):
        RecordingReader(tmp_path / "x.txt")
    path = write_recording(tmp_path / "a.rec", seconds=1)
    data = bytearray(path.read_bytes())
    data[8] = 9
    path.write_bytes(bytes(data))
    with pytest.raises(RecordingError, match="format version 9 is not supported; expected 1"):
        RecordingReader(path)
    with pytest.raises(RecordingError, match="nope.rec: cannot open it"):
        RecordingReader(tmp_path / "nope.rec")


def test_an_existing_file_is_never_overwritten(tmp_path):
    path = write_recording(tmp_path / "a.rec", seconds=1)
    before = path.read_bytes()
    with pytest.raises(RecordingError, match="already exists; expected a new file"):
        RecordingWriter(path, RecordingInfo(T0))
    assert path.read_bytes() == before


def test_every_record_carries_the_crc32_of_its_payload(tmp_path):
    path = write_recording(tmp_path / "a.rec", seconds=1)
    data = path.read_bytes()
    offsets = record_offsets(data)
    for at in offsets:
        length, crc = recording.RECORD_HEADER.unpack_from(data, at)
        assert zlib.crc32(data[at + 8:at + 8 + length]) == crc
    assert len(offsets) == 1 + 2 + 2 + 1    # header, 2 schemas, 2 batches, 1 event


def crafted(path, *payloads, raw: bytes = b"") -> None:
    """A recording with these payloads after a good header record (and raw bytes after them)."""
    out = [recording.FILE_HEADER.pack(recording.MAGIC, 1, 0)]
    for p in ([recording.T_INFO, RecordingInfo(T0).to_dict()], *payloads):
        data = p if isinstance(p, bytes) else recording.wire.pack(p)
        out.append(recording.RECORD_HEADER.pack(len(data), zlib.crc32(data)) + data)
    path.write_bytes(b"".join(out) + raw)


@pytest.mark.parametrize("payloads, raw, message", [
    ([], recording.RECORD_HEADER.pack(0, 0), "record length 0 is out of range"),
    ([], recording.RECORD_HEADER.pack(1 << 30, 0), "record length 1073741824 is out of range"),
    ([b"\xc1"], b"", "record payload is not valid: undecodable"),
    ([{"a": 1}], b"", "record payload is not a [type, ...] list"),
    ([[]], b"", "record payload is not a [type, ...] list"),
    ([[recording.T_EVENT, T0]], b"", "record of type 3: not enough values"),
    ([[recording.T_EVENT, T0, [1, 2]]], b"", "event body is list; expected a map"),
    ([[recording.T_SCHEMA, 5000, b"x"]], b"", "schema record id 5000; expected 0..4095"),
    ([[recording.T_SCHEMA, 0, CPU_SCHEMA], [recording.T_BATCH, T0, 7, "b", 1, T0, 0, T0, b""]], b"",
     "batch fields have the wrong types"),
])
def test_damaged_records_are_corrupt_with_what_was_wrong(tmp_path, payloads, raw, message):
    crafted(tmp_path / "d.rec", *payloads, raw=raw)
    with pytest.raises(RecordingCorrupt, match=message.replace("[", r"\[").replace("]", r"\]")):
        records(tmp_path / "d.rec")


@pytest.mark.parametrize("info, message", [
    ([recording.T_EVENT, T0, {}], "the first record is not the header record"),
    ([recording.T_INFO, {"format": "other"}], "is not a perfmesh-recording map"),
    ([recording.T_INFO, {"format": "perfmesh-recording", "created": "today"}], "needs created"),
])
def test_a_bad_header_record_is_refused_before_anything_is_read(tmp_path, info, message):
    data = recording.wire.pack(info)
    (tmp_path / "h.rec").write_bytes(recording.FILE_HEADER.pack(recording.MAGIC, 1, 0)
                                     + recording.RECORD_HEADER.pack(len(data), zlib.crc32(data)) + data)
    with pytest.raises(RecordingCorrupt, match=message):
        RecordingReader(tmp_path / "h.rec")


def test_a_recording_in_a_missing_folder_cannot_be_created(tmp_path):
    with pytest.raises(RecordingError, match="cannot create it: No such file or directory"):
        RecordingWriter(tmp_path / "no" / "such.rec", RecordingInfo(T0))


def test_close_twice_is_harmless_and_flush_hands_records_to_the_os(tmp_path):
    w = RecordingWriter(tmp_path / "a.rec", RecordingInfo(T0))
    w.write_event(T0, {"type": "host"})
    w.flush()
    assert [r.type for r in records(tmp_path / "a.rec")] == ["host"]
    w.close()
    w.close()
