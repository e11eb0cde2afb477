"""``perfmesh replay``: a recording through the pure :class:`perfmesh.mesh.replay.Replay`.

This shell reads the file, paces it (``speed`` times real time; 0 is as fast as possible) and
prints what would fire. A file cut short replays up to the cut, then warns (exit 0); a corrupt
record replays up to it, then reports it as an error (exit 1).
"""

from __future__ import annotations

import json
import time
from typing import IO

from perfmesh.mesh.fleet import FleetConfig
from perfmesh.mesh.replay import Replay
from perfmesh.rules.alerting import Alert, AlertEngine
from perfmesh.store.recording import EventRecord, RecordingCorrupt, RecordingError, RecordingReader
from perfmesh.views.replay_text import format_alert, format_summary


class Pacer:
    """Waits until a recorded time is due at ``speed`` times real time (0: never waits)."""

    def __init__(self, speed: float) -> None:
        self.speed = speed
        self.first: float | None = None
        self.start = 0.0

    def wait(self, ts: float) -> None:
        if self.speed <= 0:
            return
        if self.first is None:
            self.first, self.start = ts, time.monotonic()
            return
        delay = self.start + (ts - self.first) / self.speed - time.monotonic()
        if delay > 0:
            time.sleep(delay)


def run_replay(path: str, fleet: FleetConfig, engine: AlertEngine, out: IO[str], err: IO[str],
               speed: float = 0.0, as_json: bool = False) -> int:
    reader = RecordingReader(path)
    replay = Replay(fleet, engine)
    pacer = Pacer(speed)
    started = time.monotonic()

    def emit(alerts: list[Alert]) -> None:
        for a in alerts:
            out.write((json.dumps({"type": "alert", **a.to_dict()}, sort_keys=True) if as_json
                       else format_alert(a)) + "\n")
        if alerts and speed > 0:
            out.flush()

    problem: RecordingError | None = None
    try:
        for record in reader:
            if isinstance(record, EventRecord):
                replay.event(record.body)
                continue
            pacer.wait(record.ts)
            emit(replay.batch(record.envelope()))
    except RecordingError as exc:
        problem = exc
    emit(replay.finish())
    elapsed = time.monotonic() - started
    summary = replay.summary.to_dict()
    if as_json:
        out.write(json.dumps({"type": "summary", "file": str(path), "elapsed_s": elapsed,
                              "problem": str(problem) if problem else None, **summary}, sort_keys=True) + "\n")
    else:
        out.write(format_summary(str(path), summary, elapsed) + "\n")
    out.flush()
    if problem is not None:
        grade = "ERROR" if isinstance(problem, RecordingCorrupt) else "WARNING"
        err.write(f"perfmesh replay: {grade}: {problem}; replayed the {summary['batches']} batches "
                  "before it\n")
    return 1 if isinstance(problem, RecordingCorrupt) else 0
