"""A SuperNode host of its own: a Linux network namespace joined to this one by a veth pair.

Each namespace ``n`` gets the /30 ``10.77.n.0``: this side ``10.77.n.1`` (where the SuperLink,
listening on 0.0.0.0, is reached), the namespace ``10.77.n.2``. A SuperNode started with
``ip netns exec NAME ...`` then sees only its own interfaces, as on a separate machine.
Needs root (CAP_NET_ADMIN); ``available()`` says whether this machine allows it.
"""

from __future__ import annotations

import os
import shutil
import subprocess


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


def available() -> bool:
    """Whether namespaces can be made here (tries one, removes it)."""
    if shutil.which("ip") is None or os.geteuid() != 0:
        return False
    probe = f"fl-probe-{os.getpid()}"
    try:
        _ip("netns", "add", probe)
    except (subprocess.SubprocessError, OSError):
        return False
    _ip("netns", "del", probe)
    return True


class Namespace:
    """``with Namespace(n) as ns``: ``ns.name``, ``ns.host_ip`` (this side), ``ns.ip``."""

    def __init__(self, index: int) -> None:
        tag = f"{os.getpid() % 100000}x{index}"  # unique per test process; names <= 15 chars
        self.name, self.veth, self.peer = f"fl{tag}", f"fv{tag}", f"fp{tag}"
        subnet = 10 + index
        self.host_ip, self.ip = f"10.77.{subnet}.1", f"10.77.{subnet}.2"

    def __enter__(self) -> Namespace:
        _ip("netns", "add", self.name)
        try:
            _ip("link", "add", self.veth, "type", "veth", "peer", "name", self.peer)
            _ip("link", "set", self.peer, "netns", self.name)
            _ip("addr", "add", f"{self.host_ip}/30", "dev", self.veth)
            _ip("link", "set", self.veth, "up")
            for args in (("addr", "add", f"{self.ip}/30", "dev", self.peer),
                         ("link", "set", self.peer, "up"), ("link", "set", "lo", "up")):
                _ip("netns", "exec", self.name, "ip", *args)
        except BaseException:
            self.__exit__()
            raise
        return self

    def exec_prefix(self) -> list[str]:
        return ["ip", "netns", "exec", self.name]  # exec: the SuperNode keeps this PID

    def __exit__(self, *exc) -> None:
        subprocess.run(["ip", "link", "del", self.veth], capture_output=True, timeout=10)
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True, timeout=10)
