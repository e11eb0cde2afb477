"""The report's pure builders: SVG charts, statistics, budget utilization and the whole page."""

import re

import pytest

from perfmesh.views.report_html import (Line, budget_rows, build_report, group_series, nice_ceiling, series_stats,
                                  svg_chart)


def test_nice_ceiling_rounds_up_to_numbers_whose_quarters_read_well():
    assert [nice_ceiling(x) for x in (0, -1, float("inf"), 1, 1.1, 2.1, 7, 100, 101, 0.3)] == \
        [1.0, 1.0, 1.0, 1, 1.2, 2.4, 8, 100, 120, 0.32]


def test_series_stats_mean_p95_min_max_last():
    st = series_stats([(t, float(t)) for t in range(1, 21)])
    assert (st.count, st.mean, st.p95, st.minimum, st.maximum, st.last) == (20, 10.5, pytest.approx(19.05), 1.0, 20.0, 20.0)
    assert series_stats([]) is None
    assert series_stats([(0, 5.0)]).p95 == 5.0


def test_svg_chart_places_points_on_the_plot_area():
    """x runs over [t0, t1] across 644 px after a 64 px margin; y from the bottom (194) to the top (14)."""
    svg = svg_chart("cpu", [Line("total", [(0.0, 0.0), (50.0, 50.0), (100.0, 100.0)], "#123456")], "%", 0.0, 100.0,
                    y_max=100.0)
    assert '<polyline points="64,194 386,104 708,14"' in svg
    assert svg.count('class="grid"') == 5 and ">100%<" in svg and ">0%<" in svg
    assert '<polygon points="64,194 64,194 386,104 708,14 708,194"' in svg      # one line: filled area


def test_svg_chart_draws_a_dashed_budget_line_and_single_points():
    svg = svg_chart("load", [Line("a", [(5.0, 1.0)], "#111111"), Line("b", [(50.0, 3.0)], "#222222"),
                             Line("c", [], "#333333")], "", 0.0, 100.0, limit=2.0)
    assert 'class="limit"' in svg and "budget 2" in svg
    assert svg.count("<circle") == 2 and "<polygon" not in svg
    assert "<svg" in svg and svg.endswith("</svg>")


def test_svg_chart_escapes_titles():
    svg = svg_chart('<x y="1">', [], "", 0.0, 10.0)
    assert '<x y="1">' not in svg and "&lt;x y=&quot;1&quot;&gt;" in svg


def test_group_series_by_metric_with_total_first_and_natural_label_order():
    series = {"cpu_percent{cpu=10}": ("%", [(1, 1.0)]), "cpu_percent": ("%", [(1, 2.0)]),
              "cpu_percent{cpu=2}": ("%", [(1, 3.0)]), "zeta": ("", [(1, 4.0)]),
              "disk_read_bytes_per_s{device=sda}": ("B/s", [(1, 5.0)])}
    groups = group_series(series)
    assert [(name, unit, [label for label, _ in lines]) for name, unit, lines in groups] == [
        ("cpu_percent", "%", ["total", "cpu2", "cpu10"]),
        ("disk_read_bytes_per_s", "B/s", ["sda"]),
        ("zeta", "", ["total"]),
    ]


def test_budget_rows_utilization_and_time_over_the_limit():
    series = {"cpu_percent": ("%", [(1, 40.0), (2, 60.0), (3, 100.0), (4, 80.0)]), "load_1m": ("", [])}
    rows = budget_rows(series, {"cpu_percent": 80.0, "load_1m": 2.0, "swap_percent": 50.0})
    # p95 of 40, 60, 80, 100 interpolates at rank 2.85: 80 + 0.85 * 20 = 97
    assert rows == [{"metric": "cpu_percent", "unit": "%", "limit": 80.0, "mean": 70.0, "p95": pytest.approx(97.0),
                     "max": 100.0, "utilization_mean": 0.875, "utilization_p95": pytest.approx(97.0 / 80.0),
                     "over_fraction": 0.25}]
    zero = budget_rows({"x": ("", [(1, 1.0)])}, {"x": 0.0})[0]
    assert zero["utilization_p95"] == float("inf")


def status_entry():
    return {"name": "web<1>", "alive": True, "health": "warning",
            "info": {"cpu_count": 2, "memory_total_bytes": 2 * 1024**3, "platform": "Linux<x>", "interval_s": 0.5},
            "counters": {"batches": 10, "gaps": 1, "bad_frames": 0},
            "budget_violations": [{"metric": "cpu_percent", "value": 95.0, "limit": 80.0, "severity": "warning"}],
            "recent_violations": [
                {"metric": "cpu_percent", "value": 95.0, "limit": 80.0, "severity": "warning", "state": "firing",
                 "timestamp": 15.0},
                {"metric": "cpu_percent", "value": 120.0, "limit": 80.0, "severity": "critical", "timestamp": 16.0},
                {"metric": "cpu_percent", "value": 10.0, "limit": 80.0, "state": "resolved", "timestamp": 17.0}],
            "bottlenecks": [{"kind": "cpu_bound", "severity": "critical", "description": "CPU <bound>",
                             "recommended_strategy": "process_priority"},
                            {"kind": "io_bound", "severity": "warning"}]}


