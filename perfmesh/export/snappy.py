"""Snappy's block format (what Prometheus remote write compresses with), written out here.

Why not a library: the format is one page of spec (a varint length, then literals and
back-references), and a remote-write body is label sets repeated sample after sample, so a
plain greedy matcher over 4-byte hashes finds long matches and skips most of the input in
slices. :func:`decompress` is the exact inverse, for tests and for reading what we sent.
"""

from __future__ import annotations

from ..errors import PerfmeshError

MAX_OFFSET = 65535          # copies with a 2-byte offset
_MIN_MATCH = 4


class SnappyError(PerfmeshError, ValueError):
    """A snappy block that cannot be decoded."""


def uvarint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _literal(out: bytearray, data: bytes, start: int, end: int) -> None:
    while start < end:
        n = min(end - start, 65536)
        if n <= 60:
            out.append((n - 1) << 2)
        elif n <= 256:
            out += bytes((60 << 2, n - 1))
        else:
            out.append(61 << 2)
            out += (n - 1).to_bytes(2, "little")
        out += data[start:start + n]
        start += n


def _copy(out: bytearray, offset: int, length: int) -> None:
    while length > 0:
        n = min(length, 64)
        if length - n and length - n < _MIN_MATCH and n > _MIN_MATCH:   # keep the tail a valid copy
            n -= _MIN_MATCH
        if 4 <= n <= 11 and offset < 2048:
            out += bytes((((offset >> 8) << 5) | ((n - 4) << 2) | 1, offset & 0xFF))
        else:
            out.append(((n - 1) << 2) | 2)
            out += offset.to_bytes(2, "little")
        length -= n


def compress(data: bytes) -> bytes:
    """A valid snappy block of ``data`` (greedy, offsets up to 64 KiB)."""
    data = bytes(data)
    n = len(data)
    out = bytearray(uvarint(n))
    table: dict[bytes, int] = {}
    literal_start = i = 0
    misses = 0
    limit = n - _MIN_MATCH
    while i <= limit:
        key = data[i:i + 4]
        cand = table.get(key)
        table[key] = i
        if cand is None or i - cand > MAX_OFFSET:
            misses += 1
            i += 1 + (misses >> 5)
            continue
        misses = 0
        length = _MIN_MATCH
        step = 32
        while step:        # extend the match in slices, halving the slice on a mismatch
            if i + length + step <= n and data[cand + length:cand + length + step] == data[i + length:i + length + step]:
                length += step
            else:
                step >>= 1
        _literal(out, data, literal_start, i)
        _copy(out, i - cand, length)
        i += length
        literal_start = i
    _literal(out, data, literal_start, n)
    return bytes(out)


def read_uvarint(data: bytes, pos: int, error: type[PerfmeshError] = SnappyError) -> tuple[int, int]:
    """The unsigned varint at ``pos`` (snappy's length, protobuf's keys and lengths) and the
    position after it; ``error`` names the format being read when it is cut short or overlong."""
    shift = value = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise error(f"truncated or overlong varint at byte {pos}; expected a valid uvarint")
        b = data[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, pos
        shift += 7


def decompress(data: bytes, max_size: int = 64 * 1024 * 1024) -> bytes:
    """The bytes of a snappy block; SnappyError when it is malformed or over ``max_size``."""
    size, pos = read_uvarint(data, 0)
    if size > max_size:
        raise SnappyError(f"block claims {size} bytes; expected at most {max_size}")
    out = bytearray()
    while pos < len(data):
        tag = data[pos]
        pos += 1
        kind = tag & 3
        if kind == 0:
            n = tag >> 2
            if n >= 60:
                extra = n - 59
                n = int.from_bytes(data[pos:pos + extra], "little")
                pos += extra
            n += 1
            out += data[pos:pos + n]
            pos += n
            continue
        if kind == 1:
            length, offset = ((tag >> 2) & 7) + 4, ((tag >> 5) << 8) | data[pos]
            pos += 1
        else:
            width = 2 if kind == 2 else 4
            length, offset = (tag >> 2) + 1, int.from_bytes(data[pos:pos + width], "little")
            pos += width
        if offset == 0 or offset > len(out):
            raise SnappyError(f"copy offset {offset} at byte {pos}; expected 1..{len(out)}")
        start = len(out) - offset
        if offset >= length:
            out += out[start:start + length]
        else:
            for k in range(length):     # overlaps itself (a run)
                out.append(out[start + k])
    if len(out) != size:
        raise SnappyError(f"block decodes to {len(out)} bytes; its header says {size}")
    return bytes(out)
