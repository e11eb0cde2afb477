"""`perfmesh web` in a real headless chromium (Debian's chromium + chromedriver via selenium),
and the HTTP surface it serves."""

from __future__ import annotations

import json
import threading
import time
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


def same_origin(app, base: str, ctype: str = "application/json") -> dict:
    """The headers the served page sends with a command: its Origin, its token, JSON."""
    return {"Content-Type": ctype, "Origin": base, "X-Perfmesh-Token": app.access.page_token}


def test_commands_are_refused_unless_allowed(server):
    """With Origin and page token, a command still needs --allow-commands, JSON, and a valid body."""
    app, base = server
    body = json.dumps({"host": "h1", "strategy": "gc_collect", "params": {}}).encode()
    status, _, out = fetch(base + "/api/command", body, same_origin(app, base))
    assert status == 403 and b"--allow-commands" in out
    app.allow_commands = True
    assert fetch(base + "/api/command", body, same_origin(app, base, "text/plain"))[0] == 415
    assert fetch(base + "/api/command", b"{", same_origin(app, base))[0] == 400
    assert fetch(base + "/api/command", b'{"host": "<x>"}', same_origin(app, base))[0] == 400
    assert fetch(base + "/api/nope", body, same_origin(app, base))[0] == 404
    port = int(base.rsplit(":", 1)[1])
    assert raw_request(port, f"POST /api/command HTTP/1.1\nHost: 127.0.0.1:{port}\nOrigin: {base}\n"
                             f"X-Perfmesh-Token: {app.access.page_token}\nContent-Type: application/json\n"
                             "Content-Length: lots\n")[0] == 413


# ------------------------------------------------------------------ who may use the page (issue 13)
def raw_request(port: int, head: str, body: bytes = b"") -> tuple[int, bytes]:
    """One request with exactly these headers (urllib would set its own Host)."""
    import socket
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(head.replace("\n", "\r\n").encode() + b"\r\n" + body)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return int(data.split(b" ", 2)[1]), data.partition(b"\r\n\r\n")[2]


def test_a_foreign_host_header_is_refused_so_dns_rebinding_cannot_read_the_fleet(server):
    """Host: evil.example (a rebinding page) gets 421 on every path; loopback names are served."""
    app, base = server
    port = int(base.rsplit(":", 1)[1])
    for path in ("/api/fleet", "/", "/events", "/static/app.js"):
        status, body = raw_request(port, f"GET {path} HTTP/1.1\nHost: evil.example:{port}\nConnection: close\n")
        assert status == 421 and b"--allow-host" in body and b"hosts" not in body
    assert raw_request(port, "GET /api/fleet HTTP/1.1\nConnection: close\n")[0] == 421       # no Host at all
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", "LOCALHOST", f"[::1]:{port}"):
        assert raw_request(port, f"GET /api/fleet HTTP/1.1\nHost: {host}\nConnection: close\n")[0] == 200


def test_allow_host_adds_names_and_a_wildcard_listen_accepts_ip_literals():
    """--allow-host NAME is served; a wildcard listen answers its IP literals, never other names."""
    from workers.web_access import web_access
    access = web_access("127.0.0.1", ["Dash.Example."])
    assert access.host_allowed("dash.example:7780") and access.host_allowed("localhost")
    assert not access.host_allowed("evil.example") and not access.host_allowed("10.0.0.5")
    assert not access.host_allowed("dash.example:x") and not access.host_allowed("a" * 400)


def test_a_post_without_origin_or_page_token_is_refused(server):
    """Every POST needs Origin equal to its Host; a command also needs the page's token."""
    app, base = server
    app.allow_commands = True
    body = json.dumps({"host": "h1", "strategy": "gc_collect", "params": {}}).encode()
    good = same_origin(app, base)
    for drop in ("Origin", "X-Perfmesh-Token"):
        status, _, out = fetch(base + "/api/command", body, {k: v for k, v in good.items() if k != drop})
        assert status == 403 and drop.encode() in out
    for origin in ("http://evil.example", "null", base.replace("127.0.0.1", "localhost")):
        assert fetch(base + "/api/command", body, {**good, "Origin": origin})[0] == 403
    assert fetch(base + "/api/command", body, {**good, "X-Perfmesh-Token": "guess"})[0] == 403
    status, _, page = fetch(base + "/")
    assert app.access.page_token.encode() in page      # the served page carries its token
    req = urllib.request.Request(base + "/api/fleet", method="DELETE", headers={"Origin": base})
    assert fetch_request(req) == 405
    assert fetch_request(urllib.request.Request(base + "/api/fleet", method="DELETE")) == 403


