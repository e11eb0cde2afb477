"""An HTTP server with a bounded number of threads: at most ``max_connections`` are served at
once; every connection past that is answered ``503`` (with ``Retry-After``) at once and closed.

``ThreadingHTTPServer`` starts one thread per connection without limit, so a client that opens
thousands of slow connections gets thousands of threads. Here a semaphore guards every handler
thread; the accept loop never blocks and never queues. A refused connection gets its ``503``
from the accept loop itself (a few hundred bytes always fit a fresh socket's buffer) and then
sits with one drain thread, which reads what the client still sends (so closing does not reset
the connection before the client has read the answer) and closes it within ``DRAIN_S``. Threads:
at most ``max_connections`` + 1 (plus the accept loop); sockets held for draining are capped too.
"""

from __future__ import annotations

import json
import logging
import queue
import selectors
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

from perfmesh.errors import ConfigError

log = logging.getLogger("perfmesh.web")

DRAIN_S = 2.0                 # how long a refused client may keep sending before it is closed
MAX_DRAINING = 256            # refused sockets held at once; past that they are closed at once


def busy_response(max_connections: int) -> bytes:
    body = json.dumps({"error": f"busy: {max_connections} connections are open; try again shortly"}).encode()
    return (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\n"
            b"Connection: close\r\nCache-Control: no-store\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)


class BoundedHTTPServer(HTTPServer):
    """``HTTPServer`` serving each connection on its own thread, at most ``max_connections``."""

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler],
                 max_connections: int) -> None:
        if max_connections < 1:
            raise ConfigError(f"max_connections {max_connections!r}: expected a positive whole number")
        super().__init__(address, handler)
        self.max_connections = max_connections
        self.slots = threading.BoundedSemaphore(max_connections)
        self.refused = 0          # connections answered 503 because the cap was reached
        self.busy = busy_response(max_connections)
        self.draining: "queue.Queue[socket.socket]" = queue.Queue(MAX_DRAINING)
        self.drainer: threading.Thread | None = None

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.slots.acquire(blocking=False):
            self._refuse(request)
            return
        try:
            threading.Thread(target=self._serve, args=(request, client_address), daemon=True,
                             name="perfmesh-web-conn").start()
        except RuntimeError:      # the system is out of threads: refuse this one
            self.slots.release()
            self._refuse(request)

    def _serve(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)
            self.slots.release()

    def _refuse(self, request: socket.socket) -> None:
        """Answer 503 now, without a thread; hand the socket to the drain thread (or close it)."""
        self.refused += 1
        try:
            request.setblocking(False)
            request.send(self.busy)
            request.shutdown(socket.SHUT_WR)
            self.draining.put_nowait(request)
        except (OSError, queue.Full):
            self.close_request(request)
            return
        if self.drainer is None:
            self.drainer = threading.Thread(target=self._drain, daemon=True, name="perfmesh-web-drain")
            self.drainer.start()

    def _drain(self) -> None:
        sel = selectors.DefaultSelector()
        while True:
            try:
                while True:
                    sock = self.draining.get(timeout=None if not sel.get_map() else 0)
                    sel.register(sock, selectors.EVENT_READ, time.monotonic() + DRAIN_S)
            except queue.Empty:
                pass
            now = time.monotonic()
            for key, _ in sel.select(timeout=0.1) if sel.get_map() else ():
                try:
                    more = key.fileobj.recv(65536)     # type: ignore[union-attr]
                except OSError:
                    more = b""
                if not more:
                    sel.unregister(key.fileobj)
                    key.fileobj.close()                # type: ignore[union-attr]
            for key in list(sel.get_map().values()):
                if key.data < now:
                    sel.unregister(key.fileobj)
                    key.fileobj.close()                # type: ignore[union-attr]
