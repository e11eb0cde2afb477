"""A self-contained HTML report of one host: inline SVG plots, budgets, violations, commands.

Pure: :func:`build_report` takes everything it shows as arguments (the host's status entry,
its series from history, the budget limits, the time range) and returns one HTML string with
no external asset. Every text that came from the network is escaped.
"""

from __future__ import annotations

import html
import math
import time
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from ..model.percentile import percentile
from ..model.serieskey import parse_series_key
from ..protocol import kinds
from .render import format_value

PALETTE = ("#0284c7", "#7c3aed", "#db2777", "#d97706", "#059669", "#ea580c", "#2563eb", "#c026d3",
           "#16a34a", "#dc2626", "#0891b2", "#ca8a04")
CATEGORY_ORDER = ("cpu", "memory", "io", "network", "application")
NAME_ORDER = ("cpu_percent", "cpu_user_percent", "cpu_system_percent", "cpu_iowait_percent", "load_1m",
              "load_5m", "load_15m", "memory_percent", "swap_percent", "memory_used_bytes",
              "memory_available_bytes", "disk_read_bytes_per_s", "disk_write_bytes_per_s",
              "disk_busy_percent", "net_recv_bytes_per_s", "net_sent_bytes_per_s")

Points = Sequence[Sequence[float]]


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _num(v: float) -> str:
    """A coordinate with at most one decimal (and no ``-0``)."""
    text = f"{v:.1f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def nice_ceiling(x: float) -> float:
    """The smallest 'nice' number (1, 1.2, 1.6, 2, 2.4, 3.2, 4, 6, 8 x 10^n) >= x; 1 for x <= 0.

    Each is a nice number divided by 4 too, so the chart's four grid steps read well.
    """
    if x <= 0 or not math.isfinite(x):
        return 1.0
    p = 10 ** math.floor(math.log10(x))
    for m in (1, 1.2, 1.6, 2, 2.4, 3.2, 4, 6, 8, 10):
        if m * p >= x * (1 - 1e-12):
            return float(f"{m * p:.12g}")
    return 10 * p  # pragma: no cover - the loop always ends at 10


@dataclass
class Line:
    label: str
    points: Points
    color: str


