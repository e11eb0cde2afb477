"""Tests for perfmesh.store.spool: the agent's bounded spool, in memory and on real temp files."""

import struct
import zlib

import pytest

from perfmesh.protocol import wire
from perfmesh.store.spool import HEADER, MAX_RECORD_BYTES, Spool


def frame(seq, boot="b1"):
    return wire.encode("metrics", "web01", boot, seq, float(seq), {"n": seq})


def record(data):
    return HEADER.pack(len(data), zlib.crc32(data)) + data


def seg_names(directory):
    return sorted(p.name for p in directory.glob("*.seg"))


def filled(directory, seqs, **kw):
    spool = Spool(kw.pop("capacity", 100), directory, **kw)
    for s in seqs:
        spool.append(s, frame(s, spool.boot))
    spool.close()
    return spool


# ------------------------------------------------------------------ memory
def test_capacity_below_one_is_refused_naming_the_value():
    """A spool must hold at least one batch."""
    with pytest.raises(ValueError, match="at least 1 batch, got 0"):
        Spool(0)


def test_memory_spool_keeps_the_newest_capacity_frames():
    """Past capacity the oldest frames go; last_seq, oldest_seq and len follow."""
    spool = Spool(3)
    assert (len(spool), spool.oldest_seq, spool.last_seq, spool.dir) == (0, None, 0, None)
    assert len(spool.boot) == 32 and int(spool.boot, 16) >= 0
    for s in range(1, 6):
        spool.append(s, frame(s))
    assert list(spool.frames) == [3, 4, 5]
    assert (len(spool), spool.oldest_seq, spool.last_seq) == (3, 3, 5)
    spool.close()   # nothing to close: no error


def test_every_spool_is_a_new_stream():
    """Without a directory each spool gets its own stream id (boot)."""
    assert Spool(1).boot != Spool(1).boot


def test_get_range_returns_held_frames_and_the_missing_sub_ranges():
    """get_range splits [first, last] into frames held, in order, and the ranges no longer held."""
    spool = Spool(10)
    for s in (3, 4, 6, 9):
        spool.append(s, frame(s))
    found, missing = spool.get_range(1, 10)
    assert [s for s, _ in found] == [3, 4, 6, 9]
    assert found[2] == (6, frame(6))
    assert missing == [(1, 2), (5, 5), (7, 8), (10, 10)]
    assert spool.get_range(3, 4) == ([(3, frame(3)), (4, frame(4))], [])
    assert spool.get_range(20, 22) == ([], [(20, 22)])
    assert spool.get_range(5, 4) == ([], [])


# ------------------------------------------------------------------ disk
def test_disk_spool_writes_state_and_crc_records(tmp_path):
    """With a directory: 'state' holds the boot; frames go to 00000001.seg as <len><crc><frame>."""
    spool = Spool(10, tmp_path)
    spool.append(1, frame(1, spool.boot))
    spool.append(2, frame(2, spool.boot))
    spool.close()
    assert (tmp_path / "state").read_text() == spool.boot
    assert seg_names(tmp_path) == ["00000001.seg"]
    assert (tmp_path / "00000001.seg").read_bytes() == record(frame(1, spool.boot)) + record(frame(2, spool.boot))
    assert spool.repairs == [] and not (tmp_path / "state.tmp").exists()


def test_reopening_continues_the_same_boot_last_seq_and_frames(tmp_path):
    """An agent restarted on its spool keeps its stream id and can still serve what it held."""
    first = filled(tmp_path, range(1, 8))
    again = Spool(100, tmp_path)
    assert (again.boot, again.last_seq, list(again.frames), again.repairs) == (first.boot, 7, list(range(1, 8)), [])
    assert again.get_range(6, 9) == ([(6, frame(6, first.boot)), (7, frame(7, first.boot))], [(8, 9)])
    again.append(8, frame(8, again.boot))
    again.close()
    assert seg_names(tmp_path) == ["00000001.seg", "00000002.seg"]     # a new segment per open
    third = Spool(100, tmp_path)
    assert (third.boot, third.last_seq, len(third)) == (first.boot, 8, 8)
    third.close()


