"""Host names and network addresses: the one validator, the one parser, the one loopback rule.

- :func:`is_host_name` / :func:`check_host_name`: what perfmesh accepts as a host's name (the
  agent's ``--name``, the ``[agent].name`` key, a host in a command or an HTTP request).
- :func:`parse_host_port`: ``HOST``, ``HOST:PORT``, ``[v6]`` or ``[v6]:PORT``; the
  aggregator address of every client (``--connect``, ``[agent].connect``) and every listen
  address (``--listen``, ``metrics_listen``) through :func:`parse_listen`.
- :func:`is_loopback`: decided with :mod:`ipaddress` on addresses, never on the spelling of a
  name. A name is resolved first and counts only when every address it resolves to is a
  loopback address, so ``localhost`` is loopback and ``127.attacker.example`` is not (unless a
  resolver really maps it to 127.0.0.1 and nothing else).
"""

from __future__ import annotations

import ipaddress
import re
import socket
from typing import Callable, Iterable

from ..errors import ConfigError

HOST_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}\Z")
HOST_NAME_RULE = "a host name (letters, digits, '_', '.', '-'; at most 128)"
_ADDRESS_HOST_RE = re.compile(r"[A-Za-z0-9_.-]+\Z")
MAX_PORT = 65535

DEFAULT_HOST = "127.0.0.1"
"""Where the aggregator binds, and where clients look for it, unless told otherwise."""
DEFAULT_BASE_PORT = 7700
"""The aggregator's base port; its sockets are at base + :data:`PORT_OFFSETS`."""
DEFAULT_CONNECT = f"{DEFAULT_HOST}:{DEFAULT_BASE_PORT}"
PORT_OFFSETS = {"ingest": 0, "control": 1, "stream": 2, "api": 3}
MAX_BASE_PORT = MAX_PORT - len(PORT_OFFSETS)

Resolver = Callable[[str], Iterable[str]]


def is_host_name(text: object) -> bool:
    """True for a host name perfmesh accepts: a letter or digit, then letters, digits, ``_.-``."""
    return isinstance(text, str) and HOST_NAME_RE.match(text) is not None


def check_host_name(text: object) -> str:
    """``text`` when it is a valid host name; ConfigError naming it otherwise."""
    if not is_host_name(text):
        raise ConfigError(f"{text!r} is not a valid host name; expected {HOST_NAME_RULE}")
    return text  # type: ignore[return-value]


def parse_host_port(text: str, default_port: int | None = None, *, min_port: int = 1,
                    max_port: int = MAX_PORT, what: str = "address",
                    expected: str = "HOST[:PORT]") -> tuple[str, int]:
    """``HOST``, ``HOST:PORT``, ``[v6]``, ``[v6]:PORT`` or a bare IPv6 address -> (host, port).

    Without a port, ``default_port`` is used (None: the port is required). The host is an IP
    address or a DNS-style name. Errors are ConfigErrors naming ``what`` and ``text``.
    """
    def bad(reason: str) -> ConfigError:
        return ConfigError(f"{what} {text!r}: {reason}; expected {expected}")

    if not isinstance(text, str):
        raise bad("not a string")
    raw = text.strip()
    port_text: str | None = None
    if raw.startswith("["):
        close = raw.find("]")
        if close < 0:
            raise bad("missing ']' after an IPv6 address")
        host, rest = raw[1:close], raw[close + 1:]
        if rest:
            if not rest.startswith(":"):
                raise bad("expected ':PORT' after ']'")
            port_text = rest[1:]
        if not _is_ip(host):
            raise bad(f"{host!r} in brackets is not an IPv6 address")
    elif raw.count(":") == 1:
        host, port_text = raw.split(":")
    else:
        host = raw
        if raw.count(":") > 1 and not _is_ip(raw):
            raise bad(f"{raw!r} is not an IPv6 address")
    if not host:
        raise bad("empty host")
    if not _is_ip(host) and not _ADDRESS_HOST_RE.match(host):
        raise bad(f"host {host!r} is not an IP address or a host name")
    if port_text is None:
        if default_port is None:
            raise bad("missing port")
        return host, default_port
    if not port_text.isdigit() or not min_port <= int(port_text) <= max_port:
        raise bad(f"port {port_text!r} is not a number from {min_port} to {max_port}")
    return host, int(port_text)


def parse_connect(text: str, default_port: int = DEFAULT_BASE_PORT) -> tuple[str, int]:
    """The aggregator's address, ``HOST[:BASE_PORT]`` -> (host, base port)."""
    return parse_host_port(text, default_port, max_port=MAX_BASE_PORT, what="endpoint",
                           expected="HOST[:BASE_PORT], e.g. 10.0.0.5:7700")


def parse_listen(text: str, what: str = "listen address",
                 example: str = "127.0.0.1:9790") -> tuple[str, int]:
    """``ADDR:PORT`` or ``[v6]:PORT`` -> (addr, port); port 0 asks for any free port."""
    return parse_host_port(text, None, min_port=0, what=what,
                           expected=f"ADDR:PORT, e.g. {example}")


def is_loopback_address(address: str) -> bool:
    """True when ``address`` is an IP address in a loopback range (127.0.0.0/8, ::1,
    or an IPv4-mapped loopback); False for anything that is not an IP address."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return (mapped or ip).is_loopback


def resolve(host: str) -> list[str]:
    """Every address ``host`` resolves to (the system resolver); [] when it does not resolve."""
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return []
    return [str(info[4][0]) for info in infos]


def is_loopback(host: str, resolver: Resolver = resolve) -> bool:
    """True when ``host`` only ever reaches this machine.

    An IP address is checked as it is; a name is resolved with ``resolver`` and counts only
    when it resolves and every address is loopback. Never decided on how the name is spelled.
    """
    if not isinstance(host, str) or not host:
        return False
    if _is_ip(host):
        return is_loopback_address(host)
    addresses = list(resolver(host))
    return bool(addresses) and all(is_loopback_address(a) for a in addresses)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text.split("%", 1)[0] if ":" in text else text)
    except ValueError:
        return False
    return True
