#!/usr/bin/env python3
"""A small HTTP service that embeds perfmesh and joins the mesh as an application agent.

It answers ``GET /item/KEY`` with a value that is slow to compute (a few milliseconds of
hashing) and cached in memory; ``GET /cache`` reports the cache (``{"size": N, "clears": N}``)
and ``GET /health`` answers ``ok``. The request handler is tracked as the request timing
(``response_time_ms``, with the per-function timings beside it), the computation is timed as
the context ``compute``, and the service registers a ``clear_caches`` strategy that really
empties its cache, so an operator can run it from anywhere in the mesh.

Usage::

    perfmesh aggregator &                                   # or: perfmesh up
    python scripts/example_service.py --port 8080 --mesh 127.0.0.1 --name api-server
    curl http://127.0.0.1:8080/item/42                      # a few requests...
    perfmesh subscribe --host api-server --json             # its metrics, live
    perfmesh command api-server clear_caches                # empties its cache
    curl http://127.0.0.1:8080/cache                        # {"size": 0, "clears": 1}

Options: ``--port 0`` picks a free port (the first line printed says which), ``--mesh
HOST[:BASE]`` (without it the service runs alone), ``--name``, ``--interval`` (seconds
between batches, default 1), ``--key SECRET_FILE --server-key PUBLIC_FILE`` for CURVE, and
``--state-dir`` for the agent's audit log. SIGTERM or Ctrl-C stops it cleanly.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from perfmesh import PerformanceManager  # noqa: E402


class Service:
    """The service's state: a cache of computed values, and the perfmesh manager."""

    def __init__(self, manager: PerformanceManager, work_rounds: int = 20000) -> None:
        self.manager = manager
        self.work_rounds = work_rounds
        self.cache: dict[str, str] = {}
        self.clears = 0
        self.lock = threading.Lock()
        self.handle = manager.track_function(self.handle_unmeasured, request=True, label="handle")
        manager.engine.register_optimization_strategy(
            "clear_caches", self.clear_caches, measure=lambda: {"cache_entries": float(len(self.cache))},
            description="empty the service's value cache")

    def compute(self, key: str) -> str:
        with self.manager.performance_context("compute"):
            digest = key.encode()
            for _ in range(self.work_rounds):
                digest = hashlib.sha256(digest).digest()
            return digest.hex()

    def handle_unmeasured(self, path: str) -> tuple[int, str, str]:
        """(status, content type, body) for a GET of ``path``."""
        if path.startswith("/item/"):
            key = path[len("/item/"):]
            with self.lock:
                value = self.cache.get(key)
            if value is None:
                value = self.compute(key)
                with self.lock:
                    self.cache[key] = value
            return 200, "application/json", json.dumps({"key": key, "value": value})
        if path == "/cache":
            with self.lock:
                return 200, "application/json", json.dumps({"size": len(self.cache), "clears": self.clears})
        if path == "/health":
            return 200, "text/plain", "ok"
        return 404, "text/plain", "not found"

    def clear_caches(self, config: dict) -> dict:
        with self.lock:
            cleared = len(self.cache)
            self.cache.clear()
            self.clears += 1
        return {"cleared_entries": cleared}


def make_handler(service: Service) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the http.server API
            status, ctype, body = service.handle(self.path)
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:   # quiet: one line per request is noise
            pass

    return Handler


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--bind", default="127.0.0.1")
    p.add_argument("--mesh", metavar="HOST[:BASE]", help="join the mesh at this aggregator")
    p.add_argument("--name", default="api-server")
    p.add_argument("--interval", type=float, default=1.0)
    p.add_argument("--key", help="this service's CURVE secret key file")
    p.add_argument("--server-key", help="the aggregator's public key file")
    p.add_argument("--state-dir")
    args = p.parse_args(argv)
    if bool(args.key) != bool(args.server_key):
        p.error("--key and --server-key go together")
    keys = (args.key, args.server_key) if args.key else None

    def stop(*_: object) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    with PerformanceManager(mesh=args.mesh, name=args.name, mesh_keys=keys,
                            mesh_interval=args.interval, mesh_state_dir=args.state_dir) as manager:
        service = Service(manager)
        server = ThreadingHTTPServer((args.bind, args.port), make_handler(service))
        server.daemon_threads = True
        print(f"listening on http://{args.bind}:{server.server_address[1]}"
              + (f", in the mesh at {args.mesh} as {args.name}" if args.mesh else ""), flush=True)
        try:
            server.serve_forever(poll_interval=0.2)
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
