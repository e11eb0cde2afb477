"""The wire codec: the only module that imports msgpack.

Every frame is ``[topic, envelope]``. The envelope is a msgpack map::

    {"v": 1, "kind": str, "host": str, "boot": str, "seq": int, "time": float, "body": ...}

Frames are decoded as untrusted input: bounded sizes, ``raw=False``,
``strict_map_key=True``, no ext types, an exact envelope schema. Anything else raises
:class:`WireError` with a reason code that callers count per peer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import msgpack

from ..errors import WireError
from .kinds import KINDS

SCHEMA_VERSION = 1
MAX_FRAME_BYTES = 1 << 20          # 1 MiB per envelope
MAX_TOPIC_BYTES = 256
MAX_STR_LEN = 64 * 1024
MAX_CONTAINER_LEN = 16 * 1024
MAX_NAME_LEN = 128                 # host names, strategy names

ENVELOPE_KEYS = frozenset({"v", "kind", "host", "boot", "seq", "time", "body"})


def _refuse_ext(code: int, data: bytes) -> Any:
    raise WireError("ext_type", f"msgpack ext type {code} is not allowed")


def pack(obj: Any) -> bytes:
    """Encode plain data (dict, list, str, bytes, int, float, bool, None)."""
    return msgpack.packb(obj, use_bin_type=True)


def unpack(data: bytes, max_bytes: int = MAX_FRAME_BYTES) -> Any:
    """Decode untrusted bytes into plain data, or raise WireError."""
    if len(data) > max_bytes:
        raise WireError("too_large", f"frame of {len(data)} bytes exceeds the {max_bytes}-byte limit")
    try:
        return msgpack.unpackb(
            data,
            raw=False,
            strict_map_key=True,
            use_list=True,
            ext_hook=_refuse_ext,
            timestamp=0,
            max_str_len=MAX_STR_LEN,
            max_bin_len=max_bytes,
            max_array_len=MAX_CONTAINER_LEN,
            max_map_len=MAX_CONTAINER_LEN,
            max_ext_len=0,
        )
    except WireError:
        raise
    except msgpack.ExtraData:
        raise WireError("trailing_data", "frame has bytes after its msgpack value") from None
    except (ValueError, TypeError, OverflowError, RecursionError, msgpack.UnpackException) as exc:
        if "max_ext_len" in str(exc):  # max_ext_len=0 stops every non-empty ext (timestamps too)
            raise WireError("ext_type", "msgpack ext types are not allowed") from None
        raise WireError("undecodable", f"frame is not valid msgpack ({exc.__class__.__name__}: {exc})") from None


@dataclass(frozen=True)
class Envelope:
    kind: str
    host: str
    boot: str
    seq: int
    time: float
    body: Any

    def to_dict(self) -> dict[str, Any]:
        return {"v": SCHEMA_VERSION, "kind": self.kind, "host": self.host, "boot": self.boot,
                "seq": self.seq, "time": self.time, "body": self.body}

    @classmethod
    def from_dict(cls, data: Any) -> "Envelope":
        return validate_envelope(data)


def encode(kind: str, host: str, boot: str, seq: int, time: float, body: Any) -> bytes:
    """Pack one envelope."""
    return pack({"v": SCHEMA_VERSION, "kind": kind, "host": host, "boot": boot,
                 "seq": seq, "time": time, "body": body})


def _check_str(data: dict, key: str, limit: int = MAX_NAME_LEN) -> str:
    value = data[key]
    if type(value) is not str or len(value) > limit:
        raise WireError("bad_field", f"envelope field {key!r} must be a string of at most {limit} characters, got {value!r:.80}")
    return value


def validate_envelope(data: Any) -> Envelope:
    """Check an unpacked envelope against the exact schema."""
    if type(data) is not dict:
        raise WireError("not_envelope", f"expected a msgpack map envelope, got {type(data).__name__}")
    if data.keys() != ENVELOPE_KEYS:
        missing = sorted(ENVELOPE_KEYS - data.keys())
        extra = sorted((k for k in data.keys() - ENVELOPE_KEYS), key=repr)[:5]   # str and bytes keys
        raise WireError("bad_schema", f"envelope keys wrong: missing {missing}, unexpected {extra}")
    if data["v"] != SCHEMA_VERSION or type(data["v"]) is not int:
        raise WireError("bad_version", f"envelope version {data['v']!r:.40} is not {SCHEMA_VERSION}")
    kind = data["kind"]
    if type(kind) is not str or kind not in KINDS:
        raise WireError("bad_kind", f"envelope kind {kind!r:.40} is not one of {sorted(KINDS)}")
    host = _check_str(data, "host")
    boot = _check_str(data, "boot")
    seq = data["seq"]
    if type(seq) is not int or seq < 0 or seq >= 1 << 63:
        raise WireError("bad_field", f"envelope seq must be an integer in [0, 2**63), got {seq!r:.40}")
    t = data["time"]
    if type(t) is int:
        t = float(t)
    if type(t) is not float or not math.isfinite(t):
        raise WireError("bad_field", f"envelope time must be a finite number, got {t!r:.40}")
    return Envelope(kind, host, boot, seq, t, data["body"])


def decode(frame: bytes, max_bytes: int = MAX_FRAME_BYTES) -> Envelope:
    """Unpack and validate one envelope frame."""
    return validate_envelope(unpack(frame, max_bytes))


def topic(*parts: str) -> bytes:
    """``topic("metric", "web01", "cpu")`` -> ``b"metric/web01/cpu/"``: every part ends with '/'."""
    return "".join(f"{p}/" for p in parts).encode()