def test_repeated_restarts_without_new_frames_keep_the_spool(tmp_path):
    """Opening and closing the spool again and again never loses what it holds (nor last_seq)."""
    first = filled(tmp_path, range(1, 6))
    for _ in range(4):
        spool = Spool(100, tmp_path)
        assert (spool.boot, spool.last_seq, list(spool.frames)) == (first.boot, 5, [1, 2, 3, 4, 5])
        spool.close()
    assert len(seg_names(tmp_path)) == 2       # the data segment and the open (empty) one


def test_reopening_with_a_smaller_capacity_keeps_only_the_newest(tmp_path):
    """Frames read back from disk are cut to the capacity, oldest first."""
    filled(tmp_path, range(1, 11))
    spool = Spool(4, tmp_path)
    assert list(spool.frames) == [7, 8, 9, 10] and spool.last_seq == 10
    spool.close()


def test_capacity_prunes_old_segments_across_rotation(tmp_path):
    """Segments rotate every segment_records; only as many as the capacity needs are kept."""
    spool = filled(tmp_path, range(1, 13), capacity=5, segment_records=2)
    assert list(spool.frames) == [8, 9, 10, 11, 12]
    # at the last rotation (before 11) the spool held 7..11: segments 1..3 (up to seq 6) went
    assert seg_names(tmp_path) == ["00000004.seg", "00000005.seg", "00000006.seg"]
    assert (tmp_path / "00000004.seg").read_bytes() == record(frame(7, spool.boot)) + record(frame(8, spool.boot))
    assert (tmp_path / "00000006.seg").read_bytes() == record(frame(11, spool.boot)) + record(frame(12, spool.boot))
    again = Spool(5, tmp_path, segment_records=2)
    assert list(again.frames) == [8, 9, 10, 11, 12] and again.last_seq == 12 and again.repairs == []
    assert seg_names(tmp_path) == ["00000004.seg", "00000005.seg", "00000006.seg", "00000007.seg"]
    assert (tmp_path / "00000007.seg").read_bytes() == b""
    again.close()


def test_torn_tail_record_is_cut_and_reported(tmp_path):
    """A record cut mid-write is removed from the file; every whole record before it is kept."""
    spool = filled(tmp_path, range(1, 4))
    seg = tmp_path / "00000001.seg"
    whole = len(record(frame(1, spool.boot))) * 2
    data = seg.read_bytes()
    seg.write_bytes(data[:-5])
    again = Spool(100, tmp_path)
    assert list(again.frames) == [1, 2] and again.last_seq == 2
    assert again.repairs == [f"{seg}: cut {len(data) - 5 - whole} bytes of a torn or corrupt record at offset {whole}"]
    assert seg.read_bytes() == data[:whole]
    again.close()
    assert Spool(100, tmp_path).repairs == []      # repaired once, clean after


def test_torn_header_and_absurd_length_at_the_tail_are_cut(tmp_path):
    """A partial header, or a length over MAX_RECORD_BYTES, ends the segment there."""
    spool = filled(tmp_path, [1])
    seg = tmp_path / "00000001.seg"
    good = seg.read_bytes()
    seg.write_bytes(good + b"\x05\x00\x00")
    again = Spool(100, tmp_path)
    assert list(again.frames) == [1] and again.repairs == [
        f"{seg}: cut 3 bytes of a torn or corrupt record at offset {len(good)}"]
    again.close()
    seg.write_bytes(good + struct.pack("<II", MAX_RECORD_BYTES + 1, 0) + b"x" * 20)
    again = Spool(100, tmp_path)
    assert list(again.frames) == [1] and again.repairs == [
        f"{seg}: cut 28 bytes of a torn or corrupt record at offset {len(good)}"]
    assert seg.read_bytes() == good and spool.boot == again.boot
    again.close()


