"""Tests for perfmesh.views.render: one readable line per event, status tables, command results."""

import time

import pytest

from perfmesh.views.render import format_command_result, format_event, format_status, format_value

TS = 1_700_000_000.0
CLOCK = time.strftime("%H:%M:%S", time.localtime(TS))


# ------------------------------------------------------------------ values
@pytest.mark.parametrize("value,unit,text", [
    (512, "B", "512.0B"),
    (1536, "B", "1.5KB"),
    (3 * 1024 ** 2, "B/s", "3.0MB/s"),
    (5 * 1024 ** 3, "bytes", "5.0Gbytes"),
    (2 * 1024 ** 4, "B", "2.0TB"),
    (3 * 1024 ** 5, "B", "3072.0TB"),       # T is the largest suffix
    (-2048, "B", "-2.0KB"),
    (12.5, "%", "12.5%"),
    (3.0, "ms", "3ms"),
    (2.456, "", "2.46"),
    (100.0, "", "100"),
    (0, "", "0"),
    (7, "count", "7 count"),
])
def test_format_value_scales_bytes_and_trims_decimals(value, unit, text):
    """Byte units scale by 1024 with one decimal; others print up to 2 decimals, trailing zeros trimmed."""
    assert format_value(value, unit) == text


@pytest.mark.parametrize("value", [None, "n/a", [1]])
def test_format_value_of_a_non_number_is_its_text(value):
    """Non-numbers are printed as str()."""
    assert format_value(value) == str(value)


# ------------------------------------------------------------------ events
def test_metric_event_line_has_time_host_category_name_labels_value():
    """A metric prints clock, padded host and category, name{sorted labels} = value with unit."""
    ev = {"type": "metric", "host": "web01", "category": "io", "name": "disk_busy_percent",
          "labels": {"dev": "sda", "a": "1"}, "value": 42.5, "unit": "%", "timestamp": TS}
    assert format_event(ev) == f"{CLOCK} {'web01':<16} {'io':<8} disk_busy_percent{{a=1,dev=sda}} = 42.5%"


def test_metric_without_labels_has_no_braces():
    """An unlabeled metric prints its bare name."""
    ev = {"type": "metric", "host": "h", "category": "cpu", "name": "cpu_percent", "value": 1,
          "unit": "%", "timestamp": TS, "labels": {}}
    assert format_event(ev).endswith(" cpu_percent = 1%")


def test_violation_event_line():
    """A violation prints state, severity, metric, value and limit."""
    ev = {"type": "violation", "host": "h", "state": "firing", "severity": "critical",
          "metric": "cpu_percent", "value": 99.5, "limit": 80.0, "timestamp": TS}
    assert format_event(ev) == f"{CLOCK} {'h':<16} VIOLATION firing critical cpu_percent = 99.5 (limit 80)"


def test_bottleneck_event_line_with_and_without_strategy():
    """A bottleneck names its kind and severity, and the strategy to try when there is one."""
    ev = {"type": "bottleneck", "host": "h", "kind": "cpu_bound", "severity": "warning",
          "recommended_strategy": "process_priority", "timestamp": TS}
    assert format_event(ev) == f"{CLOCK} {'h':<16} BOTTLENECK cpu_bound (warning), try process_priority"
    ev["recommended_strategy"] = None
    assert format_event(ev) == f"{CLOCK} {'h':<16} BOTTLENECK cpu_bound (warning)"


def test_host_gap_and_command_event_lines():
    """host, gap and command events each get their one-line form."""
    assert format_event({"type": "host", "host": "h", "state": "down", "timestamp": TS}) == \
        f"{CLOCK} {'h':<16} host down"
    assert format_event({"type": "gap", "host": "h", "missing": 2, "first_seq": 4, "last_seq": 5,
                         "timestamp": TS}) == f"{CLOCK} {'h':<16} GAP 2 batches (seq 4..5)"
    assert format_event({"type": "command", "host": "h", "strategy": "gc_collect", "status": "success",
                         "error": None, "timestamp": TS}) == f"{CLOCK} {'h':<16} command gc_collect success"
    assert format_event({"type": "command", "host": "h", "strategy": "gc_collect", "status": "timeout",
                         "error": "late", "timestamp": TS}) == f"{CLOCK} {'h':<16} command gc_collect timeout: late"


def test_unknown_event_type_and_missing_fields_still_render():
    """An unknown type prints the raw event; a missing or bad timestamp prints --:--:--."""
    ev = {"type": "weird", "host": "h", "x": 1}
    assert format_event(ev) == f"--:--:-- {'h':<16} weird {ev}"
    assert format_event({}) == f"--:--:-- {'?':<16} ? {{}}"
    assert format_event({"type": "host", "host": "h", "timestamp": "noon"}).startswith("--:--:-- ")


# ------------------------------------------------------------------ status
def test_status_without_hosts_says_so():
    """An empty fleet prints a friendly sentence, not an empty table."""
    assert format_status({"hosts": []}, now=0.0) == "no hosts have reported yet"
    assert format_status({}, now=0.0) == "no hosts have reported yet"


