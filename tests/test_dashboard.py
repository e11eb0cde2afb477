"""perfmesh.views dashboard, cells and top: FleetModel, TopState and the text helpers behind `perfmesh top` and `perfmesh web` (pure)."""

import math

import pytest

from perfmesh.views.cells import bar, compact_bytes, level, sparkline
from perfmesh.views.dashboard import SORT_KEYS, FleetModel
from perfmesh.views.top import TopState, next_sort, parse_keys


def metric(host, name, value, ts, unit="%", **labels):
    return {"type": "metric", "host": host, "category": "cpu", "name": name, "value": value, "unit": unit,
            "timestamp": ts, "labels": labels}


def fleet():
    m = FleetModel(window_s=10.0, max_points=5)
    m.apply_events([
        metric("web1", "cpu_percent", 50.0, 1.0), metric("web1", "cpu_percent", 70.0, 2.0),
        metric("web1", "memory_percent", 30.0, 2.0), metric("web1", "load_1m", 0.5, 2.0, unit=""),
        metric("web1", "disk_read_bytes_per_s", 100.0, 2.0, unit="B/s"),
        metric("web1", "disk_write_bytes_per_s", 50.0, 2.0, unit="B/s"),
        metric("db1", "cpu_percent", 90.0, 2.0), metric("db1", "memory_percent", 80.0, 2.0),
        metric("db1", "net_recv_bytes_per_s", 1000.0, 2.0, unit="B/s"),
        metric("app", "swap_percent", 5.0, 2.0),
    ])
    return m


def test_sparkline_scales_and_pads_left():
    """Values map to eighths of [lo, hi]; short input is right-aligned; flat input is the lowest bar."""
    assert sparkline([0, 50, 100], 3, 0, 100) == "▁▅█"
    assert sparkline([0, 100], 4, 0, 100) == "  ▁█"
    assert sparkline([5, 5], 2) == "▁▁"
    assert sparkline([1, 2, 3, 4], 2) == "▁█"
    assert sparkline([], 3) == "   "
    assert sparkline([150, -5], 2, 0, 100) == "█▁"
    assert sparkline([1], 0) == ""


def test_bar_fills_in_eighths():
    """A bar is whole blocks plus one partial block, padded to its width; None is blank."""
    assert bar(0.5, 4) == "██  "
    assert bar(1.0, 3) == "███"
    assert bar(0.0625, 2) == "▏ "
    assert bar(2.0, 2) == "██"
    assert bar(None, 3) == "   "
    assert bar(0.5, 0) == ""


def test_level_and_compact_bytes():
    """Thresholds give ok/warn/crit; byte counts fit in four characters."""
    assert [level(v, 70, 90) for v in (None, 10, 70, 95)] == ["none", "ok", "warn", "crit"]
    assert [compact_bytes(v) for v in (None, 0, 999, 1000, 1536, 35_000, 5 * 1024**3, 3 * 1024**5)] == \
        ["-", "0", "999", "1.0K", "1.5K", "34K", "5.0G", "3.0P"]
    assert compact_bytes(-3) == "0"


def test_metric_events_update_latest_and_bounded_series():
    """Each series keeps its newest points, at most max_points and none older than window_s."""
    m = FleetModel(window_s=10.0, max_points=3)
    for ts in (1.0, 2.0, 3.0, 4.0):
        assert m.apply_event(metric("h", "cpu_percent", ts * 10, ts))
    assert m.points("h", "cpu_percent") == [(2.0, 20.0), (3.0, 30.0), (4.0, 40.0)]
    m.apply_event(metric("h", "cpu_percent", 99.0, 20.0))
    assert m.points("h", "cpu_percent") == [(20.0, 99.0)]
    assert m.points("h", "cpu_percent", since=5.0) == [(20.0, 99.0)]
    assert m.points("nope", "cpu_percent") == [] and m.points("h", "nope") == []
    m.apply_event(metric("h", "cpu_percent", 1.0, 15.0))        # late: latest changes, chart does not
    assert m.hosts["h"].latest["cpu_percent"] == (15.0, 1.0, "%")
    assert m.points("h", "cpu_percent") == [(20.0, 99.0)]


