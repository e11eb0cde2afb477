"""``perfmesh web``: a dashboard served over HTTP, live over server-sent events.

One more subscriber process: a :class:`~workers.feed.Feed` thread keeps a
:class:`~perfmesh.views.dashboard.FleetModel` current, and a stdlib ``ThreadingHTTPServer`` serves the
shipped static page (``workers/web_assets``; nothing from the internet), JSON for the fleet and
one host, history from the aggregator, and an SSE stream. Sending a command needs
``--allow-commands`` and a same-origin JSON POST (the page asks for confirmation first).

Every request passes :class:`~workers.web_access.WebAccess` first (its Host, then its secret
when one is set, then for a write its Origin and, for a command, the page token), and at most
``max_connections`` are served at once (:class:`~workers.bounded_http.BoundedHTTPServer`).
"""

from __future__ import annotations

import html
import json
import logging
import math
import re
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler
from importlib import resources
from typing import Any, Callable
from urllib.parse import parse_qs, unquote, urlsplit

import zmq

from perfmesh.model.address import DEFAULT_HOST, is_host_name, parse_listen
from perfmesh.views.dashboard import FleetModel
from perfmesh.views.series import downsample
from perfmesh.errors import ConfigError, PerfmeshError

from .bounded_http import BoundedHTTPServer
from .client import ApiClient, Unreachable
from .feed import Feed
from .transport import Endpoint
from .web_access import COOKIE, PAGE_TOKEN_HEADER, WebAccess, web_access

log = logging.getLogger("perfmesh.web")

ASSETS = {"app.js": "text/javascript; charset=utf-8", "chart.js": "text/javascript; charset=utf-8",
          "style.css": "text/css; charset=utf-8", "favicon.svg": "image/svg+xml",
          # uPlot 1.6.32 (MIT, uPlot.LICENSE), vendored from its npm package: the charts' library
          "uPlot.iife.min.js": "text/javascript; charset=utf-8", "uPlot.min.css": "text/css; charset=utf-8",
          "uPlot.LICENSE": "text/plain; charset=utf-8"}
