"""The agent's spool: recent batches by sequence number, in memory and optionally on disk.

In memory it is a bounded ordered map ``seq -> frame``. With a directory, every frame is
also appended to segment files (``NNNNNNNN.seg``: records of ``<u32 length><u32 crc32>
<frame>``), rotated every ``segment_records`` and pruned to the capacity, and ``boot``
(the agent's stream identity) is kept in ``state``: an agent restarted on the same spool
continues the same stream, so the aggregator can still backfill what it missed. On open,
a torn or corrupt tail record (a crash mid-write) is cut off and reported in ``repairs``.
"""

from __future__ import annotations

import os
import struct
import uuid
import zlib
from collections import OrderedDict
from pathlib import Path

HEADER = struct.Struct("<II")
MAX_RECORD_BYTES = 4 << 20


class Spool:
    def __init__(self, capacity: int, directory: str | os.PathLike | None = None,
                 segment_records: int = 1000) -> None:
        if capacity < 1:
            raise ValueError(f"spool capacity must be at least 1 batch, got {capacity}")
        self.capacity = capacity
        self.segment_records = segment_records
        self.frames: OrderedDict[int, bytes] = OrderedDict()
        self.repairs: list[str] = []
        self.dir = Path(directory) if directory is not None else None
        self.boot = uuid.uuid4().hex
        self.last_seq = 0
        self._fd = -1
        self._segment_count = 0
        self._seg_last: dict[Path, int] = {}   # segment -> highest seq written to it
        if self.dir is not None:
            self._open_dir()

    # ----------------------------------------------------------------- public
    def append(self, seq: int, frame: bytes) -> None:
        self.frames[seq] = frame
        self.last_seq = max(self.last_seq, seq)
        while len(self.frames) > self.capacity:
            self.frames.popitem(last=False)
        if self.dir is not None:
            if self._segment_count >= self.segment_records:
                self._rotate()
            os.write(self._fd, HEADER.pack(len(frame), zlib.crc32(frame)) + frame)
            self._segment_count += 1
            self._seg_last[self._seg] = max(self._seg_last.get(self._seg, seq), seq)

    def get_range(self, first: int, last: int) -> tuple[list[tuple[int, bytes]], list[tuple[int, int]]]:
        """Frames held in [first, last] in order, and the sub-ranges no longer held."""
        found, missing = [], []
        gap_start = None
        for seq in range(first, last + 1):
            frame = self.frames.get(seq)
            if frame is None:
                gap_start = seq if gap_start is None else gap_start
                continue
            if gap_start is not None:
                missing.append((gap_start, seq - 1))
                gap_start = None
            found.append((seq, frame))
        if gap_start is not None:
            missing.append((gap_start, last))
        return found, missing

    @property
    def oldest_seq(self) -> int | None:
        return next(iter(self.frames), None)

    def __len__(self) -> int:
        return len(self.frames)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    # ------------------------------------------------------------------- disk
    def _open_dir(self) -> None:
        assert self.dir is not None
        self.dir.mkdir(parents=True, exist_ok=True)
        state = self.dir / "state"
        try:
            boot = state.read_text().strip()
            if len(boot) == 32 and all(c in "0123456789abcdef" for c in boot):
                self.boot = boot
            else:
                self.repairs.append(f"{state}: unreadable stream id {boot[:40]!r}; starting a new stream")
        except FileNotFoundError:
            pass
        tmp = state.with_suffix(".tmp")
        tmp.write_text(self.boot)
        os.replace(tmp, state)
        from ..protocol.wire import decode        # the spool stores wire frames; read their seq back
        for seg in self._segments():
            for frame in self._read_segment(seg):
                try:
                    seq = decode(frame).seq
                except ValueError:
                    self.repairs.append(f"{seg}: a record that is not a frame was skipped")
                    continue
                self.frames[seq] = frame
                self.last_seq = max(self.last_seq, seq)
                self._seg_last[seg] = max(self._seg_last.get(seg, seq), seq)
        while len(self.frames) > self.capacity:
            self.frames.popitem(last=False)
        self._rotate()

    def _segments(self) -> list[Path]:
        assert self.dir is not None
        return sorted(p for p in self.dir.glob("*.seg") if p.stem.isdigit())

    def _read_segment(self, seg: Path) -> list[bytes]:
        data = seg.read_bytes()
        out, pos = [], 0
        while pos < len(data):
            if pos + HEADER.size > len(data):
                break
            length, crc = HEADER.unpack_from(data, pos)
            end = pos + HEADER.size + length
            if length > MAX_RECORD_BYTES or end > len(data):
                break
            frame = data[pos + HEADER.size:end]
            if zlib.crc32(frame) != crc:
                if end < len(data):     # damaged in the middle: lose that record only
                    self.repairs.append(f"{seg}: skipped a record with a bad crc at offset {pos}")
                    pos = end
                    continue
                break
            out.append(frame)
            pos = end
        if pos < len(data):
            self.repairs.append(f"{seg}: cut {len(data) - pos} bytes of a torn or corrupt record at offset {pos}")
            with open(seg, "r+b") as f:
                f.truncate(pos)
        return out

    def _rotate(self) -> None:
        """Start a new segment; drop old segments holding no frame the spool still holds."""
        assert self.dir is not None
        self.close()
        segs = self._segments()
        number = int(segs[-1].stem) + 1 if segs else 1
        oldest = self.oldest_seq
        for old in segs:
            newest = self._seg_last.get(old)
            if oldest is None or newest is None or newest < oldest:
                old.unlink()
                self._seg_last.pop(old, None)
        self._seg = self.dir / f"{number:08d}.seg"
        self._fd = os.open(self._seg, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._segment_count = 0