def fetch_request(req: urllib.request.Request) -> int:
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def test_listen_off_loopback_without_a_token_fails_closed_with_one_line(tmp_path):
    """`perfmesh web --listen 0.0.0.0:PORT` without --auth-token: one line naming the flag, exit 2."""
    from tests.conftest import run_cli
    res = run_cli("web", "--listen", f"0.0.0.0:{free_port()}", "--connect", "127.0.0.1:1")
    assert res.returncode == 2 and res.stdout == ""
    assert res.stderr.count("\n") == 1 and "--auth-token FILE" in res.stderr and "Traceback" not in res.stderr
    loose = tmp_path / "token"
    loose.write_text("s3cret-s3cret-s3cret\n")
    loose.chmod(0o644)
    res = run_cli("web", "--listen", f"0.0.0.0:{free_port()}", "--auth-token", str(loose))
    assert res.returncode == 2 and "chmod 600" in res.stderr
    loose.chmod(0o600)
    loose.write_text("short\n")
    res = run_cli("web", "--listen", f"0.0.0.0:{free_port()}", "--auth-token", str(loose))
    assert res.returncode == 2 and "at least 16" in res.stderr


@pytest.mark.multiprocess
def test_with_a_token_requests_need_it_as_bearer_or_login_cookie(mesh, tmp_path):
    """Listening on 0.0.0.0 with --auth-token: 401 without the secret, 200 with it (header or login)."""
    secret = "correct-horse-battery-staple"
    token = tmp_path / "web.token"
    token.write_text(secret + "\n")
    token.chmod(0o600)
    port = free_port()
    mesh.spawn("web", "--connect", mesh.connect, "--listen", f"0.0.0.0:{port}", "--auth-token", str(token), log="web")
    base = f"http://127.0.0.1:{port}"
    wait_http(base + "/static/style.css")              # shipped files are public; data is not
    status, headers, body = fetch(base + "/api/fleet")
    assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer")
    status, _, body = fetch(base + "/")
    assert status == 401 and b'action="/login"' in body and b"data-page" not in body
    assert fetch(base + "/api/fleet", headers={"Authorization": "Bearer wrong-wrong-wrong-wrong"})[0] == 401
    status, _, body = fetch(base + "/api/fleet", headers={"Authorization": f"Bearer {secret}"})
    assert status == 200 and "hosts" in json.loads(body)
    assert raw_request(port, f"GET /api/fleet HTTP/1.1\nHost: evil.example\nAuthorization: Bearer {secret}\n"
                             "Connection: close\n")[0] == 421
    # the browser's way: log in once, then the cookie carries it
    form = f"token={secret}".encode()
    login = {"Content-Type": "application/x-www-form-urlencoded", "Origin": base}
    assert fetch(base + "/login", b"token=nope-nope-nope-nope", login)[0] == 401
    assert fetch(base + "/login", form, {"Content-Type": "application/x-www-form-urlencoded"})[0] == 403  # no Origin
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
    opener.open(urllib.request.Request(base + "/login", data=form, headers=login), timeout=5).read()
    with opener.open(base + "/api/fleet", timeout=5) as r:
        assert r.status == 200 and "hosts" in json.loads(r.read())
    with opener.open(base + "/", timeout=5) as r:
        assert b'data-page="fleet"' in r.read()


def thread_count(pid: int) -> int:
    import os
    return len(os.listdir(f"/proc/{pid}/task"))


