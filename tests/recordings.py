"""Synthetic stream for recording and replay tests: one host's cpu and memory batches, one
per second of stream time, with the cpu at 85 % during a chosen window (30 % otherwise)."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from perfmesh.protocol import wire
from perfmesh.protocol.batch import make_body
from perfmesh.store.recording import RecordingInfo, RecordingWriter

T0 = 1_780_000_000.0
CPU_SCHEMA = wire.pack(["cpu", [["cpu_percent", "%", {}], ["cpu_iowait_percent", "%", {}], ["load_1m", "", {}]]
                        + [["cpu_percent", "%", {"cpu": str(i)}] for i in range(4)]])
MEMORY_SCHEMA = wire.pack(["memory", [["memory_percent", "%", {}], ["swap_percent", "%", {}],
                                      ["memory_used_bytes", "B", {}]]])


def batches(host: str = "web01", seconds: int = 120, breach: tuple[int, int] = (60, 90), t0: float = T0,
            boot: str = "boot-1", first_seq: int = 1) -> Iterator[wire.Envelope]:
    """Metric envelopes as an agent sends them: per second, a cpu batch then a memory batch."""
    seq = first_seq
    for i in range(seconds):
        ts = t0 + i
        cpu = 85.0 if breach[0] <= i < breach[1] else 30.0
        for raw, values in ((CPU_SCHEMA, [cpu, 1.0, 0.5, cpu, cpu, cpu, cpu]),
                            (MEMORY_SCHEMA, [40.0, 0.0, 1e9])):
            yield wire.Envelope("metrics", host, boot, seq, ts, make_body(raw, ts, values))
            seq += 1


def write_recording(path: Path, seconds: int = 120, breach: tuple[int, int] = (60, 90),
                    host: str = "web01") -> Path:
    writer = RecordingWriter(path, RecordingInfo(T0, "synthetic", ()))
    for env in batches(host, seconds, breach):
        writer.write_batch(env.time + 0.01, env)
    writer.write_event(T0 + seconds, {"type": "host", "host": host, "category": "-", "state": "down",
                                      "timestamp": T0 + seconds})
    writer.close()
    return path
