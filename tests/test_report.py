"""`perfmesh report`: one host of a running mesh as a self-contained HTML file, opened in a browser."""

from __future__ import annotations

import re

import pytest

try:
    from tests.browser import console_errors, find_browser, start_browser
except ImportError:  # pragma: no cover - tests/ run as a rootdir without a package
    from browser import console_errors, find_browser, start_browser

CHROMIUM, _, WHY = find_browser()
pytestmark = pytest.mark.multiprocess


@pytest.fixture(scope="module")
def report(module_mesh):
    """One report of a two-host mesh, read by both tests (they only read the file)."""
    mesh, tmp_path = module_mesh, module_mesh.tmp
    mesh.aggregator()
    mesh.agent("alpha")
    mesh.agent("beta")
    mesh.wait_hosts("alpha", "beta")
    assert mesh.cli("command", "alpha", "gc_collect").returncode == 0
    out = tmp_path / "alpha.html"
    res = mesh.cli("report", "--host", "alpha", "--since", "600", "--out", str(out))
    assert res.returncode == 0, res.stderr
    assert f"wrote {out}" in res.stdout
    return out


def test_report_is_one_self_contained_file_with_plots(report):
    page = report.read_text()
    assert "<title>perfmesh report · alpha</title>" in page
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)      # nothing fetched from anywhere
    assert "<script" not in page
    assert page.count('<svg class="plot"') >= 6
    for metric in ("cpu_percent", "memory_percent", "load_1m", "disk_read_bytes_per_s", "net_recv_bytes_per_s"):
        assert f'data-metric="{metric}"' in page
    assert "Budget utilization" in page and "Optimizations applied" in page and "Bottlenecks" in page


def test_report_of_an_unknown_host_is_refused(mesh, tmp_path):
    mesh.aggregator()
    res = mesh.cli("report", "--host", "nobody", "--out", str(tmp_path / "x.html"))
    assert res.returncode == 1 and "host 'nobody' is not known" in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "x.html").exists()


@pytest.mark.skipif(CHROMIUM is None, reason=f"no headless browser: {WHY}; .ci/run installs it")
def test_report_opens_in_the_browser_with_its_plots(report, tmp_path):
    driver = start_browser(1200, 900, tmp_path / "chromium-profile")
    try:
        driver.get(report.resolve().as_uri())
        plots = driver.find_elements("css selector", "svg.plot")
        assert len(plots) >= 6
        assert all(p.size["width"] > 300 and p.size["height"] > 80 for p in plots)
        lines = driver.execute_script("return document.querySelectorAll('svg.plot polyline').length")
        assert lines >= 6
        assert driver.find_element("tag name", "h1").text.startswith("alpha")
        assert console_errors(driver) == []
    finally:
        driver.quit()