def svg_chart(title: str, lines: Sequence[Line], unit: str, t0: float, t1: float, *, limit: float | None = None,
              y_max: float | None = None, width: int = 720, height: int = 220) -> str:
    """A line chart as inline SVG: grid, y labels in ``unit``, time labels, a dashed budget line."""
    left, right, top, bottom = 64, 12, 14, 26
    pw, ph = width - left - right, height - top - bottom
    span = max(t1 - t0, 1e-9)
    highest = max((p[1] for ln in lines for p in ln.points), default=0.0)
    if limit is not None:
        highest = max(highest, limit)
    ymax = y_max if y_max is not None and highest <= y_max * 1.01 else nice_ceiling(highest * 1.05)

    def x(t: float) -> float:
        return left + (t - t0) / span * pw

    def y(v: float) -> float:
        return top + ph - max(min(v, ymax), 0.0) / ymax * ph

    parts = [f'<svg class="plot" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
             f'role="img" aria-label="{esc(title)}" xmlns="http://www.w3.org/2000/svg">',
             f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" class="bg"/>']
    for i in range(5):
        v = ymax * i / 4
        yy = _num(y(v))
        parts.append(f'<line x1="{left}" x2="{left + pw}" y1="{yy}" y2="{yy}" class="grid"/>'
                     f'<text x="{left - 6}" y="{yy}" class="ylab">{esc(format_value(v, unit))}</text>')
    ticks = max(2, pw // 120)
    for i in range(ticks + 1):
        t = t0 + span * i / ticks
        anchor = "start" if i == 0 else "end" if i == ticks else "middle"
        parts.append(f'<text x="{_num(x(t))}" y="{height - 8}" class="xlab" text-anchor="{anchor}">'
                     f'{esc(_clock(t, span))}</text>')
    for ln in lines:
        pts = [(x(p[0]), y(p[1])) for p in ln.points if t0 <= p[0] <= t1]
        if not pts:
            continue
        coords = " ".join(f"{_num(a)},{_num(b)}" for a, b in pts)
        if len(lines) == 1:
            area = f"{_num(pts[0][0])},{_num(top + ph)} {coords} {_num(pts[-1][0])},{_num(top + ph)}"
            parts.append(f'<polygon points="{area}" fill="{ln.color}" fill-opacity="0.12"/>')
        if len(pts) == 1:
            parts.append(f'<circle cx="{_num(pts[0][0])}" cy="{_num(pts[0][1])}" r="2.5" fill="{ln.color}"/>')
        else:
            parts.append(f'<polyline points="{coords}" fill="none" stroke="{ln.color}" stroke-width="1.6" '
                         f'stroke-linejoin="round"/>')
    if limit is not None:
        ly = _num(y(limit))
        parts.append(f'<line x1="{left}" x2="{left + pw}" y1="{ly}" y2="{ly}" class="limit"/>'
                     f'<text x="{left + pw - 4}" y="{_num(y(limit) - 4)}" class="limlab">budget '
                     f'{esc(format_value(limit, unit))}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _clock(ts: float, span: float) -> str:
    fmt = "%H:%M:%S" if span < 600 else "%H:%M" if span < 86400 else "%m-%d %H:%M"
    return time.strftime(fmt, time.localtime(ts))


@dataclass
class SeriesStats:
    count: int
    mean: float
    p95: float
    minimum: float
    maximum: float
    last: float


def series_stats(points: Points) -> SeriesStats | None:
    """Count, mean, 95th percentile (:func:`perfmesh.model.percentile.percentile`), min, max and
    last value of a series."""
    values = [float(p[1]) for p in points]
    if not values:
        return None
    ordered = sorted(values)
    return SeriesStats(len(values), sum(values) / len(values), percentile(ordered, 95), ordered[0], ordered[-1],
                       values[-1])


def budget_rows(series: Mapping[str, tuple[str, Points]], limits: Mapping[str, float]) -> list[dict[str, Any]]:
    """Per budgeted metric with data: mean/p95/max as a share of the limit, and time over it."""
    rows = []
    for name in sorted(limits):
        if name not in series or not series[name][1]:
            continue
        unit, points = series[name]
        st = series_stats(points)
        limit = limits[name]
        assert st is not None
        over = sum(1 for p in points if p[1] > limit)
        rows.append({"metric": name, "unit": unit, "limit": limit, "mean": st.mean, "p95": st.p95,
                     "max": st.maximum, "utilization_mean": st.mean / limit if limit else math.inf,
                     "utilization_p95": st.p95 / limit if limit else math.inf,
                     "over_fraction": over / st.count})
    return rows


def group_series(series: Mapping[str, tuple[str, Points]]) -> list[tuple[str, str, list[tuple[str, Points]]]]:
    """Series keys grouped by metric name: [(name, unit, [(label, points), ...])], in reading order.

    The unlabeled total comes first, labeled variants after in natural order of their labels.
    """
    groups: dict[str, tuple[str, list[tuple[str, str, Points]]]] = {}
    for key, (unit, points) in series.items():
        name, labels = parse_series_key(key)
        label = ",".join(f"cpu{v}" if k == "cpu" else v for k, v in sorted(labels.items())) if labels else "total"
        groups.setdefault(name, (unit, []))[1].append((label, key, points))
    order = {n: i for i, n in enumerate(NAME_ORDER)}
    out = []
    for name in sorted(groups, key=lambda n: (order.get(n, len(order)), n)):
        unit, items = groups[name]
        items.sort(key=lambda it: (it[0] != "total", _natural(it[0])))
        out.append((name, unit, [(label, points) for label, _, points in items]))
    return out


def _natural(text: str) -> tuple:
    import re
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"(\d+)", text) if p)


def is_static(name: str) -> bool:
    """Facts about the machine rather than its load (CPU count, total sizes): a table, not a plot."""
    return name in ("cpu_count",) or name.endswith("_total_bytes")


def _pct(frac: float) -> str:
    return f"{frac * 100:.0f}%" if math.isfinite(frac) else "∞"


def _when(ts: Any) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if isinstance(ts, (int, float)) else "–"


def build_report(host: str, status: Mapping[str, Any] | None, series: Mapping[str, tuple[str, Points]],
                 limits: Mapping[str, float], t0: float, t1: float, generated: float,
                 commands: Sequence[Mapping[str, Any]] = (), source: str = "") -> str:
    """The whole HTML page. ``series``: key -> (unit, [(ts, value), ...]); ``status``: the host's
    entry from ``status`` (or None when the aggregator does not know it)."""
    st = dict(status or {})
    info = st.get("info") or {}
    plots, constants = [], []
    for name, unit, lines in group_series(series):
        if not any(pts for _, pts in lines):
            continue
        if is_static(name):
            constants.append((name, unit, lines[0][1][-1][1] if lines[0][1] else None))
            continue
        shown = lines[:12]
        chart_lines = [Line(label, pts, PALETTE[i % len(PALETTE)]) for i, (label, pts) in enumerate(shown)]
        y_max = 100.0 if unit == "%" else None
        svg = svg_chart(name, chart_lines, unit, t0, t1, limit=limits.get(name), y_max=y_max)
        total = series_stats(shown[0][1])
        legend = "".join(f'<span class="key"><i style="background:{ln.color}"></i>{esc(ln.label)}</span>'
                         for ln in chart_lines) if len(chart_lines) > 1 else ""
        more = f'<span class="muted">+{len(lines) - 12} more not drawn</span>' if len(lines) > 12 else ""
        stats = (f'<span class="muted">{esc(shown[0][0])}: mean {esc(format_value(total.mean, unit))} · '
                 f'p95 {esc(format_value(total.p95, unit))} · max {esc(format_value(total.maximum, unit))}</span>'
                 if total else "")
        plots.append(f'<figure class="card" data-metric="{esc(name)}"><figcaption><b>{esc(name)}</b> {stats}'
                     f'<div class="legend">{legend}{more}</div></figcaption>{svg}</figure>')

    budgets = budget_rows(series, limits)
    budget_html = "".join(
        f'<tr class="{"bad" if b["utilization_p95"] > 1 else "warn" if b["utilization_p95"] > 0.8 else "ok"}">'
        f'<td>{esc(b["metric"])}</td><td class="num">{esc(format_value(b["limit"], b["unit"]))}</td>'
        f'<td class="num">{esc(format_value(b["mean"], b["unit"]))}</td><td class="num">{esc(format_value(b["p95"], b["unit"]))}</td>'
        f'<td class="num">{esc(format_value(b["max"], b["unit"]))}</td>'
        f'<td><div class="util"><span style="width:{min(b["utilization_p95"], 1) * 100:.0f}%"></span></div> '
        f'{_pct(b["utilization_p95"])}</td><td class="num">{_pct(b["over_fraction"])}</td></tr>'
        for b in budgets) or '<tr><td colspan="7" class="muted">No budgeted metric has data in this range.</td></tr>'

    violations = [v for v in st.get("recent_violations", []) if isinstance(v, dict)]
    active = [v for v in st.get("budget_violations", []) if isinstance(v, dict)]
    viol_html = "".join(
        f'<tr class="{"ok" if v.get("state") == kinds.RESOLVED else "bad" if v.get("severity") == "critical" else "warn"}">'
        f'<td>{esc(_when(v.get("timestamp")))}</td><td>{esc(v.get("state", "firing"))}</td><td>{esc(v.get("severity", ""))}</td>'
        f'<td>{esc(v.get("metric"))}</td><td class="num">{esc(format_value(v.get("value")))}</td>'
        f'<td class="num">{esc(format_value(v.get("limit")))}</td></tr>'
        for v in sorted(violations, key=lambda v: v.get("timestamp") or 0, reverse=True)) \
        or '<tr><td colspan="6" class="muted">No budget violations recorded.</td></tr>'

    bottlenecks = [b for b in st.get("bottlenecks", []) if isinstance(b, dict)]
    bott_html = "".join(
        f'<li class="{"bad" if b.get("severity") == "critical" else "warn"}"><b>{esc(b.get("kind"))}</b> '
        f'({esc(b.get("severity"))}): {esc(b.get("description", ""))}'
        + (f' — recommended: <code>{esc(b["recommended_strategy"])}</code>' if b.get("recommended_strategy") else "")
        + "</li>" for b in bottlenecks) or '<li class="muted">No bottleneck detected at report time.</li>'

    cmd_rows = []
    for c in commands:
        inner = c.get("result") if isinstance(c.get("result"), dict) else {}
        effect = inner.get("improvement") if isinstance(inner.get("improvement"), dict) else {}
        effect_text = ", ".join(f"{k} {format_value(v)}" for k, v in sorted(effect.items())) or "–"
        before = inner.get("before") if isinstance(inner.get("before"), dict) else {}
        after = inner.get("after") if isinstance(inner.get("after"), dict) else {}
        change = ", ".join(f"{k}: {format_value(before[k])} → {format_value(after.get(k))}" for k in sorted(before)) or "–"
        dur = inner.get("duration_ms")
        cmd_rows.append(
            f'<tr class="{"ok" if c.get("status") == kinds.STATUS_SUCCESS else "bad"}"><td>{esc(_when(c.get("timestamp")))}</td>'
            f'<td><code>{esc(c.get("strategy"))}</code></td><td>{esc(c.get("status"))}'
            + (f': {esc(c.get("error"))}' if c.get("error") else "") + "</td>"
            f'<td>{esc(inner.get("verdict", "–"))}</td><td>{esc(change)}</td><td>{esc(effect_text)}</td>'
            f'<td class="num">{esc(f"{dur:.1f} ms" if isinstance(dur, (int, float)) else "–")}</td></tr>')
    cmd_html = "".join(cmd_rows) or '<tr><td colspan="7" class="muted">No optimization was applied in this range.</td></tr>'

    facts = [("Host", host), ("State", "up" if st.get("alive") else "down" if st else "unknown"),
             ("Health", st.get("health", "unknown"))]
    if info.get("cpu_count"):
        facts.append(("CPUs", info["cpu_count"]))
    if info.get("memory_total_bytes"):
        facts.append(("Memory", format_value(float(info["memory_total_bytes"]), "B")))
    if info.get("platform"):
        facts.append(("Platform", info["platform"]))
    if info.get("interval_s"):
        facts.append(("Sampling", f"every {info['interval_s']:g} s"))
    counters = st.get("counters") or {}
    if counters:
        facts.append(("Batches", f"{counters.get('batches', 0)} ({counters.get('gaps', 0)} gaps, "
                                 f"{counters.get('bad_frames', 0)} bad frames)"))
    facts_html = "".join(f"<div><span>{esc(k)}</span><b>{esc(v)}</b></div>" for k, v in facts)
    const_html = "".join(f"<tr><td>{esc(n)}</td><td class='num'>{esc(format_value(v, u))}</td></tr>"
                         for n, u, v in constants)
    health = esc(st.get("health", "unknown"))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>perfmesh report · {esc(host)}</title>
<style>{REPORT_CSS}</style></head>
<body>
<header><div class="brand">◆ perfmesh report</div><h1>{esc(host)} <span class="pill {health}">{health}</span></h1>
<p class="muted">{esc(_when(t0))} → {esc(_when(t1))} ({esc(_duration(t1 - t0))}) · generated {esc(_when(generated))}
{('· aggregator ' + esc(source)) if source else ''} · {len(series)} series · {sum(len(p) for _, p in series.values())} samples</p></header>
<section class="facts">{facts_html}</section>
<section><h2>Budget utilization</h2><p class="muted">p95 of each budgeted metric as a share of its limit; “over” is the share of samples above the limit. {len(active)} violation(s) firing at report time.</p>
<table><thead><tr><th>metric</th><th class="num">limit</th><th class="num">mean</th><th class="num">p95</th><th class="num">max</th><th>utilization (p95)</th><th class="num">over</th></tr></thead>
<tbody>{budget_html}</tbody></table></section>
<section><h2>Bottlenecks</h2><ul>{bott_html}</ul></section>
<section><h2>Optimizations applied</h2><table><thead><tr><th>time</th><th>strategy</th><th>status</th><th>verdict</th><th>before → after</th><th>measured effect</th><th class="num">took</th></tr></thead>
<tbody>{cmd_html}</tbody></table></section>
<section><h2>Budget violations</h2><table><thead><tr><th>time</th><th>state</th><th>severity</th><th>metric</th><th class="num">value</th><th class="num">limit</th></tr></thead>
<tbody>{viol_html}</tbody></table></section>
<section><h2>Metrics</h2>{''.join(plots) or '<p class="muted">No samples in this range.</p>'}</section>
{f'<section><h2>Machine</h2><table><tbody>{const_html}</tbody></table></section>' if constants else ''}
<footer class="muted">Self-contained: open this file anywhere, offline.</footer>
</body></html>
"""


def _duration(seconds: float) -> str:
    seconds = max(seconds, 0)
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


REPORT_CSS = """
:root{--text:#1f2937;--muted:#6b7280;--border:#e5e7eb;--ok:#059669;--warn:#d97706;--bad:#dc2626;--bg:#f8fafc}
*{box-sizing:border-box}body{margin:0 auto;max-width:1100px;padding:28px 28px 60px;color:var(--text);background:var(--bg);
font:14px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans","DejaVu Sans",sans-serif}
header{border-bottom:2px solid #0284c7;margin-bottom:18px}.brand{color:#0284c7;font-weight:700;letter-spacing:.3px}
h1{margin:4px 0;font-size:26px;display:flex;align-items:center;gap:12px}h2{font-size:15px;text-transform:uppercase;
letter-spacing:.06em;color:#334155;margin:26px 0 8px}.muted{color:var(--muted)}code{background:#eef2f7;padding:1px 5px;border-radius:4px}
.pill{font-size:12px;padding:2px 10px;border-radius:999px;border:1px solid var(--border);background:#fff;color:var(--muted)}
.pill.good{color:var(--ok)}.pill.warning{color:var(--warn)}.pill.critical{color:var(--bad)}
.facts{display:grid;grid-template-columns:repeat(auto-fill,minmax(200px,1fr));gap:10px}
.facts div{background:#fff;border:1px solid var(--border);border-radius:8px;padding:8px 12px}
.facts span{display:block;font-size:11px;text-transform:uppercase;letter-spacing:.05em;color:var(--muted)}
table{width:100%;border-collapse:collapse;background:#fff;border:1px solid var(--border);border-radius:8px;font-variant-numeric:tabular-nums}
th,td{padding:6px 10px;border-bottom:1px solid var(--border);text-align:left;vertical-align:top}th{font-size:11px;
text-transform:uppercase;letter-spacing:.05em;color:var(--muted);background:#f1f5f9}.num{text-align:right}
tr.bad td:nth-child(2),tr.bad td:first-child{color:var(--bad)}tr.warn td:first-child{color:var(--warn)}
li.bad{color:var(--bad)}li.warn{color:var(--warn)}
.util{display:inline-block;width:120px;height:8px;background:#e5e7eb;border-radius:4px;overflow:hidden;vertical-align:middle}
.util span{display:block;height:100%;background:#0284c7}tr.warn .util span{background:var(--warn)}tr.bad .util span{background:var(--bad)}
figure.card{background:#fff;border:1px solid var(--border);border-radius:10px;padding:10px 12px;margin:0 0 14px}
figcaption{margin-bottom:4px}.legend{display:flex;flex-wrap:wrap;gap:2px 12px;font-size:12px;color:var(--muted)}
.key i{display:inline-block;width:12px;height:3px;border-radius:2px;margin-right:5px;vertical-align:middle}
svg.plot{width:100%;height:auto;display:block}svg .bg{fill:#fff}svg .grid{stroke:#eef2f7;stroke-width:1}
svg text{font:11px system-ui,sans-serif;fill:#6b7280}svg .ylab{text-anchor:end;dominant-baseline:middle}
svg .limit{stroke:#dc2626;stroke-width:1.2;stroke-dasharray:5 4}svg .limlab{fill:#dc2626;text-anchor:end}
footer{margin-top:30px;font-size:12px}
@media print{body{background:#fff}figure.card{break-inside:avoid}}
"""