def test_status_table_has_a_row_per_host_and_a_line_per_violation():
    """Each host prints state, health, age, counters and collectors; each violation a '!' line."""
    status = {"hosts": [
        {"name": "web01", "alive": True, "health": "warning", "last_seen": 95.0,
         "counters": {"batches": 12, "gaps": 1, "bad_frames": 3},
         "collectors": [{"kind": "cpu", "pid": 42, "restarts": 2}, {"kind": "io", "pid": None}],
         "budget_violations": [{"severity": "warning", "metric": "cpu_percent", "value": 90.0,
                                "limit": 80.0}]},
        {"name": "db01", "alive": False},
    ]}
    lines = format_status(status, now=100.0).split("\n")
    assert lines[0].split() == ["HOST", "STATE", "HEALTH", "SEEN", "BATCHES", "GAPS", "BAD", "COLLECTORS"]
    assert lines[1].split() == ["web01", "up", "warning", "5s", "12", "1", "3", "cpu:42/r2", "io:-/r0"]
    assert lines[2] == "  ! warning cpu_percent = 90 (limit 80)"
    assert lines[3].split() == ["db01", "DOWN", "?", "0s", "0", "0", "0"]
    assert len(lines) == 4


def test_status_uses_the_wall_clock_when_now_is_omitted(monkeypatch):
    """Without now, the age is measured from time.time()."""
    monkeypatch.setattr(time, "time", lambda: 130.0)
    out = format_status({"hosts": [{"name": "h", "alive": True, "last_seen": 100.0}]})
    assert out.split("\n")[1].split()[3] == "30s"


# ------------------------------------------------------------------ command results
def test_command_result_line_with_verdict_and_duration():
    """A result prints host: strategy -> status, with the verdict and duration when present."""
    result = {"host": "web01", "strategy": "gc_collect", "status": "success",
              "result": {"verdict": "improved", "duration_ms": 12.345}}
    assert format_command_result(result) == "web01: gc_collect -> success (verdict improved, 12.3 ms)"


def test_command_result_line_with_verdict_but_no_duration():
    """A verdict without duration prints just the verdict."""
    result = {"host": "h", "strategy": "s", "status": "success", "result": {"verdict": "neutral"}}
    assert format_command_result(result) == "h: s -> success (verdict neutral)"


def test_command_result_line_with_error_and_odd_result():
    """An error is appended after the status; a non-map result is ignored."""
    result = {"host": "h", "strategy": "s", "status": "refused", "error": "unknown host 'x'",
              "result": [1, 2]}
    assert format_command_result(result) == "h: s -> refused: unknown host 'x'"
    assert format_command_result({}) == "?: ? -> ?"


# ------------------------------------------------------------------ peer strings are data
CLEAR = "\x1b[2J"


def test_subscribe_line_shows_an_escape_sequence_in_a_label_value_escaped():
    """A label value (or name, unit, error) holding ESC [2J prints as the visible text \\x1b[2J."""
    ev = {"type": "metric", "host": "h", "category": "io", "name": "disk_busy_percent",
          "labels": {"dev": f"sda{CLEAR}"}, "value": 1, "unit": "%", "timestamp": TS}
    line = format_event(ev)
    assert "\x1b" not in line and line.endswith("disk_busy_percent{dev=sda\\x1b[2J} = 1%")
    err = format_event({"type": "command", "host": "h", "strategy": "s", "status": "failed",
                        "error": f"boom{CLEAR}\u202eexe.txt", "timestamp": TS})
    assert err.endswith("command s failed: boom\\x1b[2J\\u202eexe.txt")
    odd = format_event({"type": "weird", "host": "h", "note": "\x9b2J"})
    assert "\x9b" not in odd


def test_status_shows_escape_sequences_in_host_info_and_violations_escaped():
    """Collector kinds, health and violation metrics from peers print escaped, one line each."""
    status = {"hosts": [{"name": "web01", "alive": True, "health": f"ok{CLEAR}", "last_seen": 100.0,
                         "collectors": [{"kind": f"cpu\n{CLEAR}", "pid": 1}],
                         "budget_violations": [{"severity": "warning", "metric": f"m{CLEAR}", "value": 1,
                                                "limit": 2}]}]}
    out = format_status(status, now=100.0)
    lines = out.split("\n")
    assert "\x1b" not in out and len(lines) == 3
    assert "ok\\x1b[2J" in lines[1] and "cpu\\n\\x1b[2J:1/r0" in lines[1]
    assert lines[2] == "  ! warning m\\x1b[2J = 1 (limit 2)"


def test_command_result_shows_an_escape_sequence_in_the_error_escaped():
    """The error text of a command result (from the agent) prints escaped."""
    result = {"host": "h", "strategy": "s", "status": "failed", "error": f"no{CLEAR}\x07",
              "result": {"verdict": f"v{CLEAR}"}}
    assert format_command_result(result) == "h: s -> failed: no\\x1b[2J\\x07 (verdict v\\x1b[2J)"
