"""CURVE keys, per-role allowlists and the ZAP authenticator (the zmq side of security).

Roles and the ZAP domain of each aggregator socket:

====================  ===========  ==========================================
socket                domain       keys allowed
====================  ===========  ==========================================
ingest, control       ``agents``   ``KEYS/agents/*.key``
api                   ``api``      ``KEYS/operators/*.key``, ``KEYS/subscribers/*.key``
stream                ``stream``   ``KEYS/subscribers/*.key``, ``KEYS/operators/*.key``
====================  ===========  ==========================================

The authenticator answers each handshake with a user id ``ROLE/NAME/KEY`` (NAME is the key
file's name), which ZeroMQ attaches to every message of that connection as ``User-Id``.
The aggregator checks it per message against the current allowlist, so a key removed from
its directory is cut off at the next reload (every second), not at the next restart.
"""

from __future__ import annotations

import logging
import os
import stat
import threading
from dataclasses import dataclass
from pathlib import Path

import zmq
import zmq.auth

from perfmesh.errors import ConfigError
from perfmesh.mesh.restart import Backoff

from .transport import Endpoint, is_loopback

log = logging.getLogger("perfmesh.security")
ROLES = ("agents", "operators", "subscribers")
DOMAINS = {"agents": ("agents",), "api": ("operators", "subscribers"), "stream": ("subscribers", "operators")}
ZAP_ENDPOINT = "inproc://zeromq.zap.01"
MIN_LIBZMQ = (4, 3, 5)


def check_libzmq() -> None:
    """Refuse to run secured without CURVE or on a libzmq older than 4.3.5."""
    if not zmq.has("curve"):
        raise ConfigError("this libzmq was built without CURVE; install a libzmq with libsodium/CURVE support")
    if zmq.zmq_version_info() < MIN_LIBZMQ:
        raise ConfigError(f"libzmq {zmq.zmq_version()} is older than {'.'.join(map(str, MIN_LIBZMQ))}; "
                          "upgrade pyzmq/libzmq")


def new_keypair(name: str, directory: str | os.PathLike) -> tuple[Path, Path]:
    """Write ``NAME.key`` (public) and ``NAME.key_secret`` (mode 0600) into ``directory``."""
    if not name or "/" in name or name.startswith("."):
        raise ConfigError(f"key name {name!r} must be a plain file name")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    public, secret = directory / f"{name}.key", directory / f"{name}.key_secret"
    if public.exists() or secret.exists():
        raise ConfigError(f"{public} or {secret} already exists; refusing to overwrite a key")
    old = os.umask(0o077)
    try:
        zmq.auth.create_certificates(str(directory), name)
    finally:
        os.umask(old)
    public.chmod(0o644)
    secret.chmod(0o600)
    return public, secret


@dataclass(frozen=True)
class KeyPair:
    public: bytes
    secret: bytes