@pytest.mark.multiprocess
def test_connections_are_capped_and_the_server_stays_responsive(mesh):
    """With --max-connections 4, slow clients hold at most 4 threads; more get 503 at once, never a
    thread each; once they leave, requests are served again."""
    import socket
    port = free_port()
    proc = mesh.spawn("web", "--connect", mesh.connect, "--listen", f"127.0.0.1:{port}", "--max-connections", "4",
                      log="web")
    base = f"http://127.0.0.1:{port}"
    wait_http(base + "/api/fleet")
    idle = thread_count(proc.pid)
    slow = []
    try:
        for _ in range(4):                        # slowloris: a request head that never ends
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(b"GET /api/fleet HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            slow.append(s)
        deadline = time.monotonic() + 10
        while (status := fetch(base + "/api/fleet")[0]) != 503 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert status == 503
        for _ in range(100):                      # a flood of silent connections on top
            s = socket.socket()
            s.settimeout(5)
            s.connect(("127.0.0.1", port))
            slow.append(s)
        began = time.monotonic()
        status, headers, _ = fetch(base + "/api/fleet")
        assert status == 503 and headers.get("Retry-After") == "1" and time.monotonic() - began < 4
        assert thread_count(proc.pid) <= idle + 4 + 1
    finally:
        for s in slow:
            s.close()
    deadline = time.monotonic() + 10
    while (status := fetch(base + "/api/fleet")[0]) != 200 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert status == 200 and proc.poll() is None


@pytest.mark.multiprocess
@needs_browser
def test_a_browser_logs_in_with_the_token_then_sees_the_fleet_live(mesh, tmp_path, browser):
    """Off loopback with --auth-token: the page asks for the token, then shows the fleet over SSE."""
    mesh.aggregator()
    mesh.agent("alpha")
    mesh.wait_hosts("alpha")
    token = tmp_path / "web.token"
    token.write_text("a-long-enough-secret-0123456789\n")
    token.chmod(0o600)
    port = free_port()
    mesh.spawn("web", "--connect", mesh.connect, "--listen", f"0.0.0.0:{port}", "--auth-token", str(token), log="web")
    base = f"http://127.0.0.1:{port}"
    wait_http(base + "/static/style.css")
    browser.get(base + "/")
    assert "data-page" not in browser.page_source and browser.find_elements("name", "token")
    browser.find_element("name", "token").send_keys("a-long-enough-secret-0123456789")
    browser.find_element("css selector", "form button").click()
    wait_js(browser, "return document.getElementById('hosts') && document.getElementById('hosts').dataset.hosts === '1'",
            what="the fleet after logging in")
    assert wait_js(browser, "return document.getElementById('conn').textContent === 'live'", what="live")


def test_web_flags_parse():
    """--allow-host repeats; --auth-token takes a file; --max-connections a positive number."""
    from workers.cli import build_parser
    args = build_parser().parse_args(["web", "--allow-host", "a.example", "--allow-host", "b", "--auth-token", "f",
                                      "--max-connections", "8"])
    assert (args.allow_host, args.auth_token, args.max_connections) == (["a.example", "b"], "f", 8)
    assert build_parser().parse_args(["web"]).allow_host == [] and build_parser().parse_args(["web"]).max_connections == 32


@pytest.mark.multiprocess
@needs_browser
def test_charts_use_the_vendored_library_a_drag_zooms_every_chart_and_the_crosshair_is_shared(web_mesh, browser):
    """uPlot comes from the page's own server (no network); a drag on one chart zooms them all;
    hovering one chart moves the cursor on the others; no console errors."""
    from selenium.webdriver.common.action_chains import ActionChains
    mesh, base = web_mesh
    browser.get(base + "/host/alpha")
    cpu = "document.querySelector('.chart[data-group=cpu]')"
    wait_js(browser, f"return {cpu} && {cpu}.querySelector('.uplot') && Number({cpu}.dataset.points) > 3",
            what="a uPlot CPU chart with points")
    scripts = browser.execute_script("return [...document.scripts].map(s => s.src)")
    assert f"{base}/static/uPlot.iife.min.js" in scripts and all(s.startswith(base) for s in scripts)
    assert browser.execute_script("return typeof uPlot") == "function"
    over = browser.find_element("css selector", ".chart[data-group=cpu] .u-over")
    width = over.size["width"]
    ActionChains(browser).move_to_element_with_offset(over, -width // 4, 0).click_and_hold() \
        .move_by_offset(width // 3, 0).release().perform()
    wait_js(browser, "return [...document.querySelectorAll('.chart')].every(c => c.dataset.zoomed === '1')",
            what="every chart zoomed")
    zoom = browser.execute_script("return perfmeshZoom()")
    assert zoom and 0 < zoom[1] - zoom[0] < 300
    ActionChains(browser).move_to_element(over).perform()       # the crosshair shows on the others too
    wait_js(browser, "return [...document.querySelectorAll('.chart[data-group=mem] .u-cursor-x')]"
                     ".some(e => e.style.transform && !e.classList.contains('u-off'))", what="a synced crosshair")
    ActionChains(browser).double_click(over).perform()
    wait_js(browser, "return perfmeshZoom() === null", what="the zoom reset by a double-click")
    browser.find_element("css selector", "#range button[data-range='604800']").click()
    wait_js(browser, "return window.perfmesh.windowS === 604800", what="the 7-day window")
    assert console_errors(browser) == []


def test_a_long_history_is_averaged_down_to_what_a_chart_can_draw():
    from perfmesh.views.series import downsample
    points = [[float(t), float(t % 10)] for t in range(10_000)]
    short = downsample(points, 1000)
    assert len(short) == 1000 and short[0] == [4.5, 4.5] and short[-1] == [9994.5, 4.5]
    assert downsample(points[:5], 1000) == points[:5]


@pytest.mark.multiprocess
@needs_browser
def test_the_host_page_shows_the_alert_log_from_the_store(mesh, browser, tmp_path):
    from tests.recordings import write_recording
    mesh.aggregator("--replay", str(write_recording(tmp_path / "demo.rec", seconds=10, breach=(2, 7))),
                    "--budget", "cpu_percent=50")
    port = free_port()
    mesh.spawn("web", "--connect", mesh.connect, "--listen", f"127.0.0.1:{port}", log="web")
    wait_http(f"http://127.0.0.1:{port}/")
    browser.get(f"http://127.0.0.1:{port}/host/web01")
    row = wait_js(browser, "return document.body.dataset.alerts === '1' && document.getElementById('violations')"
                           ".textContent.includes('cpu_percent') && document.getElementById('violations').textContent",
                  timeout_s=30, what="the alert in the log")
    assert "85" in row and "50" in row and "critical" in row      # 85 is 25 % or more over 50
    assert console_errors(browser) == []