def test_corrupt_crc_in_the_middle_loses_only_that_record(tmp_path):
    """A flipped byte inside record 2 of 4 drops record 2 alone; 1, 3 and 4 are still served."""
    spool = filled(tmp_path, range(1, 5))
    seg = tmp_path / "00000001.seg"
    data = bytearray(seg.read_bytes())
    size = len(record(frame(1, spool.boot)))
    data[size + HEADER.size + 3] ^= 0xFF
    seg.write_bytes(bytes(data))
    again = Spool(100, tmp_path)
    assert list(again.frames) == [1, 3, 4] and again.last_seq == 4
    assert again.frames[3] == frame(3, spool.boot)
    assert again.repairs == [f"{seg}: skipped a record with a bad crc at offset {size}"]
    assert again.get_range(1, 4)[1] == [(2, 2)]
    again.close()


def test_corrupt_crc_of_the_last_record_is_cut_as_a_torn_tail(tmp_path):
    """A whole-length last record with a bad crc (zero-filled by a crash) is cut like a torn one."""
    spool = filled(tmp_path, range(1, 3))
    seg = tmp_path / "00000001.seg"
    data = bytearray(seg.read_bytes())
    size = len(record(frame(1, spool.boot)))
    data[-1] ^= 0xFF
    seg.write_bytes(bytes(data))
    again = Spool(100, tmp_path)
    assert list(again.frames) == [1]
    assert again.repairs == [f"{seg}: cut {size} bytes of a torn or corrupt record at offset {size}"]
    assert seg.stat().st_size == size
    again.close()


def test_record_that_is_not_a_frame_is_skipped_and_reported(tmp_path):
    """A record with a good crc but no valid envelope inside is skipped; the others load."""
    spool = filled(tmp_path, [1])
    seg = tmp_path / "00000001.seg"
    with open(seg, "ab") as f:
        f.write(record(b"not msgpack \xc1"))
        f.write(record(frame(2, spool.boot)))
    again = Spool(100, tmp_path)
    assert list(again.frames) == [1, 2]
    assert again.repairs == [f"{seg}: a record that is not a frame was skipped"]
    again.close()


@pytest.mark.parametrize("content", ["", "not-a-boot", "A" * 32, "0123456789abcdef" * 3, "g" * 32])
def test_garbage_state_file_starts_a_new_stream_and_is_rewritten(tmp_path, content):
    """An unreadable stream id is reported and replaced by a fresh one, written back to 'state'."""
    (tmp_path / "state").write_text(content)
    spool = Spool(10, tmp_path)
    assert spool.boot != content and len(spool.boot) == 32
    assert spool.repairs == [f"{tmp_path / 'state'}: unreadable stream id {content[:40]!r}; starting a new stream"]
    assert (tmp_path / "state").read_text() == spool.boot
    spool.close()
    assert Spool(10, tmp_path).boot == spool.boot


def test_state_with_a_trailing_newline_is_accepted(tmp_path):
    """A stream id written by hand with a newline is still the same stream."""
    (tmp_path / "state").write_text("ab" * 16 + "\n")
    spool = Spool(10, tmp_path)
    assert spool.boot == "ab" * 16 and spool.repairs == []
    spool.close()


def test_files_that_are_not_numbered_segments_are_ignored(tmp_path):
    """Only NNNNNNNN.seg files are segments; others in the directory are left alone."""
    (tmp_path / "notes.seg").write_bytes(b"junk")
    (tmp_path / "README").write_text("x")
    spool = filled(tmp_path, [1, 2])
    again = Spool(10, tmp_path)
    assert list(again.frames) == [1, 2] and again.repairs == []
    assert (tmp_path / "notes.seg").read_bytes() == b"junk"
    assert spool.boot == again.boot
    again.close()


def test_directory_is_created(tmp_path):
    """A spool dir that does not exist yet is created."""
    spool = Spool(2, tmp_path / "a" / "b")
    assert (tmp_path / "a" / "b" / "state").exists()
    spool.close()