def test_labeled_metrics_get_their_own_series():
    m = FleetModel()
    m.apply_event(metric("h", "cpu_percent", 12.0, 1.0, cpu="1"))
    assert m.points("h", "cpu_percent{cpu=1}") == [(1.0, 12.0)]
    assert m.hosts["h"].value("cpu_percent") is None


def test_bad_events_are_ignored():
    """Events without a host, with non-finite values or unknown types change nothing."""
    m = FleetModel()
    assert not m.apply_event({"type": "metric", "value": 1.0, "timestamp": 1.0, "name": "x"})
    assert not m.apply_event(metric("h", "x", math.nan, 1.0))
    assert not m.apply_event(metric("h", "x", True, 1.0))
    assert not m.apply_event({"type": "metric", "host": "h", "name": 3, "value": 1.0, "timestamp": 1.0})
    assert not m.apply_event({"type": "mystery", "host": "h"})
    assert m.apply_events([{"type": "gap", "host": "h"}]) == 1


def test_rows_show_the_row_columns():
    row = {r.name: r for r in fleet().rows()}["web1"]
    assert (row.cpu, row.memory, row.swap, row.load) == (70.0, 30.0, None, 0.5)
    assert (row.disk_read, row.disk_write, row.disk, row.net) == (100.0, 50.0, 150.0, None)
    assert row.cpu_history == [50.0, 70.0]
    assert row.to_dict()["cpu_history"] == [50.0, 70.0] and row.to_dict()["name"] == "web1"


@pytest.mark.parametrize("sort, order", [
    ("name", ["app", "db1", "web1"]),
    ("cpu", ["db1", "web1", "app"]),
    ("memory", ["db1", "web1", "app"]),
    ("disk", ["web1", "app", "db1"]),
    ("net", ["db1", "app", "web1"]),
    ("load", ["web1", "app", "db1"]),
])
def test_rows_sort_largest_first_and_missing_last(sort, order):
    assert [r.name for r in fleet().rows(sort)] == order


def test_rows_sort_by_health_worst_first_and_down_hosts_after_live_ones():
    m = fleet()
    m.apply_status({"hosts": [{"name": "web1", "health": "critical"}, {"name": "db1", "health": "good"},
                              {"name": "app", "health": "warning"}]})
    assert [r.name for r in m.rows("health")] == ["web1", "app", "db1"]
    assert [r.name for r in m.rows("health", reverse=True)] == ["db1", "app", "web1"]
    m.apply_event({"type": "host", "host": "web1", "state": "down"})
    assert [r.name for r in m.rows("health")] == ["app", "db1", "web1"]
    assert [r.name for r in m.rows("name")] == ["app", "db1", "web1"]
    assert [r.name for r in m.rows("name", reverse=True)] == ["db1", "app", "web1"]


def test_rows_filter_by_name_any_case_and_reject_unknown_sort():
    assert [r.name for r in fleet().rows(filter_text="WEB")] == ["web1"]
    with pytest.raises(ValueError, match="sort key 'bogus'"):
        fleet().rows("bogus")


def test_status_snapshot_sets_liveness_health_violations_and_info():
    m = FleetModel()
    m.apply_status({"hosts": [
        {"name": "h", "alive": False, "health": "warning", "last_seen": 5.0, "info": {"cpu_count": 4},
         "counters": {"batches": 3}, "collectors": [{"kind": "cpu", "pid": 1}, "junk"],
         "budget_violations": [{"metric": "cpu_percent", "value": 95.0}],
         "bottlenecks": [{"kind": "cpu_bound"}],
         "recent_violations": [{"metric": "cpu_percent", "timestamp": 1.0}],
         "recent_commands": [{"strategy": "gc_collect", "status": "success"}]},
        {"nameless": True}, "junk"]})
    h = m.hosts["h"]
    assert m.connected and not h.alive and h.health == "warning" and h.last_seen == 5.0
    assert h.info == {"cpu_count": 4} and h.counters == {"batches": 3}
    assert h.collectors == [{"kind": "cpu", "pid": 1}]
    assert list(h.active_violations) == ["cpu_percent"] and h.bottlenecks == [{"kind": "cpu_bound"}]
    assert len(h.recent_violations) == 1 and list(h.commands) == [{"strategy": "gc_collect", "status": "success"}]
    assert m.row(h).cpu_count == 4 and m.row(h).violations == ["cpu_percent"]
    m.disconnected()
    assert not m.connected
    version = m.version
    m.disconnected()
    assert m.version == version


