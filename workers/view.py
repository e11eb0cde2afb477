"""``perfmesh top``: a full-screen live view of the fleet (rich), driven by keys.

The state lives in :mod:`perfmesh.views.dashboard` (pure); this module draws it, reads keys from a
cbreak-mode stdin in a thread, and restores the terminal on every way out (q, Ctrl-C, SIGTERM,
an exception).

Host names, labels, info, errors and descriptions come from peers: each goes through
:func:`~perfmesh.views.safe_text.safe_text` (control characters escaped) into a plain ``Text``,
never into a markup string, so neither escape sequences nor rich markup in them take effect.
"""

from __future__ import annotations

import copy
import os
import queue
import select
import signal
import sys
import threading
import time
from typing import Any

from rich import box
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from perfmesh.model.duration import format_duration
from perfmesh.views.cells import bar, compact_bytes, level, sparkline
from perfmesh.views.dashboard import FleetModel, HostDetail, HostRow
from perfmesh.views.top import HELP, TopState, parse_keys
from perfmesh.views.render import format_value
from perfmesh.views.safe_text import safe_text
from perfmesh.protocol import kinds

from .feed import Feed
from .transport import Endpoint

LEVEL_STYLE = {"ok": "green", "warn": "yellow", "crit": "bold red", "none": "grey50"}
HEALTH_STYLE = {"good": "green", "warning": "yellow", "critical": "bold red"}
SORT_LABEL = {"name": "name", "cpu": "CPU", "memory": "memory", "load": "load", "disk": "disk I/O",
              "net": "network", "health": "health"}


class KeyReader:
    """Reads stdin in cbreak mode on a thread and puts key tokens on a queue."""

    def __init__(self, keys: "queue.Queue[str]") -> None:
        self.keys = keys
        self.fd = sys.stdin.fileno()
        self.saved: Any = None
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="perfmesh-keys", daemon=True)

    def __enter__(self) -> "KeyReader":
        import termios
        import tty
        self.saved = termios.tcgetattr(self.fd)
        tty.setcbreak(self.fd)
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.restore()

    def restore(self) -> None:
        self.stopping.set()
        if self.saved is not None:
            import termios
            termios.tcsetattr(self.fd, termios.TCSADRAIN, self.saved)
            self.saved = None

    def _run(self) -> None:
        while not self.stopping.is_set():
            try:
                ready, _, _ = select.select([self.fd], [], [], 0.1)
                if not ready:
                    continue
                data = os.read(self.fd, 64)
            except OSError:
                return
            if not data:
                return
            for key in parse_keys(data.decode("utf-8", "replace")):
                self.keys.put(key)


def _pct(value: float | None, warn: float, crit: float, width: int) -> Text:
    """``[bar] 42%`` coloured by level."""
    style = LEVEL_STYLE[level(value, warn, crit)]
    text = Text()
    if width > 0:
        text.append(bar(None if value is None else value / 100.0, width), style=f"{style} on grey23")
        text.append(" ")
    text.append("  -" if value is None else f"{value:3.0f}", style=style)
    text.append("%", style="grey50")
    return text


def _rate(value: float | None) -> str:
    return compact_bytes(value)


def _pair(a: float | None, b: float | None) -> Text:
    return Text.assemble((_rate(a).rjust(4), "cyan"), ("/", "grey50"), (_rate(b).ljust(4), "magenta"))


FIXED_COLUMNS = {"dot": 1, "swap": 4, "load": 5, "disk": 9, "net": 9, "alert": 3}


