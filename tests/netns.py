"""Linux network namespaces as test hosts: an aggregator host and agent hosts on veth links."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid


def netns_unavailable() -> str | None:
    """Why namespace tests cannot run here, or None when they can."""
    if os.geteuid() != 0:
        return "needs root to create network namespaces"
    if shutil.which("ip") is None:
        return "needs the ip command (Debian package iproute2)"
    probe = f"pmprobe{uuid.uuid4().hex[:6]}"
    res = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if res.returncode != 0:
        return f"cannot create a network namespace: {res.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


class Topology:
    """``hub`` namespace linked by its own veth pair (10.77.N.0/24) to each leaf namespace."""

    def __init__(self, leaves: list[str]) -> None:
        tag = uuid.uuid4().hex[:5]
        self.hub = f"pmhub{tag}"
        self.leaves = {name: f"pm{name[:6]}{tag}" for name in leaves}
        self.hub_addr: dict[str, str] = {}
        self.leaf_addr: dict[str, str] = {}
        self.links: dict[str, tuple[str, str]] = {}
        self._tag = tag

    def __enter__(self) -> "Topology":
        ip("netns", "add", self.hub)
        ip("-n", self.hub, "link", "set", "lo", "up")
        for i, (name, ns) in enumerate(self.leaves.items(), start=1):
            ip("netns", "add", ns)
            ip("-n", ns, "link", "set", "lo", "up")
            hub_if, leaf_if = f"h{i}{self._tag}", f"l{i}{self._tag}"
            ip("link", "add", hub_if, "type", "veth", "peer", "name", leaf_if)
            ip("link", "set", hub_if, "netns", self.hub)
            ip("link", "set", leaf_if, "netns", ns)
            self.hub_addr[name], self.leaf_addr[name] = f"10.77.{i}.1", f"10.77.{i}.2"
            ip("-n", self.hub, "addr", "add", f"10.77.{i}.1/24", "dev", hub_if)
            ip("-n", ns, "addr", "add", f"10.77.{i}.2/24", "dev", leaf_if)
            ip("-n", self.hub, "link", "set", hub_if, "up")
            ip("-n", ns, "link", "set", leaf_if, "up")
            self.links[name] = (hub_if, leaf_if)
        return self

    def set_link(self, leaf: str, up: bool) -> None:
        hub_if, _ = self.links[leaf]
        ip("-n", self.hub, "link", "set", hub_if, "up" if up else "down")

    def exec_prefix(self, where: str) -> list[str]:
        ns = self.hub if where == "hub" else self.leaves[where]
        return ["ip", "netns", "exec", ns]

    def __exit__(self, *exc: object) -> None:
        for ns in [self.hub, *self.leaves.values()]:
            subprocess.run(["ip", "netns", "pids", ns], capture_output=True)
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
