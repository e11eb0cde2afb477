"""`perfmesh web` in a real headless chromium (Debian's chromium + chromedriver via selenium),
and the HTTP surface it serves."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request

import pytest

try:
    from tests.browser import console_errors, find_browser, start_browser
    from tests.waiting import wait_until
except ImportError:  # pragma: no cover - tests/ run as a rootdir without a package
    from browser import console_errors, find_browser, start_browser
    from waiting import wait_until

CHROMIUM, _, WHY = find_browser()
needs_browser = pytest.mark.skipif(CHROMIUM is None, reason=f"no headless browser: {WHY}; .ci/run installs it")


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout_s: float = 15.0) -> bytes:
    return wait_until(lambda: urllib.request.urlopen(url, timeout=2).read(), timeout_s, f"{url} served",
                      poll_s=0.1, retry_on=(OSError,))


def wait_js(driver, script: str, timeout_s: float = 20.0, what: str = ""):
    try:
        return wait_until(lambda: driver.execute_script(script), timeout_s, what or script, poll_s=0.1)
    except AssertionError as exc:
        raise AssertionError(f"page never showed {what or script} ({exc}); console: {driver.get_log('browser')}") \
            from None


@pytest.fixture(scope="module")
def web_mesh(module_mesh):
    """Two hosts and a web server shared by the browser tests (one command, otherwise reads)."""
    mesh = module_mesh
    mesh.aggregator()
    mesh.agent("alpha")
    mesh.agent("beta")
    mesh.wait_hosts("alpha", "beta")
    port = free_port()
    mesh.spawn("web", "--connect", mesh.connect, "--listen", f"127.0.0.1:{port}", "--allow-commands", log="web")
    base = f"http://127.0.0.1:{port}"
    wait_http(base + "/")
    return mesh, base


@pytest.fixture
def browser(tmp_path):
    driver = start_browser(1280, 900, tmp_path / "chromium-profile")
    yield driver
    driver.quit()


@pytest.mark.multiprocess
@needs_browser
def test_fleet_page_shows_both_hosts_and_host_page_charts_receive_points(web_mesh, browser):
    mesh, base = web_mesh
    browser.get(base + "/")
    wait_js(browser, "return document.getElementById('hosts').dataset.hosts === '2'", what="two host cards")
    names = browser.execute_script("return [...document.querySelectorAll('.card-name')].map(e => e.textContent)")
    assert sorted(names) == ["alpha", "beta"]
    assert wait_js(browser, "return document.getElementById('conn').textContent === 'live'", what="live")
    assert console_errors(browser) == []

    browser.get(base + "/host/alpha")
    cpu = "document.querySelector('.chart[data-group=cpu]')"
    first = int(wait_js(browser, f"return {cpu} && Number({cpu}.dataset.points) > 0 && {cpu}.dataset.points",
                        what="points on the CPU chart"))
    more = int(wait_js(browser, f"return Number({cpu}.dataset.points) > {first} && {cpu}.dataset.points",
                       what="new points arriving"))
    assert more > first
    titles = browser.execute_script("return [...document.querySelectorAll('.chart')].map(c => c.dataset.title)")
    assert {"CPU", "Memory and swap", "Load average", "Disk I/O", "Network", "Per CPU"} <= set(titles)
    assert browser.find_element("id", "h-name").text == "alpha"
    assert console_errors(browser) == []


@pytest.mark.multiprocess
@needs_browser
def test_a_command_from_the_page_asks_for_confirmation_and_lands_in_the_log(web_mesh, browser):
    mesh, base = web_mesh
    browser.get(base + "/host/beta")
    wait_js(browser, "return document.getElementById('strategy').options.length > 0", what="strategies")
    browser.execute_script("const s = document.getElementById('strategy'); s.value = 'gc_collect';")
    browser.find_element("css selector", "#command-form button").click()
    alert = browser.switch_to.alert
    assert alert.text == "Run gc_collect on beta?"
    alert.accept()
    wait_js(browser, "return document.getElementById('command-result').textContent.startsWith('success')",
            what="the command's result")
    wait_js(browser, "return document.getElementById('commands').textContent.includes('gc_collect')",
            what="the command in the log")
    assert console_errors(browser) == []


@pytest.mark.multiprocess
@needs_browser
def test_history_range_loads_into_the_charts(web_mesh, browser):
    mesh, base = web_mesh
    browser.get(base + "/host/alpha")
    wait_js(browser, "return document.querySelector('.chart[data-group=mem]')", what="the memory chart")
    browser.find_element("css selector", "#range button[data-range='900']").click()
    data = json.loads(urllib.request.urlopen(f"{base}/api/history?host=alpha&key=memory_percent&since_s=900").read())
    assert data["key"] == "memory_percent" and len(data["points"]) > 5
    assert console_errors(browser) == []


# ------------------------------------------------------------------ HTTP surface, no browser
@pytest.fixture
def server():
    from workers.transport import Endpoint
    from workers.web import WebApp, make_server
    app = WebApp(Endpoint("127.0.0.1", 1), allow_commands=False)     # the feed is never started
    srv = make_server(app, "127.0.0.1:0")
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    t.start()
    yield app, f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()
    app.ctx.term()


def fetch(url: str, data: bytes | None = None, headers: dict | None = None) -> tuple[int, dict, bytes]:
    req = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def test_pages_and_assets_are_served_with_a_strict_content_security_policy(server):
    app, base = server
    status, headers, body = fetch(base + "/")
    assert status == 200 and b'data-page="fleet"' in body and b"{{" not in body
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    for name in ("app.js", "chart.js", "style.css", "favicon.svg"):
        assert fetch(f"{base}/static/{name}")[0] == 200
    assert fetch(base + "/static/../web.py")[0] == 404
    assert b"http://" not in fetch(base + "/static/app.js")[2] and b"https://" not in fetch(base + "/")[2]
    status, _, body = fetch(base + "/host/web-01.example")
    assert status == 200 and b'data-host="web-01.example"' in body


def test_host_names_are_checked_and_escaped(server):
    app, base = server
    assert fetch(base + "/host/%3Cscript%3E")[0] == 404
    assert b"&lt;x&gt;" in app.page("<x>") and b"<x>" not in app.page("<x>")
    with app.lock:
        app.model.apply_event({"type": "metric", "host": "h1", "name": "cpu_percent", "value": 5.0, "unit": "%",
                               "timestamp": 1.0, "labels": {}})
    assert json.loads(fetch(base + "/api/fleet")[2])["hosts"][0]["name"] == "h1"
    assert json.loads(fetch(base + "/api/host/h1")[2])["series"]["cpu_percent"]["points"] == [[1.0, 5.0]]
    assert fetch(base + "/api/host/nope")[0] == 404
    assert fetch(base + "/api/history?host=h1&key=%3Cx%3E&since_s=60")[0] == 400
    assert fetch(base + "/nope")[0] == 404


def test_commands_are_refused_unless_allowed(server):
    app, base = server
    body = json.dumps({"host": "h1", "strategy": "gc_collect", "params": {}}).encode()
    status, _, out = fetch(base + "/api/command", body, {"Content-Type": "application/json"})
    assert status == 403 and b"--allow-commands" in out
    app.allow_commands = True
    assert fetch(base + "/api/command", body, {"Content-Type": "text/plain"})[0] == 415
    assert fetch(base + "/api/command", body, {"Content-Type": "application/json",
                                               "Origin": "http://evil.example"})[0] == 403
    assert fetch(base + "/api/command", b"{", {"Content-Type": "application/json"})[0] == 400
    assert fetch(base + "/api/command", b'{"host": "<x>"}', {"Content-Type": "application/json"})[0] == 400
    assert fetch(base + "/api/nope", body, {"Content-Type": "application/json"})[0] == 404
