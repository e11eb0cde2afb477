"""systemd's notify protocol (sd_notify(3)), for ``Type=notify`` units: readiness once the
sockets are bound and keys loaded, a watchdog ping from the poll loop, and stopping.

Outside systemd (no ``$NOTIFY_SOCKET``) every call is a no-op, so workers call it
unconditionally. One datagram per message on an AF_UNIX socket; an abstract socket name
starts with ``@``. A failed send is logged once and never stops a worker.
"""

from __future__ import annotations

import logging
import os
import socket
from typing import Mapping

log = logging.getLogger("perfmesh")


class Notifier:
    """Sends ``READY=1``, ``STATUS=…``, ``WATCHDOG=1`` and ``STOPPING=1`` to systemd."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET", "")
        self.address = "\0" + address[1:] if address.startswith("@") else address
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        mine = not pid or pid == str(os.getpid())
        self.watchdog_s = int(usec) / 1e6 if usec.isdigit() and int(usec) > 0 and mine else None
        self._warned = False

    @property
    def enabled(self) -> bool:
        return bool(self.address)

    def send(self, **fields: str) -> bool:
        """Send ``KEY=value`` lines in one datagram; False when not under systemd or it failed."""
        if not self.address:
            return False
        message = "\n".join(f"{key.upper()}={value}" for key, value in fields.items()).encode()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto(message, self.address)
            return True
        except OSError as exc:
            if not self._warned:
                self._warned = True
                log.warning("cannot notify systemd at %r: %s", self.address, exc)
            return False

    def ready(self, status: str) -> bool:
        return self.send(ready="1", status=status)

    def status(self, status: str) -> bool:
        return self.send(status=status)

    def ping(self) -> bool:
        return self.send(watchdog="1")

    def stopping(self) -> bool:
        return self.send(stopping="1")
