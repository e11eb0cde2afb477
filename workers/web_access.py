"""Who may use ``perfmesh web``: the Host names it answers, same-origin writes, a page token,
and (off loopback) a shared secret.

- **Host**: a request is answered only when its ``Host`` names the listen address, a loopback
  name when listening on loopback, or a name given with ``--allow-host``. A page on
  ``evil.example`` whose name was re-pointed at 127.0.0.1 (DNS rebinding) sends
  ``Host: evil.example`` and is refused, so it cannot read ``/api/fleet``.
- **Origin**: every state-changing request must carry an ``Origin`` equal to its own Host.
- **Page token**: made at start, embedded in the served page, required in the
  ``X-Perfmesh-Token`` header of a command, so only a page this server served can send one.
- **Auth token**: a non-loopback ``--listen`` needs ``--auth-token FILE``; every request then
  carries the secret as ``Authorization: Bearer SECRET`` or the cookie ``/login`` sets.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import re
import secrets
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping
from urllib.parse import urlsplit

from perfmesh.errors import ConfigError

from .transport import is_loopback

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
WILDCARDS = frozenset({"0.0.0.0", "::", "*"})
NAME_RE = re.compile(r"[a-z0-9_][a-z0-9_.-]{0,252}|[0-9a-f:.]{2,45}")
MIN_SECRET_CHARS = 16
PAGE_TOKEN_HEADER = "X-Perfmesh-Token"
COOKIE = "perfmesh_auth"


def host_name(header: str | None) -> str | None:
    """The lower-case name in a ``Host`` header (port and IPv6 brackets removed), or None."""
    if not header or len(header) > 300:
        return None
    text = header.strip().lower()
    if text.startswith("["):
        name, sep, rest = text[1:].partition("]")
        if not sep or (rest and not re.fullmatch(r":\d{1,5}", rest)):
            return None
    else:
        name, _, port = text.partition(":")
        if port and not port.isdigit():
            return None
    name = name.rstrip(".")
    return name if name and NAME_RE.fullmatch(name) else None


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class WebAccess:
    """The checks every request passes; the default suits a loopback-only dashboard."""

    names: frozenset[str] = LOOPBACK_NAMES
    any_ip: bool = False                 # listening on a wildcard: any IP literal is this server
    secret: str | None = None
    page_token: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    session_key: bytes = field(default_factory=lambda: secrets.token_bytes(32), repr=False)

    def host_allowed(self, header: str | None) -> bool:
        name = host_name(header)
        return name is not None and (name in self.names or (self.any_ip and _is_ip(name)))

    @staticmethod
    def same_origin(origin: str | None, host: str | None) -> bool:
        """Whether ``Origin`` is present and names the very host and port the request went to."""
        if not origin or not host or origin == "null":
            return False
        url = urlsplit(origin)
        return url.scheme in ("http", "https") and url.netloc.lower() == host.strip().lower()

    def page_token_ok(self, value: str | None) -> bool:
        return value is not None and hmac.compare_digest(value.encode(), self.page_token.encode())

    def session_cookie(self) -> str:
        """The login cookie's value: derived from the secret and this run, so it ends at restart."""
        assert self.secret is not None
        return hmac.new(self.session_key, self.secret.encode(), hashlib.sha256).hexdigest()

    def secret_ok(self, candidate: str | None) -> bool:
        return self.secret is not None and candidate is not None and \
            hmac.compare_digest(candidate.encode(), self.secret.encode())

    def authorized(self, headers: Mapping[str, str]) -> bool:
        """True without a secret; else the request carries it (bearer) or the login cookie."""
        if self.secret is None:
            return True
        scheme, _, value = (headers.get("Authorization") or "").partition(" ")
        if scheme.lower() == "bearer" and self.secret_ok(value.strip()):
            return True
        for part in (headers.get("Cookie") or "").split(";"):
            key, _, value = part.strip().partition("=")
            if key == COOKIE and hmac.compare_digest(value.encode(), self.session_cookie().encode()):
                return True
        return False


def read_secret(path: str) -> str:
    """The secret in ``path``: one line of at least 16 characters, readable by its owner only."""
    try:
        mode = os.stat(path).st_mode
        text = Path(path).read_text().strip()
    except OSError as exc:
        raise ConfigError(f"--auth-token {path!r}: cannot read it ({exc.strerror or exc}); "
                          "expected a file holding a secret") from None
    except UnicodeDecodeError:
        raise ConfigError(f"--auth-token {path!r}: not text; expected a file holding a secret") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"--auth-token {path!r} is readable by group or others (mode {stat.S_IMODE(mode):o}); "
                          f"expected mode 600: chmod 600 {path}")
    if len(text) < MIN_SECRET_CHARS or any(c.isspace() for c in text):
        raise ConfigError(f"--auth-token {path!r}: the secret must be one word of at least {MIN_SECRET_CHARS} "
                          f"characters, e.g. from `openssl rand -hex 32`")
    return text


def web_access(listen_host: str, allow_hosts: Iterable[str] = (), auth_token_file: str | None = None) -> WebAccess:
    """The checks for a server listening on ``listen_host``; fails closed off loopback without a secret."""
    host = listen_host.strip("[]").lower()
    wildcard = host in WILDCARDS or host == ""
    loopback = not wildcard and (is_loopback(host) or host in LOOPBACK_NAMES)
    if not loopback and auth_token_file is None:
        raise ConfigError(f"--listen on {listen_host or '*'} (not loopback) needs --auth-token FILE, a file holding "
                          "a secret every request must then carry; or listen on 127.0.0.1")
    names = set(LOOPBACK_NAMES) if wildcard or loopback else set()
    if not wildcard:
        names.add(host)
    for name in allow_hosts:
        clean = name.strip().lower().rstrip(".").strip("[]")
        if not clean or not NAME_RE.fullmatch(clean):
            raise ConfigError(f"--allow-host {name!r}: expected a host name or an IP address, without a port")
        names.add(clean)
    secret = read_secret(auth_token_file) if auth_token_file is not None else None
    return WebAccess(names=frozenset(names), any_ip=wildcard, secret=secret)
