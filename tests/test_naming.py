"""perfmesh.export.naming: one Prometheus name per perfmesh series, in base units."""

from __future__ import annotations

import pytest

from perfmesh.export.naming import NameCache, PromName, generic, prom_name


@pytest.mark.parametrize("name,unit,labelled,expected,value,converted", [
    ("cpu_percent", "%", False, "perfmesh_cpu_busy_ratio", 95.0, 0.95),
    ("cpu_percent", "%", True, "perfmesh_cpu_core_busy_ratio", 50.0, 0.5),
    ("load_1m", "", False, "perfmesh_load1", 1.5, 1.5),
    ("cpu_count", "", False, "perfmesh_cpus", 4.0, 4.0),
    ("memory_percent", "%", False, "perfmesh_memory_used_ratio", 25.0, 0.25),
    ("memory_used_bytes", "B", False, "perfmesh_memory_used_bytes", 10.0, 10.0),
    ("disk_busy_percent", "%", False, "perfmesh_disk_busiest_busy_ratio", 12.5, 0.125),
    ("response_time_ms", "ms", False, "perfmesh_response_time_p95_seconds", 250.0, 0.25),
    ("response_time_avg_ms", "ms", False, "perfmesh_response_time_avg_seconds", 5.0, 0.005),
    ("function_p99_ms", "ms", True, "perfmesh_function_p99_seconds", 1.0, 0.001),
    ("requests_per_s", "req/s", False, "perfmesh_requests_per_second", 3.0, 3.0),
    ("process_rss_mb", "MB", False, "perfmesh_process_resident_memory_bytes", 2.0, 2.0 * 2**20),
    ("memory_growth_mb_per_min", "MB/min", False, "perfmesh_memory_growth_bytes_per_second", 60.0, 2.0**20),
    ("function_avg_peak_kb", "KB", True, "perfmesh_function_avg_peak_bytes", 2.0, 2048.0),
    ("queue_depth", "%", False, "perfmesh_queue_depth_ratio", 50.0, 0.5),
    ("request_count", "", False, "perfmesh_interval_requests", 7.0, 7.0),
    ("jobs_count", "", False, "perfmesh_jobs_count_value", 7.0, 7.0),
    ("app.latency:p99", "", False, "perfmesh_app_latency_p99", 3.0, 3.0),
    ("uptime_s", "s", False, "perfmesh_uptime_seconds", 3.0, 3.0),
])
def test_gauges_are_named_in_base_units(name, unit, labelled, expected, value, converted):
    """Percent -> ratio, ms -> seconds, MB -> bytes, /s -> per_second; collector series by table."""
    out = prom_name(name, unit, labelled)
    assert out is not None and out.name == expected and not out.counter
    assert out.convert(value) == converted


def test_counters_keep_their_total_names():
    """A series ending in _total is a counter under perfmesh_<name>; calls counts are counters."""
    assert prom_name("disk_read_bytes_total", "B", True) == PromName(
        "perfmesh_disk_read_bytes_total", True, 1.0, "disk_read_bytes_total (B), a counter")
    assert prom_name("function_calls", "", True).name == "perfmesh_function_calls_total"
    assert prom_name("function_calls", "", True).counter


def test_rates_with_counters_and_reserved_names_are_not_exported():
    """Disk and network rates give way to their counters; our own families cannot be shadowed."""
    for name in ("disk_read_bytes_per_s", "net_recv_bytes_per_s", "net_drops_out_per_s"):
        assert prom_name(name, "B/s", True) is None and prom_name(name, "B/s", False) is None
    assert prom_name("disk_busy_percent", "%", True) is None
    assert prom_name("host_up", "", False) is None and prom_name("remote_write_x", "", False) is None
    assert generic("cpu_user_percent", "%").name == "perfmesh_cpu_user_ratio"
    assert prom_name("cpu_user_percent", "%", True).name == "perfmesh_cpu_user_ratio"  # no per-device entry


def test_name_cache_is_bounded():
    """The cache answers like prom_name and is cleared, not grown, past its limit."""
    cache = NameCache(max_entries=2)
    assert cache.get("cpu_percent", "%", False) == prom_name("cpu_percent", "%", False)
    cache.get("a", "", False)
    cache.get("a", "", False)
    cache.get("b", "", False)
    assert len(cache) == 1
    assert PromName("x").to_dict() == {"name": "x", "counter": False, "scale": 1.0, "per": 1.0, "help": "",
                                       "histogram": ""}


def test_histogram_parts_in_seconds_keep_their_names():
    """<x>_seconds_bucket/_sum/_count belong to histogram perfmesh_<x>_seconds."""
    for part in ("bucket", "sum", "count"):
        out = prom_name(f"response_time_seconds_{part}", "", part == "bucket")
        assert out.name == f"perfmesh_response_time_seconds_{part}"
        assert out.histogram == "perfmesh_response_time_seconds"