def load_secret(path: str | os.PathLike) -> KeyPair:
    """A secret key file; refused when missing, unreadable, or readable by group/others."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise ConfigError(f"secret key {path}: {exc.strerror}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"secret key {path} is readable by others (mode {stat.S_IMODE(mode):04o}); "
                          f"run: chmod 600 {path}")
    public, secret = _load(path)
    if not secret:
        raise ConfigError(f"{path} holds no secret key; expected a NAME.key_secret file from `perfmesh keys new`")
    return KeyPair(public, secret)


def load_public(path: str | os.PathLike) -> bytes:
    public, _ = _load(Path(path))
    return public


def _load(path: Path) -> tuple[bytes, bytes | None]:
    try:
        public, secret = zmq.auth.load_certificate(str(path))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"key file {path} cannot be read as a ZeroMQ certificate: {exc}") from None
    if not public or len(public) != 40:
        raise ConfigError(f"key file {path} has no valid public key")
    return public, secret


def read_allowlists(keys_dir: Path) -> dict[str, dict[bytes, str]]:
    """role -> {public key (z85): name} from ``KEYS/ROLE/*.key``; bad files are skipped, logged."""
    out: dict[str, dict[bytes, str]] = {}
    for role in ROLES:
        allowed: dict[bytes, str] = {}
        folder = keys_dir / role
        if folder.is_dir():
            for f in sorted(folder.glob("*.key")):
                try:
                    allowed[load_public(f)] = f.stem
                except ConfigError as exc:
                    log.warning("skipping %s", exc)
        out[role] = allowed
    return out


def _fingerprint(keys_dir: Path) -> tuple:
    items = []
    for role in ROLES:
        folder = keys_dir / role
        if folder.is_dir():
            for f in folder.iterdir():
                try:
                    st = f.stat()
                except OSError:
                    continue
                items.append((role, f.name, st.st_mtime_ns, st.st_size))
    return tuple(sorted(items))


class Authenticator:
    """A ZAP handler thread for CURVE with per-domain allowlists that reload from disk."""

    def __init__(self, ctx: zmq.Context, keys_dir: str | os.PathLike) -> None:
        self.ctx = ctx
        self.keys_dir = Path(keys_dir)
        self.allow = read_allowlists(self.keys_dir)
        self._fp = _fingerprint(self.keys_dir)
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._error: Exception | None = None
        self.refused = 0
        self._thread = threading.Thread(target=self._run, name="perfmesh-zap", daemon=True)

    def start(self, timeout_s: float = 5.0) -> None:
        self._thread.start()
        if not self._ready.wait(timeout_s) or self._error is not None:
            raise ConfigError(f"the ZAP authenticator did not start: {self._error or 'timeout'}; refusing to bind")

    @property
    def running(self) -> bool:
        return self._thread.is_alive() and self._ready.is_set()

    def reload(self) -> set[str]:
        """Re-read the allowlists when the key folders changed; returns roles that lost a key."""
        fp = _fingerprint(self.keys_dir)
        if fp == self._fp:
            return set()
        new = read_allowlists(self.keys_dir)
        lost = {r for r in ROLES if set(self.allow.get(r, {})) - set(new[r])}
        self.allow, self._fp = new, fp
        log.info("key allowlists reloaded: %s", ", ".join(f"{r} {len(new[r])}" for r in ROLES))
        return lost

    def user(self, user_id: str | None, roles: tuple[str, ...]) -> tuple[str, str] | None:
        """(role, name) of a message's User-Id if its key is still allowed for one of ``roles``."""
        if not user_id:
            return None
        role, _, rest = user_id.partition("/")
        name, _, key = rest.partition("/")
        if role in roles and self.allow.get(role, {}).get(key.encode()) == name:
            return role, name
        return None

    def _run(self) -> None:
        sock = None
        try:
            sock = self.ctx.socket(zmq.REP)
            sock.linger = 0
            sock.bind(ZAP_ENDPOINT)
        except zmq.ZMQError as exc:
            if sock is not None:
                sock.close(0)       # else the context's term() would wait for it forever
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        while not self._stop.is_set():
            if not poller.poll(100):
                continue
            msg = sock.recv_multipart()
            sock.send_multipart(self._answer(msg))
        sock.close(0)

    def _answer(self, msg: list[bytes]) -> list[bytes]:
        if len(msg) < 6:
            return [b"1.0", b"", b"500", b"malformed ZAP request", b"", b""]
        version, request_id, domain, _address, _identity, mechanism = msg[:6]
        creds = msg[6:]
        roles = DOMAINS.get(domain.decode(errors="replace"), ())
        if mechanism == b"CURVE" and len(creds) == 1 and len(creds[0]) == 32:
            key = zmq.utils.z85.encode(creds[0])
            for role in roles:
                name = self.allow.get(role, {}).get(key)
                if name is not None:
                    return [version, request_id, b"200", b"OK", f"{role}/{name}/{key.decode()}".encode(), b""]
        self.refused += 1
        return [version, request_id, b"400", b"key not allowed", b"", b""]

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(2)


@dataclass(frozen=True)
class ClientKeys:
    """What a connecting process (agent, operator, subscriber) needs."""

    own: KeyPair
    server_public: bytes

    @classmethod
    def load(cls, secret_file: str | os.PathLike, server_public_file: str | os.PathLike) -> "ClientKeys":
        return cls(load_secret(secret_file), load_public(server_public_file))

    def apply(self, sock: zmq.Socket) -> None:
        sock.curve_secretkey = self.own.secret
        sock.curve_publickey = self.own.public
        sock.curve_serverkey = self.server_public


def make_server(sock: zmq.Socket, keys: KeyPair, domain: str) -> None:
    """CURVE server side with a ZAP domain that must be answered (fail closed)."""
    sock.curve_secretkey = keys.secret
    sock.curve_publickey = keys.public
    sock.curve_server = True
    sock.zap_domain = domain.encode()
    sock.setsockopt(zmq.ZAP_ENFORCE_DOMAIN, 1)


def secure_client(endpoint: Endpoint, *socks: zmq.Socket) -> None:
    """CURVE on a client's sockets with the endpoint's keys; without keys, only loopback
    unless the endpoint says ``insecure``."""
    if endpoint.keys is None:
        if not is_loopback(endpoint.host) and not endpoint.insecure:
            raise ConfigError(f"refusing to connect to {endpoint} without encryption: give --key SECRET_FILE "
                              "--server-key PUBLIC_FILE (see `perfmesh keys new`) or --insecure")
        return
    check_libzmq()
    for sock in socks:
        endpoint.keys.apply(sock)


HANDSHAKE_FAILED = (zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
                    | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL)


class HandshakeWatch:
    """Reconnects client sockets whose handshake the aggregator refused.

    libzmq does not retry a connection after a refused handshake, so a client started before
    its key was allowlisted would stay cut off until restarted. This watches each socket's
    monitor and, after a refusal, reconnects with a doubling backoff (1 s .. 30 s).
    """

    def __init__(self, socks_and_urls: list[tuple[zmq.Socket, str]]) -> None:
        self.items = [(sock, url, sock.get_monitor_socket(HANDSHAKE_FAILED)) for sock, url in socks_and_urls]
        self.backoff = Backoff(1.0, 30.0)
        self.retry_at: float | None = None
        self.refusals = 0

    def poll(self, now: float) -> str | None:
        """Drain monitor events and reconnect when due; returns a log line on a refusal."""
        note = None
        for _, url, mon in self.items:
            while mon.poll(0):
                mon.recv_multipart()
                self.refusals += 1
                if self.retry_at is None:
                    delay_s = self.backoff.failed()
                    self.retry_at = now + delay_s
                    note = (f"the aggregator at {url} refused our handshake (key not allowlisted yet, or a "
                            f"wrong --server-key); retrying in {delay_s:.0f}s")
        if self.retry_at is not None and now >= self.retry_at:
            self.retry_at = None
            for sock, url, _ in self.items:
                try:
                    sock.disconnect(url)
                except zmq.ZMQError:
                    pass
                sock.connect(url)
        return note

    def close(self) -> None:
        for sock, _, mon in self.items:
            try:
                sock.disable_monitor()
            except zmq.ZMQError:
                pass
            mon.close(0)
