"""A lab's namespaces as seen by a test: run commands and processes, flip links."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address
from typing import TYPE_CHECKING, TypeVar

from reconciler.testing.netlab.addressing import HostInterface, LinkSide, LossDirection
from reconciler.testing.netlab.errors import CommandError
from reconciler.testing.netlab.plumbing import call_in_netns, merged_env, sysctl_path
from reconciler.testing.netlab.processes import LabProcess
from reconciler.testing.netlab.watcher import NetlinkWatcher

if TYPE_CHECKING:
    from reconciler.testing.netlab.lab import Lab

__all__ = ["Host", "Namespace"]

_T = TypeVar("_T")


@dataclass(frozen=True, eq=False)
class Namespace:
    """A lab network namespace: run commands and processes in it, flip links."""

    netns: str
    lab: Lab = field(repr=False)

    @property
    def watcher(self) -> NetlinkWatcher:
        """The netlink watcher of this namespace (started with the lab)."""
        return self.lab.watcher_of(self.netns)

    def exec_prefix(self) -> list[str]:
        """The argv prefix that runs a program in this namespace."""
        return ["ip", "netns", "exec", self.netns]

    def run(
        self,
        argv: Sequence[str],
        *,
        check: bool = True,
        timeout: float = 30.0,
        input: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` here and capture its output (text).

        ``env`` entries are added to the current environment. With ``check`` a
        non-zero exit raises :class:`CommandError`; a timeout kills the command
        and raises :class:`subprocess.TimeoutExpired`.
        """
        self.lab.check_open()
        cmd = [*self.exec_prefix(), *argv]
        proc = subprocess.run(
            cmd,
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=merged_env(env),
            check=False,
        )
        if check and proc.returncode != 0:
            raise CommandError(self.netns, proc.returncode, argv, proc.stdout, proc.stderr)
        return proc

    def ip(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run ``ip -n <netns> ARGS`` (cheaper than ``run(["ip", ...])``)."""
        self.lab.check_open()
        proc = subprocess.run(
            ["ip", "-n", self.netns, *args],
            capture_output=True,
            text=True,
            timeout=30.0,
            check=False,
        )
        if check and proc.returncode != 0:
            raise CommandError(self.netns, proc.returncode, ["ip", *args], proc.stdout, proc.stderr)
        return proc

    def spawn(
        self,
        argv: Sequence[str],
        *,
        name: str | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
    ) -> LabProcess:
        """Start ``argv`` here in a new session/process group; output goes to a log file.

        The lab stops it on close. ``name`` labels the log file.
        """
        return self.lab.spawn(self, argv, name=name, env=env, cwd=cwd)

    def call(self, fn: Callable[[], _T]) -> _T:
        """Run ``fn`` on a short-lived thread that joined this namespace and return what
        it returns: a socket it makes belongs here (and is usable from any thread)."""
        return call_in_netns(self.netns, fn)

    def sysctl(self, key: str, value: int | str) -> None:
        """Set a sysctl of this namespace (``net.ipv4.ip_forward`` or a /proc/sys path)."""
        path = sysctl_path(key)
        text = str(value)

        def write() -> None:
            path.write_text(text)

        call_in_netns(self.netns, write)

    def read_sysctl(self, key: str) -> str:
        path = sysctl_path(key)
        return call_in_netns(self.netns, lambda: path.read_text().strip())

    def link_down(self, ifname: str) -> float:
        """Set ``ifname`` administratively down; return the monotonic time it was done."""
        self.lab.netlink_of(self.netns).set_link(ifname, up=False)
        return time.monotonic()

    def link_up(self, ifname: str) -> float:
        """Set ``ifname`` administratively up; return the monotonic time it was done."""
        self.lab.netlink_of(self.netns).set_link(ifname, up=True)
        return time.monotonic()


@dataclass(frozen=True, eq=False)
class Host(Namespace):
    """One lab host: a namespace with ``eth<s>`` on each segment ``s``."""

    index: int = 0
    name: str = ""
    interfaces: tuple[HostInterface, ...] = ()

    def interface(self, ifname: str = "eth0") -> HostInterface:
        for iface in self.interfaces:
            if iface.ifname == ifname:
                return iface
        raise KeyError(f"{self.name} has no interface {ifname!r}")

    @property
    def ipv4(self) -> IPv4Address:
        """The primary IPv4 address (``eth0``)."""
        return self.interfaces[0].ipv4.ip

    @property
    def ipv6(self) -> IPv6Address:
        """The primary global IPv6 address (``eth0``)."""
        return self.interfaces[0].ipv6.ip

    def link_local(self, ifname: str = "eth0", timeout: float = 5.0) -> IPv6Address:
        """The IPv6 link-local address of ``ifname`` (waits for it to be usable)."""
        return self.watcher.wait_ready(ifname, timeout)

    def link_down(self, ifname: str = "eth0", *, side: LinkSide = "host") -> float:
        """Take the link down. ``side="host"`` sets ``ifname`` down in the host (the
        host sees its interface go down); ``side="bridge"`` sets the bridge port
        down instead, like pulling the cable: ``ifname`` stays up without carrier.
        Returns the monotonic time the kernel acknowledged the change.
        """
        if side == "bridge":
            return self.lab.bridge.link_down(self.interface(ifname).bridge_port)
        return Namespace.link_down(self, ifname)

    def link_up(
        self,
        ifname: str = "eth0",
        *,
        side: LinkSide = "host",
        wait: bool = True,
        timeout: float = 5.0,
    ) -> float:
        """Undo :meth:`link_down`; with ``wait`` also wait until ``ifname`` is running.

        Returns the monotonic time the kernel acknowledged the change.
        """
        port = self.interface(ifname).bridge_port
        if side == "bridge":
            done = self.lab.bridge.link_up(port)
        else:
            done = Namespace.link_up(self, ifname)
        if wait:
            bridge_watcher = self.lab.bridge.watcher
            self.watcher.sync(timeout)
            bridge_watcher.sync(timeout)
            bridge_watcher.wait_link(port, running=True, timeout=timeout)
            self.watcher.wait_ready(ifname, timeout)
        return done

    def set_loss(
        self, percent: float, ifname: str = "eth0", *, direction: LossDirection = "both"
    ) -> None:
        """Drop ``percent`` % of the frames through this host's bridge port (nftables)."""
        self.lab.set_loss(self.interface(ifname).bridge_port, percent, direction=direction)