def layout_widths(width: int) -> dict[str, int]:
    """Column widths for a terminal ``width`` wide: fixed columns first; bars and sparkline grow."""
    host = 14 if width < 110 else 22
    fixed = host + sum(FIXED_COLUMNS.values()) + 10 + 2 * 4   # 9 column separators + slack, 2 "100%"
    spare = max(width - fixed, 0)
    spark = min(spare // 3, 60)
    bars = min((spare - spark) // 2 - 1, 30)
    return {"host": host, "spark": spark, "bar": max(bars, 0)}


def fleet_table(rows: list[HostRow], state: TopState, width: int, height: int) -> Table:
    w = layout_widths(width)
    t = Table(box=box.SIMPLE_HEAD, expand=False, pad_edge=False, padding=(0, 0), show_edge=False,
              header_style="bold", collapse_padding=True)
    pct = w["bar"] + 5 if w["bar"] else 4
    t.add_column("", width=1, no_wrap=True)
    t.add_column("HOST", width=w["host"], no_wrap=True, overflow="ellipsis")
    t.add_column("CPU", no_wrap=True, width=pct)
    if w["spark"]:
        t.add_column("HISTORY" if w["spark"] >= 7 else "", width=w["spark"], no_wrap=True)
    t.add_column("MEM", no_wrap=True, width=pct)
    t.add_column("SWAP", justify="right", width=4, no_wrap=True)
    t.add_column("LOAD", justify="right", width=5, no_wrap=True)
    t.add_column("DISK r/w", justify="center", width=9, no_wrap=True)
    t.add_column("NET rx/tx", justify="center", width=9, no_wrap=True)
    t.add_column("!", width=3, no_wrap=True)
    visible = max(height, 1)
    first = max(0, state.selected - visible + 1)
    for i, r in enumerate(rows[first:first + visible], start=first):
        selected = i == state.selected
        dot = Text("●", style=HEALTH_STYLE.get(r.health, "grey50") if r.alive else "bold red")
        name = Text(safe_text(r.name), style="bold" if r.alive else "bold red")
        if not r.alive:
            name = Text(f"{safe_text(r.name)} (down)", style="bold red")
        cells: list[Any] = [dot, name, _pct(r.cpu, 70, 90, w["bar"])]
        if w["spark"]:
            cells.append(Text(sparkline(r.cpu_history, w["spark"], 0, 100), style="cyan"))
        cpus = r.cpu_count or 1
        load_style = LEVEL_STYLE[level(None if r.load is None else r.load / cpus, 0.8, 1.5)]
        cells += [_pct(r.memory, 80, 95, w["bar"]),
                  Text("-" if r.swap is None else f"{r.swap:.0f}%", style=LEVEL_STYLE[level(r.swap, 20, 60)]),
                  Text("-" if r.load is None else f"{r.load:.2f}", style=load_style),
                  _pair(r.disk_read, r.disk_write), _pair(r.net_recv, r.net_sent),
                  Text(f"!{len(r.violations)}" if r.violations else "", style="bold red")]
        t.add_row(*cells, style="reverse" if selected else None)
    return t


def _header(model: FleetModel, feed: Feed | None, endpoint: Endpoint, state: TopState, width: int) -> Group:
    hosts = list(model.hosts.values())
    down = sum(1 for h in hosts if not h.alive)
    alerts = sum(len(h.active_violations) for h in hosts)
    title = Text.assemble(("perfmesh top", "bold cyan"), "  ", (str(endpoint), "grey62"), "  ",
                          (f"{len(hosts)} host{'s' if len(hosts) != 1 else ''}", "bold"))
    if down:
        title.append(f"  {down} down", style="bold red")
    if alerts:
        title.append(f"  {alerts} violation{'s' if alerts != 1 else ''}", style="bold yellow")
    clock = time.strftime("%H:%M:%S")
    title.append(" " * max(1, width - len(title.plain) - len(clock)))
    title.append(clock, style="grey62")
    sort = SORT_LABEL[state.sort] + (" (reversed)" if state.reverse else "")
    if model.connected:
        line = Text.assemble(("● connected", "green"), "   sort: ", (sort, "bold"))
    else:
        verb = "reconnecting to" if feed is None or feed.ever_connected or feed.failures else "connecting to"
        line = Text(f"⟳ {verb} {endpoint}…", style="bold black on yellow")
        line.append(f"   sort: {sort}", style="")
    if state.paused:
        line.append("   PAUSED (p resumes)", style="bold black on yellow")
    backfill = model.backfill_progress()
    if backfill is not None:
        owed, done = backfill
        filled = int(round(done * 10))
        line.append("   backfill ", style="bold cyan")
        line.append("█" * filled + "░" * (10 - filled), style="cyan")
        line.append(f" {done:.0%} ({owed} batches owed)")
    if state.editing_filter or state.filter_text:
        line.append("   filter: ")
        line.append(safe_text(state.filter_text) + ("▏" if state.editing_filter else ""), style="bold reverse" if state.editing_filter else "bold")
    return Group(title, line)


def _footer(state: TopState) -> Text:
    if state.editing_filter:
        pairs = [("type", "host name"), ("enter", "apply"), ("esc", "clear")]
    elif state.detail_host:
        pairs = [("esc/d", "back"), ("q", "quit")]
    else:
        pairs = [("?", "help"), ("s", "sort"), ("/", "filter"), ("↑↓", "select"), ("enter", "detail"), ("q", "quit")]
    text = Text()
    for key, what in pairs:
        text.append(f" {key} ", style="bold black on cyan")
        text.append(f" {what}  ")
    return text


def _when(ts: Any) -> str:
    return time.strftime("%H:%M:%S", time.localtime(ts)) if isinstance(ts, (int, float)) else "--:--:--"


def detail_view(d: HostDetail, width: int, height: int, alerts: list | None = None) -> Group:
    r = d.row
    head = Text.assemble((safe_text(r.name), "bold"), "  ",
                         ("up" if r.alive else "DOWN", "green" if r.alive else "bold red"),
                         "  health ", (safe_text(r.health), HEALTH_STYLE.get(r.health, "grey62")))
    if d.info.get("cpu_count"):
        head.append(f"  {safe_text(d.info['cpu_count'])} CPUs", style="grey62")
    memory = d.info.get("memory_total_bytes")
    if memory:
        shown = format_value(float(memory), "B") if isinstance(memory, (int, float)) else memory
        head.append(f"  {safe_text(shown)} RAM", style="grey62")
    barw = max(min(width // 3 - 14, 40), 4)
    summary = Table.grid(padding=(0, 1))
    summary.add_column(width=5, style="bold")
    summary.add_column(no_wrap=True)
    summary.add_row("CPU", _pct(r.cpu, 70, 90, barw))
    summary.add_row("MEM", _pct(r.memory, 80, 95, barw))
    summary.add_row("SWAP", _pct(r.swap, 20, 60, barw))
    summary.add_row("LOAD", Text("-" if r.load is None else f"{r.load:.2f}"))
    parts: list[Any] = [head, summary]
    if d.per_cpu:
        cols = max(1, min(len(d.per_cpu), width // 26))
        grid = Table.grid(padding=(0, 2))
        for _ in range(cols):
            grid.add_column(no_wrap=True)
        cells = [Text.assemble((f"cpu{safe_text(c):<3}", "grey62"), _pct(v, 70, 90, 10)) for c, v in d.per_cpu]
        for i in range(0, len(cells), cols):
            grid.add_row(*cells[i:i + cols])
        parts += [Text("Per CPU", style="bold cyan"), grid]
    io = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, expand=False, header_style="bold")
    for col, just in (("DISK", "left"), ("READ", "right"), ("WRITE", "right"), ("BUSY", "right"),
                      ("", "left"), ("IFACE", "left"), ("RX", "right"), ("TX", "right")):
        io.add_column(col, justify=just, no_wrap=True)  # type: ignore[arg-type]
    for i in range(max(len(d.disks), len(d.interfaces))):
        disk = d.disks[i] if i < len(d.disks) else None
        nic = d.interfaces[i] if i < len(d.interfaces) else None
        io.add_row(Text(safe_text(disk["device"])) if disk else "", _rate(disk.get("read_bytes_per_s")) if disk else "",
                   _rate(disk.get("write_bytes_per_s")) if disk else "",
                   (f"{disk['busy_percent']:.0f}%" if "busy_percent" in disk else "-") if disk else "", "",
                   Text(safe_text(nic["interface"])) if nic else "", _rate(nic.get("recv_bytes_per_s")) if nic else "",
                   _rate(nic.get("sent_bytes_per_s")) if nic else "")
    parts.append(io)
    events = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, expand=True, header_style="bold")
    events.add_column("TIME", width=8, no_wrap=True)
    events.add_column("EVENT", no_wrap=True, overflow="ellipsis")
    merged = [(v.get("timestamp", 0), "v", v) for v in d.violations] + \
             [(c.get("timestamp", 0), "c", c) for c in d.commands]
    merged.sort(key=lambda x: x[0] if isinstance(x[0], (int, float)) else 0, reverse=True)
    for ts, kind, ev in merged[:max(3, height - 16 - (len(d.per_cpu) + 1) // 3)]:
        if kind == "v":
            resolved = ev.get("state") == kinds.RESOLVED
            style = "green" if resolved else ("bold red" if ev.get("severity") == "critical" else "yellow")
            msg = Text(safe_text(f"{'resolved' if resolved else ev.get('severity', 'violation')} {ev.get('metric')} "
                                 f"= {format_value(ev.get('value'))} (limit {format_value(ev.get('limit'))})"),
                       style=style)
        else:
            ok = ev.get("status") == kinds.STATUS_SUCCESS
            msg = Text(safe_text(f"command {ev.get('strategy')} → {ev.get('status')}"
                                 + (f" ({ev['operator']})" if ev.get("operator") else "")
                                 + (f": {ev['error']}" if ev.get("error") else "")), style="green" if ok else "red")
        events.add_row(_when(ts), msg)
    if merged:
        parts += [Text("Recent violations and commands", style="bold cyan"), events]
    if alerts:
        log = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, expand=True, header_style="bold")
        for col in ("ID", "FIRED", "METRIC", "SEVERITY", "DURATION", "ACK"):
            log.add_column(col, no_wrap=True, overflow="ellipsis")
        for a in alerts[:max(2, height - 24)]:
            style = "green" if not a.get("active") else "bold red" if a.get("severity") == "critical" else "yellow"
            log.add_row(str(a.get("id")), _when(a.get("fired")), Text(safe_text(a.get("metric"))),
                        Text(safe_text(a.get("severity")), style=style),
                        format_duration(a.get("duration_s") or 0) + (" active" if a.get("active") else ""),
                        Text(safe_text(a.get("acked_by") or "-")))
        parts += [Text("Alert log (perfmesh alerts ack ID acknowledges)", style="bold cyan"), log]
    for b in d.bottlenecks[:2]:
        parts.append(Text(safe_text(f"bottleneck: {b.get('description', b.get('kind'))}"
                                    + (f" — try {b['recommended_strategy']}" if b.get("recommended_strategy") else "")),
                          style="yellow"))
    return Group(*parts)


def help_view() -> Table:
    """The ``?`` overlay: every key and what it does."""
    t = Table(box=box.ROUNDED, title="perfmesh top: keys", title_style="bold cyan", show_header=False,
              expand=False, padding=(0, 1))
    t.add_column(style="bold cyan", no_wrap=True)
    t.add_column(no_wrap=True)
    for key, what in HELP:
        t.add_row(key, what)
    return t


def render(model: FleetModel, state: TopState, endpoint: Endpoint, width: int, height: int,
           feed: Feed | None = None) -> Group:
    """The whole screen for a terminal of ``width`` x ``height``."""
    rows = model.rows(state.sort, state.filter_text, history=max(width, 60), reverse=state.reverse)
    state.clamp(len(rows))
    parts: list[Any] = [_header(model, feed, endpoint, state, width)]
    detail = model.detail(state.detail_host) if state.detail_host else None
    if state.help:
        parts.append(help_view())
    elif detail is not None:
        if feed is not None:
            feed.alerts_host = state.detail_host             # the feed fetches its alert log
        log = feed.alerts[1] if feed is not None and feed.alerts[0] == state.detail_host else None
        parts.append(detail_view(detail, width, height - 3, log))
    elif rows:
        parts.append(fleet_table(rows, state, width, height - 6))
    elif model.hosts:
        parts.append(Text(f"\n  no host matches {state.filter_text!r}", style="grey62"))
    else:
        parts.append(Text("\n  waiting for hosts to report…", style="grey62"))
    return Group(*parts)


def _screen(model: FleetModel, state: TopState, endpoint: Endpoint, console: Console, feed: Feed | None) -> Any:
    from rich.layout import Layout
    width, height = console.size
    layout = Layout()
    layout.split_column(Layout(render(model, state, endpoint, width, height, feed), name="body"),
                        Layout(_footer(state), name="footer", size=1))
    return layout


def run_top(endpoint: Endpoint, duration_s: float | None = None) -> int:
    """Run the live view until q, Ctrl-C, SIGTERM or ``duration_s`` seconds; returns 0."""
    model, lock = FleetModel(), threading.Lock()
    feed = Feed(endpoint, model, lock, name="top")
    feed.start()
    keys: "queue.Queue[str]" = queue.Queue()
    state = TopState()
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    console = Console()
    reader = KeyReader(keys) if sys.stdin.isatty() else None
    deadline = None if duration_s is None else time.monotonic() + duration_s
    try:
        if not console.is_terminal:   # piped: no full screen; print the view once at the end
            while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
                stop.wait(0.2)
            with lock:
                console.print(render(model, state, endpoint, console.width, console.height, feed))
            return 0
        if reader is not None:
            reader.__enter__()
        with Live(console=console, screen=True, auto_refresh=False, redirect_stdout=False,
                  redirect_stderr=False) as live:
            next_draw = 0.0
            frozen: FleetModel | None = None
            while not (state.quit or stop.is_set()):
                now = time.monotonic()
                if deadline is not None and now >= deadline:
                    break
                if now >= next_draw:
                    with lock:
                        if not state.paused:
                            frozen = None
                        elif frozen is None:            # what the screen shows while paused
                            frozen = copy.deepcopy(model)
                        live.update(_screen(frozen or model, state, endpoint, console, feed), refresh=True)
                    next_draw = now + 1.0
                try:
                    key = keys.get(timeout=0.1)
                except queue.Empty:
                    continue
                with lock:
                    names = [r.name for r in (frozen or model).rows(state.sort, state.filter_text,
                                                                     reverse=state.reverse)]
                state.handle(key, names)
                next_draw = 0.0
    except KeyboardInterrupt:
        pass
    finally:
        if reader is not None:
            reader.restore()
        signal.signal(signal.SIGTERM, previous)
        feed.stop()
    return 0
