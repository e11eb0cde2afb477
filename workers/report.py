"""``perfmesh report``: one host's history from the aggregator as a self-contained HTML file."""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import zmq

from perfmesh.rules.budget import DEFAULT_BUDGETS
from perfmesh.errors import PerfmeshError
from perfmesh.model.metric import series_key
from perfmesh.views.report_html import build_report
from perfmesh.protocol import kinds

from .client import ApiClient, Subscriber
from .transport import Endpoint

# When a host is down its series cannot be discovered from the stream: ask history for these.
FALLBACK_SERIES = {
    "cpu_percent": "%", "cpu_user_percent": "%", "cpu_system_percent": "%", "cpu_iowait_percent": "%",
    "load_1m": "", "load_5m": "", "load_15m": "", "memory_percent": "%", "swap_percent": "%",
    "memory_used_bytes": "B", "memory_available_bytes": "B", "disk_read_bytes_per_s": "B/s",
    "disk_write_bytes_per_s": "B/s", "disk_busy_percent": "%", "net_recv_bytes_per_s": "B/s",
    "net_sent_bytes_per_s": "B/s",
}


def discover_series(endpoint: Endpoint, host: str, ctx: zmq.Context, settle_s: float, timeout_s: float = 5.0) -> dict[str, str]:
    """Series keys (-> unit) the host publishes, learned from its live stream."""
    sub = Subscriber(endpoint, [kinds.EVENT_METRIC], host, ctx=ctx)
    found: dict[str, str] = {}
    first = None
    deadline = time.monotonic() + timeout_s
    try:
        for ev in sub.events(timeout_s):
            labels = ev.get("labels") if isinstance(ev.get("labels"), dict) else {}
            found[series_key(str(ev.get("name")), labels)] = str(ev.get("unit", ""))
            first = first or time.monotonic()
            if time.monotonic() - first >= settle_s or time.monotonic() >= deadline:
                break
    finally:
        sub.close()
    return found


def write_report(endpoint: Endpoint, host: str, since_s: float, out_path: str) -> int:
    ctx = zmq.Context()
    api = ApiClient(endpoint, ctx=ctx, name="report")
    try:
        status = api.status()
        entry: dict[str, Any] | None = next((h for h in status.get("hosts", []) if h.get("name") == host), None)
        if entry is None:
            known = ", ".join(sorted(h.get("name", "?") for h in status.get("hosts", []))) or "none"
            raise PerfmeshError(f"host {host!r} is not known to the aggregator at {endpoint} (known hosts: {known})")
        interval = float((entry.get("info") or {}).get("interval_s") or 1.0)
        keys = discover_series(endpoint, host, ctx, settle_s=max(1.5 * interval, 1.2)) if entry.get("alive") else {}
        if not keys:
            keys = dict(FALLBACK_SERIES)
        now = time.time()
        t0 = now - since_s
        series = {}
        for key, unit in sorted(keys.items()):
            points = api.history(host, key, t0)
            if points:
                series[key] = (unit, [(float(p[0]), float(p[1])) for p in points])
        limits = dict(DEFAULT_BUDGETS)
        for v in list(entry.get("recent_violations", [])) + list(entry.get("budget_violations", [])):
            if isinstance(v, dict) and isinstance(v.get("limit"), (int, float)) and isinstance(v.get("metric"), str):
                limits[v["metric"]] = float(v["limit"])
        first_ts = min((p[0] for _, pts in series.values() for p in pts), default=t0)
        commands = [c for c in entry.get("recent_commands", []) if isinstance(c, dict)]
        page = build_report(host, entry, series, limits, max(t0, first_ts), now, now, commands, str(endpoint))
    finally:
        api.close()
        ctx.term()
    out = Path(out_path)
    fd, tmp = tempfile.mkstemp(prefix=".report-", suffix=".html", dir=out.parent if str(out.parent) else ".")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(page)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    os.replace(tmp, out)
    samples = sum(len(p) for _, p in series.values())
    print(f"wrote {out} ({len(series)} series, {samples} samples of {host})", file=sys.stdout)
    return 0