def test_violation_bottleneck_command_and_host_events():
    """Firing adds an active violation, resolved removes it; both are kept as recent history."""
    m = FleetModel()
    m.apply_event({"type": "violation", "host": "h", "metric": "cpu_percent", "state": "firing", "timestamp": 1.0})
    assert list(m.hosts["h"].active_violations) == ["cpu_percent"]
    m.apply_event({"type": "violation", "host": "h", "metric": "cpu_percent", "state": "resolved", "timestamp": 2.0})
    assert m.hosts["h"].active_violations == {} and len(m.hosts["h"].recent_violations) == 2
    m.apply_event({"type": "bottleneck", "host": "h", "kind": "cpu_bound", "severity": "warning"})
    m.apply_event({"type": "bottleneck", "host": "h", "kind": "cpu_bound", "severity": "critical"})
    assert [b["severity"] for b in m.hosts["h"].bottlenecks] == ["critical"]
    m.apply_event({"type": "command", "host": "h", "strategy": "gc_collect", "status": "success", "timestamp": 3.0})
    m.apply_event({"type": "host", "host": "h", "state": "down"})
    assert not m.hosts["h"].alive
    m.apply_event({"type": "host", "host": "h", "state": "registered", "info": {"cpu_count": 2}})
    assert m.hosts["h"].alive and m.hosts["h"].info == {"cpu_count": 2}
    d = m.detail("h")
    assert [c["strategy"] for c in d.commands] == ["gc_collect"]
    assert [v["state"] for v in d.violations] == ["resolved", "firing"]      # newest first


def test_detail_breaks_down_cpus_disks_and_interfaces_in_natural_order():
    m = FleetModel()
    for cpu, v in (("10", 1.0), ("2", 2.0), ("0", 3.0)):
        m.apply_event(metric("h", "cpu_percent", v, 1.0, cpu=cpu))
    m.apply_event(metric("h", "disk_read_bytes_per_s", 10.0, 1.0, unit="B/s", device="sdb"))
    m.apply_event(metric("h", "disk_busy_percent", 7.0, 1.0, device="sda"))
    m.apply_event(metric("h", "net_recv_bytes_per_s", 5.0, 1.0, unit="B/s", interface="eth1"))
    m.apply_event(metric("h", "net_sent_bytes_per_s", 6.0, 1.0, unit="B/s", interface="eth1"))
    m.apply_event(metric("h", "other_thing", 1.0, 1.0, device="sda"))
    d = m.detail("h")
    assert d.per_cpu == [("0", 3.0), ("2", 2.0), ("10", 1.0)]
    assert d.disks == [{"device": "sda", "busy_percent": 7.0}, {"device": "sdb", "read_bytes_per_s": 10.0}]
    assert d.interfaces == [{"interface": "eth1", "recv_bytes_per_s": 5.0, "sent_bytes_per_s": 6.0}]
    assert m.detail("nope") is None


def test_overview_and_host_json_for_the_web_page():
    m = fleet()
    ov = m.overview(sort="cpu")
    assert [h["name"] for h in ov["hosts"]] == ["db1", "web1", "app"] and ov["connected"] is False
    hj = m.host_json("web1", since=1.5)
    assert hj["series"]["cpu_percent"] == {"unit": "%", "points": [[2.0, 70.0]]}
    assert set(hj["series"]) == {"cpu_percent", "memory_percent", "load_1m", "disk_read_bytes_per_s",
                                 "disk_write_bytes_per_s"}
    assert m.host_json("web1", since=5.0)["series"] == {}
    assert m.host_json("nope") is None


def test_next_sort_cycles_through_every_key():
    seen = ["name"]
    for _ in SORT_KEYS:
        seen.append(next_sort(seen[-1]))
    assert seen[:-1] == list(SORT_KEYS) and seen[-1] == "name"
    assert next_sort("bogus") == "name"