def test_build_report_has_plots_budgets_violations_bottlenecks_and_commands():
    series = {"cpu_percent": ("%", [(10.0, 50.0), (20.0, 95.0)]),
              "cpu_percent{cpu=0}": ("%", [(10.0, 40.0), (20.0, 90.0)]),
              "memory_total_bytes": ("B", [(10.0, 2.0 * 1024**3), (20.0, 2.0 * 1024**3)]),
              "net_recv_bytes_per_s{interface=<script>}": ("B/s", [(10.0, 1.0), (20.0, 2.0)]),
              "empty": ("", [])}
    commands = [{"strategy": "gc_collect", "status": "success", "timestamp": 18.0,
                 "result": {"verdict": "improved", "duration_ms": 7.5, "before": {"gc_tracked_objects": 200.0},
                            "after": {"gc_tracked_objects": 150.0}, "improvement": {"gc_tracked_objects": 50.0}}},
                {"strategy": "memory_trim", "status": "failed", "error": "nope <b>"}]
    page = build_report("web<1>", status_entry(), series, {"cpu_percent": 80.0}, 10.0, 20.0, 21.0, commands,
                        "127.0.0.1:7700")
    assert page.startswith("<!doctype html>") and "<script" not in page and "nope <b>" not in page
    assert "&lt;script&gt;" in page and "web&lt;1&gt;" in page and "CPU &lt;bound&gt;" in page
    assert page.count('<svg class="plot"') == 2                      # cpu_percent, net_recv; constant goes to a table
    assert re.search(r'data-metric="cpu_percent".*?cpu0', page, re.S)
    assert "memory_total_bytes</td><td class='num'>2.0GB" in page
    assert "116%" in page and "50%</td>" in page                    # p95 (92.75) utilization, time over budget
    assert "gc_tracked_objects: 200 → 150" in page and "gc_tracked_objects 50" in page and "7.5 ms" in page
    assert "failed: nope &lt;b&gt;" in page and "process_priority" in page
    assert page.count("<tr class=") >= 6 and "2 series" not in page and "5 series" in page
    assert "1 violation(s) firing" in page and "2.0GB" in page and "every 0.5 s" in page and "1 gaps" in page


def test_build_report_for_an_unknown_or_idle_host_says_so():
    page = build_report("h", None, {}, {"cpu_percent": 80.0}, 0.0, 7200.0, 7200.0)
    assert "No samples in this range." in page and "No budget violations recorded." in page
    assert "No optimization was applied" in page and "No bottleneck detected" in page
    assert "No budgeted metric has data" in page and "unknown" in page and "2.0 h" in page
    assert "(30 s)" in build_report("h", {}, {}, {}, 0.0, 30.0, 30.0)
    assert "(5 min)" in build_report("h", {}, {}, {}, 0.0, 300.0, 300.0)


def test_build_report_draws_at_most_twelve_lines_per_plot():
    series = {f"cpu_percent{{cpu={i}}}": ("%", [(0.0, float(i)), (1.0, float(i + 1))]) for i in range(14)}
    page = build_report("h", {}, series, {}, 0.0, 1.0, 1.0)
    assert page.count("<polyline") == 12 and "+2 more not drawn" in page


def test_percent_charts_keep_their_100_scale_despite_rounding_above_it():
    svg = svg_chart("cpu", [Line("t", [(0.0, 100.0000001), (1.0, 50.0)], "#000000")], "%", 0.0, 1.0, y_max=100.0)
    assert ">100%<" in svg and ">120%<" not in svg
    svg = svg_chart("cpu", [Line("t", [(0.0, 150.0), (1.0, 50.0)], "#000000")], "%", 0.0, 1.0, y_max=100.0)
    assert ">160%<" in svg


def test_report_and_timings_share_one_percentile():
    """The report's p95 and the timing utilities' percentiles are the same interpolating function."""
    from perfmesh.inproc import appmetrics, timing
    from perfmesh.model.percentile import percentile
    from perfmesh.views import report_html
    assert report_html.percentile is timing.percentile is appmetrics.percentile is percentile
    assert series_stats([(t, v) for t, v in enumerate([10.0, 20.0])]).p95 == percentile([10.0, 20.0], 95) == 19.5
