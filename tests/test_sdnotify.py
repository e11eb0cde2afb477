"""workers/sdnotify.py: the sd_notify protocol on a real AF_UNIX datagram socket."""

import os
import socket

import pytest

from tests.waiting import wait_until
from workers.sdnotify import Notifier


def listening(tmp_path):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = str(tmp_path / "notify")
    sock.bind(path)
    sock.settimeout(5)
    return sock, path


def test_ready_status_watchdog_and_stopping_arrive_as_one_datagram_each(tmp_path):
    """READY=1 with STATUS in one datagram; WATCHDOG=1; STOPPING=1."""
    sock, path = listening(tmp_path)
    with sock:
        notifier = Notifier({"NOTIFY_SOCKET": path})
        assert notifier.enabled
        assert notifier.ready("listening on 127.0.0.1:7700")
        assert sock.recv(4096) == b"READY=1\nSTATUS=listening on 127.0.0.1:7700"
        assert notifier.ping() and sock.recv(4096) == b"WATCHDOG=1"
        assert notifier.stopping() and sock.recv(4096) == b"STOPPING=1"


def test_abstract_socket_names_start_with_at(tmp_path):
    """NOTIFY_SOCKET=@name is the abstract name \\0name."""
    name = f"perfmesh-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(5)
        assert Notifier({"NOTIFY_SOCKET": "@" + name}).status("hi")
        assert sock.recv(4096) == b"STATUS=hi"


def test_outside_systemd_every_call_is_a_no_op():
    """No NOTIFY_SOCKET: nothing is sent, nothing raises, no watchdog."""
    notifier = Notifier({})
    assert not notifier.enabled and not notifier.ready("x") and not notifier.ping()
    assert notifier.watchdog_s is None


def test_watchdog_interval_is_read_for_this_process_only():
    """WATCHDOG_USEC gives the interval; WATCHDOG_PID of another process disables it."""
    assert Notifier({"WATCHDOG_USEC": "30000000"}).watchdog_s == 30.0
    assert Notifier({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}).watchdog_s == 30.0
    assert Notifier({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}).watchdog_s is None
    assert Notifier({"WATCHDOG_USEC": "soon"}).watchdog_s is None


def test_a_vanished_socket_is_a_false_return_not_a_crash(tmp_path):
    """Sending to a socket path that no longer exists returns False (logged once)."""
    notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone")})
    assert notifier.ready("x") is False and notifier.ping() is False


def _datagrams_until(sock, wanted, timeout_s=20.0):
    """Datagrams received until every wanted line has been seen (bounded by ``timeout_s``)."""
    seen = []

    def received() -> bool:
        try:
            seen.append(sock.recv(4096).decode())
        except socket.timeout:
            pass
        return all(any(w in d for d in seen) for w in wanted)
    wait_until(received, timeout_s, f"datagrams {wanted}", poll_s=0)
    return seen


@pytest.mark.multiprocess
@pytest.mark.parametrize("role", ["aggregator", "agent"])
def test_a_real_process_under_systemd_says_ready_then_pings_the_watchdog(mesh, tmp_path, monkeypatch, role):
    """NOTIFY_SOCKET + WATCHDOG_USEC: READY=1 (with a STATUS) once bound, then WATCHDOG=1 from the
    poll loop at half the interval, and STOPPING=1 on SIGTERM."""
    import signal
    sock, path = listening(tmp_path)
    with sock:
        sock.settimeout(0.5)
        if role == "agent":
            mesh.aggregator()
        monkeypatch.setenv("NOTIFY_SOCKET", path)
        monkeypatch.setenv("WATCHDOG_USEC", "600000")
        proc = mesh.aggregator() if role == "aggregator" else mesh.agent("sd1")
        seen = _datagrams_until(sock, ["READY=1"])
        assert any(d.startswith("READY=1\nSTATUS=") for d in seen)
        watchdog = _datagrams_until(sock, ["WATCHDOG=1"])
        assert watchdog.count("WATCHDOG=1") >= 1 and not any("READY" in d for d in watchdog)
        proc.send_signal(signal.SIGTERM)
        _datagrams_until(sock, ["STOPPING=1"])
        assert proc.wait(15) == 0