def test_top_state_keys_sort_select_detail_and_quit():
    s = TopState()
    names = ["a", "b", "c"]
    s.handle("s", names)
    assert s.sort == "cpu"
    s.handle("down", names); s.handle("down", names); s.handle("down", names)
    assert s.selected == 2
    s.handle("up", names)
    assert s.selected == 1
    s.handle("k", names); s.handle("k", names)
    assert s.selected == 0
    s.handle("j", names)
    s.handle("enter", names)
    assert s.detail_host == "b"
    s.handle("s", names)                    # keys other than back/quit do nothing in the detail view
    assert s.sort == "cpu" and s.detail_host == "b"
    s.handle("esc", names)
    assert s.detail_host is None
    s.handle("d", names)
    assert s.detail_host == "b"
    s.handle("d", names)
    assert s.detail_host is None
    s.handle("enter", [])
    assert s.detail_host is None
    s.handle("q", names)
    assert s.quit


def test_top_state_filter_editing():
    """`/` starts typing a filter; backspace edits, enter keeps it, esc clears it."""
    s = TopState(selected=2)
    s.handle("/", [])
    assert s.editing_filter
    for k in ("w", "e", "x", "backspace", "b"):
        s.handle(k, [])
    assert s.filter_text == "web" and s.selected == 0
    s.handle("q", [])                       # typed, not quit
    s.handle("up", [])                      # ignored while typing
    assert s.filter_text == "webq" and not s.quit
    s.handle("enter", [])
    assert not s.editing_filter and s.filter_text == "webq"
    s.handle("esc", [])
    assert s.filter_text == ""
    s.handle("/", []); s.handle("a", []); s.handle("esc", [])
    assert s.filter_text == "" and not s.editing_filter
    s.clamp(0)
    assert s.selected == 0
    s.selected = 5
    s.clamp(3)
    assert s.selected == 2


def test_parse_keys_reads_arrows_enter_escape_and_backspace():
    assert parse_keys("\x1b[A\x1b[Bq") == ["up", "down", "q"]
    assert parse_keys("\x1bOA\x1b[C\x1b[D") == ["up", "right", "left"]
    assert parse_keys("\r\n\x7f\x08") == ["enter", "enter", "backspace", "backspace"]
    assert parse_keys("\x1b") == ["esc"]
    assert parse_keys("\x1bs\x01") == ["esc", "s"]


def test_backfill_progress_counts_down_from_the_peak_and_resets_when_done():
    """Owed batches across hosts give a progress fraction against the most owed at once."""
    model = FleetModel()
    assert model.backfill_progress() is None
    model.apply_status({"hosts": [{"name": "a", "counters": {"missing_batches": 30}},
                                  {"name": "b", "counters": {"missing_batches": 10}}]})
    assert model.backfill_progress() == (40, 0.0)
    model.apply_status({"hosts": [{"name": "a", "counters": {"missing_batches": 10}},
                                  {"name": "b", "counters": {"missing_batches": 0}}]})
    assert model.backfill_progress() == (10, 0.75)
    model.apply_status({"hosts": [{"name": "a", "counters": {"missing_batches": 0}}]})
    assert model.backfill_progress() is None and model.backfill_peak == 0


def test_top_keys_help_direct_sorts_reverse_and_pause():
    """? or h opens the help (any key closes it); P/M/L/I/W/H/N sort directly; r reverses; p pauses."""
    s, names = TopState(), ["a", "b"]
    s.handle("?", names)
    assert s.help
    s.handle("M", names)
    assert not s.help and s.sort == "name"            # the key that closes the help does nothing else
    for key, sort in (("P", "cpu"), ("M", "memory"), ("L", "load"), ("I", "disk"), ("W", "net"),
                      ("H", "health"), ("N", "name")):
        s.handle(key, names)
        assert s.sort == sort
    s.handle("r", names)
    assert s.reverse
    s.handle("p", names)
    assert s.paused
    s.handle(" ", names)
    assert not s.paused
    s.handle("h", names)
    s.handle("q", names)
    assert s.quit