# a series key as model/serieskey.py writes it: label values may hold backslash escapes
KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*(\{([A-Za-z0-9_.,=:/-]|\\[\\,={}\"])*\})?")
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",   # "no-referrer" would make a form's Origin "null"
}
MAX_BODY_BYTES = 16_384
DEFAULT_MAX_CONNECTIONS = 32
PUBLIC_PATHS = ("/login", "/favicon.ico")      # and /static/: shipped files, no fleet data


def asset(name: str) -> bytes:
    return resources.files("workers").joinpath("web_assets", name).read_bytes()


def parse_web_listen(text: str) -> tuple[str, int]:
    """``--listen``: ``ADDR:PORT`` (``:PORT`` means the loopback address)."""
    if isinstance(text, str) and text.startswith(":"):
        text = DEFAULT_HOST + text
    return parse_listen(text, what="--listen", example="127.0.0.1:7780")


class WebApp:
    """The state behind the HTTP handlers: the model, its feed, and one api client."""

    def __init__(self, endpoint: Endpoint, allow_commands: bool = False,
                 command_endpoint: Endpoint | None = None, access: WebAccess | None = None) -> None:
        self.endpoint = endpoint
        self.access = access or WebAccess()
        # commands go with the operator key when one is configured, and are off otherwise
        self.command_endpoint = command_endpoint or endpoint
        self.allow_commands = allow_commands or command_endpoint is not None
        self.model = FleetModel(window_s=600.0, max_points=600)
        self.lock = threading.Lock()
        self.feed = Feed(endpoint, self.model, self.lock, name="web")
        self.stopping = threading.Event()
        self.ctx = zmq.Context()
        self.api_lock = threading.Lock()
        self.clients: dict[str, ApiClient] = {}     # "read" and "command"

    def start(self) -> None:
        self.feed.start()

    def stop(self) -> None:
        self.stopping.set()
        self.feed.stop()
        with self.api_lock:
            for client in self.clients.values():
                client.close()
            self.clients.clear()
        self.ctx.term()

    def call(self, fn: str, *args: Any, **kw: Any) -> Any:
        """One api request; a fresh socket after a timeout so stale requests do not pile up."""
        role = "command" if fn == "command" else "read"
        with self.api_lock:
            client = self.clients.get(role)
            if client is None:
                endpoint = self.command_endpoint if role == "command" else self.endpoint
                client = self.clients[role] = ApiClient(endpoint, ctx=self.ctx, name="web")
            try:
                return getattr(client, fn)(*args, **kw)
            except Unreachable:
                client.close()
                del self.clients[role]
                raise

    def page(self, host: str | None) -> bytes:
        text = asset("index.html").decode()
        text = text.replace("{{PAGE}}", "host" if host else "fleet")
        text = text.replace("{{HOST}}", html.escape(host or "", quote=True))
        text = text.replace("{{TITLE}}", html.escape(f"{host} · perfmesh" if host else "perfmesh fleet"))
        text = text.replace("{{COMMANDS}}", "on" if self.allow_commands else "off")
        text = text.replace("{{ENDPOINT}}", html.escape(str(self.endpoint)))
        text = text.replace("{{TOKEN}}", html.escape(self.access.page_token))
        return text.encode()

    def login_page(self, message: str = "") -> bytes:
        return asset("login.html").decode().replace("{{MESSAGE}}", html.escape(message)).encode()


class Handler(BaseHTTPRequestHandler):
    server_version = "perfmesh-web"
    protocol_version = "HTTP/1.1"
    app: WebApp   # set on the subclass made by make_server
    timeout = 20.0   # seconds a connection may idle or stall before its thread is freed

    def log_message(self, fmt: str, *args: Any) -> None:   # quiet access log
        log.debug("%s " + fmt, self.address_string(), *args)

    # ------------------------------------------------------------ helpers
    def end_headers(self) -> None:
        if self.close_connection:     # e.g. a refused POST whose body was never read
            self.send_header("Connection", "close")
        super().end_headers()

    def _send(self, status: int, body: bytes, ctype: str, cache: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "max-age=300" if cache else "no-store")
        for k, v in SECURITY_HEADERS.items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, obj: Any, status: int = 200) -> None:
        self._send(status, json.dumps(obj, allow_nan=False, default=_jsonable).encode(), "application/json")

    def _error(self, status: int, message: str) -> None:
        self._json({"error": message}, status)

    def _length(self) -> int:
        """The body's Content-Length, or -1 when it is missing or not a number."""
        text = self.headers.get("Content-Length") or ""
        return int(text) if text.isdigit() and len(text) < 10 else -1

    def _admit(self, path: str) -> bool:
        """Host, secret, and for a write the Origin: answers and returns False when refused."""
        access = self.app.access
        host = self.headers.get("Host")
        if not access.host_allowed(host):
            self.close_connection = True
            self._error(421, f"Host {host!r} is not an address of this dashboard; "
                             "start `perfmesh web` with --allow-host NAME to serve it under that name")
            return False
        if self.command not in ("GET", "HEAD") and not access.same_origin(self.headers.get("Origin"), host):
            self._error(403, "a request that changes state needs an Origin header naming this dashboard")
            return False
        if not (path in PUBLIC_PATHS or path.startswith("/static/") or access.authorized(self.headers)):
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Bearer realm="perfmesh"')
            page = path == "/" or path.startswith("/host/")
            body = self.app.login_page() if page else json.dumps(
                {"error": "authentication required: send Authorization: Bearer SECRET or log in at /login"}).encode()
            self.send_header("Content-Type", "text/html; charset=utf-8" if page else "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            for k, v in SECURITY_HEADERS.items():
                self.send_header(k, v)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
            return False
        return True

    def _login(self) -> None:
        """POST /login with the secret as a form field: sets the session cookie and goes to /."""
        access = self.app.access
        if access.secret is None:
            return self._error(404, "not found: this dashboard has no --auth-token")
        length = self._length()
        if not 0 < length <= MAX_BODY_BYTES:
            return self._error(413, f"login body must be 1..{MAX_BODY_BYTES} bytes")
        form = parse_qs(self.rfile.read(length).decode("utf-8", "replace"))
        if not access.secret_ok(form.get("token", [""])[0]):
            return self._send(401, self.app.login_page("That is not the token."), "text/html; charset=utf-8")
        self.send_response(303)
        self.send_header("Location", "/")
        self.send_header("Set-Cookie", f"{COOKIE}={access.session_cookie()}; Path=/; HttpOnly; SameSite=Strict")
        self.send_header("Content-Length", "0")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()

    # ------------------------------------------------------------ GET
    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        path, query = url.path, parse_qs(url.query)
        app = self.app
        if not self._admit(path):
            return
        try:
            if path == "/login" and app.access.secret is not None:
                self._send(200, app.login_page(), "text/html; charset=utf-8")
            elif path == "/":
                self._send(200, app.page(None), "text/html; charset=utf-8")
            elif path.startswith("/host/"):
                host = unquote(path[len("/host/"):])
                if not is_host_name(host):
                    return self._error(404, "no such host")
                self._send(200, app.page(host), "text/html; charset=utf-8")
            elif path.startswith("/static/") and path[len("/static/"):] in ASSETS:
                name = path[len("/static/"):]
                self._send(200, asset(name), ASSETS[name], cache=True)
            elif path == "/favicon.ico":
                self._send(200, asset("favicon.svg"), ASSETS["favicon.svg"], cache=True)
            elif path == "/api/fleet":
                with app.lock:
                    self._json(app.model.overview())
            elif path.startswith("/api/host/"):
                host = unquote(path[len("/api/host/"):])
                with app.lock:
                    data = app.model.host_json(host)
                self._json(data) if data is not None else self._error(404, f"no host {host!r}")
            elif path == "/api/history":
                self._history(query)
            elif path == "/api/alerts" and is_host_name(host := query.get("host", [""])[0]):
                self._relay(lambda: {"host": host, "alerts": app.call(     # the host's alert log, 7 days
                    "alerts", host, time.time() - 7 * 86400, limit=50)["alerts"]})
            elif path == "/events":
                self._events(query.get("host", [None])[0])
            else:
                self._error(404, "not found")
        except OSError:     # the client went away or stalled past the timeout
            self.close_connection = True

    def _history(self, query: dict[str, list[str]]) -> None:
        host, key = query.get("host", [""])[0], query.get("key", [""])[0]
        try:
            since_s = float(query.get("since_s", ["3600"])[0])
        except ValueError:
            since_s = math.nan
        if not is_host_name(host) or not KEY_RE.fullmatch(key) or not 0 < since_s <= 30 * 86400:
            return self._error(400, "history needs host, key and 0 < since_s <= 2592000")
        self._relay(lambda: {"host": host, "key": key, "points": downsample(
            self.app.call("history", host, key, time.time() - since_s))})

    def _relay(self, answer: Callable[[], Any]) -> None:
        """JSON from the aggregator's api, or 503 naming why not."""
        try:
            self._json(answer())
        except PerfmeshError as exc:
            self._error(503, str(exc))

    def _events(self, host: str | None) -> None:
        """Server-sent events: ``fleet`` every second and, for a host page, its new points."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-store")
        for k, v in SECURITY_HEADERS.items():
            self.send_header(k, v)
        self.close_connection = True
        self.end_headers()
        since = -math.inf
        app = self.app
        self.wfile.write(b"retry: 2000\n\n")
        while not app.stopping.is_set():
            with app.lock:
                fleet = app.model.overview()
                detail = app.model.host_json(host, since) if host else None
            chunks = [_sse("fleet", fleet)]
            if detail is not None:
                for s in detail["series"].values():
                    since = max(since, s["points"][-1][0])
                chunks.append(_sse("host", detail))
            self.wfile.write(b"".join(chunks))
            self.wfile.flush()
            app.stopping.wait(1.0)

    # ------------------------------------------------------------ POST
    def do_PUT(self) -> None:
        self.close_connection = True      # the body is never read: the connection cannot be reused
        if self._admit(urlsplit(self.path).path):
            self._error(405, "method not allowed: the dashboard takes GET, and POST for commands")

    do_DELETE = do_PATCH = do_PUT

    def do_POST(self) -> None:
        self.close_connection = True      # a refused POST leaves its body unread
        path = urlsplit(self.path).path
        if not self._admit(path):
            return
        if path == "/login":
            return self._login()
        if path != "/api/command":
            return self._error(404, "not found")
        if not self.app.access.page_token_ok(self.headers.get(PAGE_TOKEN_HEADER)):
            return self._error(403, f"a command needs the {PAGE_TOKEN_HEADER} header of a page this server served")
        if not self.app.allow_commands:
            return self._error(403, "commands are disabled: start `perfmesh web` with --operator-key "
                                    "(secured aggregator) or --allow-commands to send them")
        if not (self.headers.get("Content-Type") or "").startswith("application/json"):
            return self._error(415, "send the command as application/json")
        length = self._length()
        if not 0 < length <= MAX_BODY_BYTES:
            return self._error(413, f"command body must be 1..{MAX_BODY_BYTES} bytes")
        try:
            body = json.loads(self.rfile.read(length))
        except ValueError:
            return self._error(400, "command body is not JSON")
        host, strategy, params = body.get("host"), body.get("strategy"), body.get("params", {})
        if not isinstance(host, str) or not is_host_name(host) or not isinstance(strategy, str) \
                or not isinstance(params, dict):
            return self._error(400, "command needs host, strategy and params (an object)")
        try:
            result = self.app.call("command", host, strategy, params, 10.0)
        except PerfmeshError as exc:
            return self._error(503, str(exc))
        self._json(result, 200)


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, float):
        return None
    if isinstance(obj, (set, tuple)):
        return list(obj)
    return str(obj)


def _sse(event: str, data: Any) -> bytes:
    text = json.dumps(data, allow_nan=False, default=_jsonable)
    return f"event: {event}\ndata: {text}\n\n".encode()


def make_server(app: WebApp, listen: str, max_connections: int = DEFAULT_MAX_CONNECTIONS) -> BoundedHTTPServer:
    host, port = parse_web_listen(listen)
    handler = type("BoundHandler", (Handler,), {"app": app})
    return BoundedHTTPServer((host, port), handler, max_connections)


def run_web(endpoint: Endpoint, listen: str, allow_commands: bool = False,
            command_endpoint: Endpoint | None = None, access: WebAccess | None = None,
            max_connections: int = DEFAULT_MAX_CONNECTIONS) -> int:
    """Serve until SIGTERM or SIGINT. ``access`` comes from :func:`~workers.web_access.web_access`
    (which fails closed off loopback without a secret); the default allows loopback only."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s web %(levelname)s %(message)s")
    if access is None:
        access = web_access(parse_web_listen(listen)[0])     # loopback only, or ConfigError
    app = WebApp(endpoint, allow_commands, command_endpoint, access)
    try:
        server = make_server(app, listen, max_connections)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {listen}: {exc.strerror or exc}") from None
    app.start()
    stop = threading.Event()

    def on_signal(*_: object) -> None:
        stop.set()
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    addr = server.server_address
    log.info("dashboard on http://%s:%d/ (aggregator %s, commands %s, %s, up to %d connections)", addr[0], addr[1],
             endpoint, "allowed" if app.allow_commands else "off",
             "token required" if app.access.secret else "loopback only", max_connections)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        app.stop()
        server.server_close()
    return 0
