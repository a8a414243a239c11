"""Lab: the namespaces, watchers and processes of one test bed, and their lifetime."""

from __future__ import annotations

import itertools
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

from reconciler.testing.netlab import registry
from reconciler.testing.netlab.addressing import (
    MAX_HOSTS,
    SEGMENT_V4,
    LossDirection,
    Segment,
    host_interfaces,
    segment,
)
from reconciler.testing.netlab.cleanup import teardown
from reconciler.testing.netlab.errors import LabInterrupted, LabUnavailable
from reconciler.testing.netlab.loss import LossRules
from reconciler.testing.netlab.namespaces import Host, Namespace
from reconciler.testing.netlab.plumbing import DEFAULT_PREFIX, NETNS_RUN_DIR, ip_batch
from reconciler.testing.netlab.processes import LabProcess, log_label, start_process
from reconciler.testing.netlab.rtnetlink import RtNetlink
from reconciler.testing.netlab.topology import (
    bridge_commands,
    configure_sysctls,
    host_commands,
    run_parallel,
)
from reconciler.testing.netlab.watcher import NetlinkWatcher

__all__ = ["Lab"]


class Lab:
    """An L2 lab: ``n_hosts`` host namespaces bridged on ``segments`` segments.

    Building happens in the constructor; use it as a context manager (or call
    :meth:`close`) so that processes, namespaces and the temp dir go away even on
    failure. Open labs are also closed at interpreter exit, and while one is open
    SIGTERM raises :class:`LabInterrupted` in the main thread (unless another
    SIGTERM handler was installed first).
    """

    def __init__(
        self,
        n_hosts: int = 2,
        *,
        segments: int = 1,
        prefix: str = DEFAULT_PREFIX,
        stop_timeout: float = 3.0,
        ready_timeout: float = 10.0,
        keep_tmpdir: bool = False,
    ) -> None:
        if not 1 <= n_hosts <= MAX_HOSTS:
            raise ValueError(f"n_hosts must be within 1..{MAX_HOSTS}")
        if not 1 <= segments <= len(SEGMENT_V4):
            raise ValueError(f"segments must be within 1..{len(SEGMENT_V4)}")
        if not re.fullmatch(r"[a-z]{1,6}", prefix):
            raise ValueError("prefix must be 1-6 lowercase letters")
        self.prefix = prefix
        self._owner_pid = os.getpid()
        self.id = f"{prefix}{os.getpid()}x{next(registry.REGISTRY.counter)}"
        self.stop_timeout = stop_timeout
        self.keep_tmpdir = keep_tmpdir
        self.segments: tuple[Segment, ...] = tuple(segment(s) for s in range(segments))
        self.bridge = Namespace(f"{self.id}b", self)
        self.hosts: tuple[Host, ...] = tuple(self._make_host(i) for i in range(1, n_hosts + 1))
        self._lock = threading.RLock()
        self._closed = False
        self._created: list[str] = []
        self._processes: list[LabProcess] = []
        self._watchers: dict[str, NetlinkWatcher] = {}
        self._controls: dict[str, RtNetlink] = {}
        self._loss = LossRules()
        self._log_seq = itertools.count(1)
        self.setup_seconds: float | None = None  # how long building took
        self.tmpdir = Path(tempfile.mkdtemp(prefix=f"{self.id}-"))
        registry.register(self)
        t0 = time.monotonic()
        try:
            self._build(ready_timeout)
        except BaseException:
            self.close()
            raise
        self.setup_seconds = time.monotonic() - t0

    def _make_host(self, i: int) -> Host:
        ifaces = host_interfaces(i, self.segments)
        return Host(f"{self.id}h{i}", self, index=i, name=f"h{i}", interfaces=ifaces)

    def __repr__(self) -> str:
        return f"Lab({self.id!r}, hosts={len(self.hosts)}, segments={len(self.segments)})"

    def __enter__(self) -> Lab:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- building ----------------------------------------------------------------

    @property
    def namespaces(self) -> tuple[str, ...]:
        """Every namespace name of this lab (bridge first)."""
        return (self.bridge.netns, *(h.netns for h in self.hosts))

    def _build(self, ready_timeout: float) -> None:
        names = self.namespaces
        # Such a name can only exist if a dead process that had our pid left it.
        leftovers = [n for n in names if (NETNS_RUN_DIR / n).exists()]
        if leftovers:
            ip_batch([f"netns del {n}" for n in leftovers], force=True)
        self._created = list(names)  # so that a failed add is still cleaned up
        ip_batch([f"netns add {n}" for n in names])
        configure_sysctls(self.bridge.netns, [host.netns for host in self.hosts])
        for ns in (self.bridge, *self.hosts):
            self._watchers[ns.netns] = NetlinkWatcher(ns.netns)
        run_parallel([(host.netns, host_commands(host, self.bridge.netns)) for host in self.hosts])
        ip_batch(bridge_commands(self.segments, self.hosts), netns=self.bridge.netns)
        for host in self.hosts:
            for iface in host.interfaces:
                self.bridge.watcher.wait_link(iface.bridge_port, timeout=ready_timeout)
                host.watcher.wait_ready(iface.ifname, ready_timeout)

    # -- accessors -----------------------------------------------------------------

    def host(self, which: int | str) -> Host:
        """Host by 1-based index or by name (``"h1"``)."""
        for host in self.hosts:
            if which in (host.index, host.name, host.netns):
                return host
        raise KeyError(f"no host {which!r} in {self!r}")

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def processes(self) -> tuple[LabProcess, ...]:
        with self._lock:
            return tuple(self._processes)

    def check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"{self!r} is closed")

    def watcher_of(self, netns: str) -> NetlinkWatcher:
        with self._lock:
            self.check_open()
            watcher = self._watchers.get(netns)
            if watcher is None:
                watcher = self._watchers[netns] = NetlinkWatcher(netns)
            return watcher

    def netlink_of(self, netns: str) -> RtNetlink:
        with self._lock:
            self.check_open()
            ctl = self._controls.get(netns)
            if ctl is None:
                ctl = self._controls[netns] = RtNetlink(netns)
            return ctl

    def spawn(
        self,
        ns: Namespace,
        argv: Sequence[str],
        *,
        name: str | None,
        env: Mapping[str, str] | None,
        cwd: str | os.PathLike[str] | None,
    ) -> LabProcess:
        if not argv:
            raise ValueError("empty argv")
        with self._lock:
            self.check_open()
            label = log_label(name, argv)
            owner = ns.name if isinstance(ns, Host) else "bridge"
            log_path = self.tmpdir / f"{owner}-{label}-{next(self._log_seq)}.log"
            proc = start_process(
                ns.exec_prefix(), argv, netns=ns.netns, log_path=log_path, env=env, cwd=cwd
            )
            self._processes.append(proc)
            return proc

    # -- packet loss ---------------------------------------------------------------

    def set_loss(self, port: str, percent: float, *, direction: LossDirection = "both") -> None:
        """Drop ``percent`` % of frames through bridge port ``port`` (0 removes it).

        ``from_host`` applies to frames the host sends, ``to_host`` to frames sent
        to it (each flooded copy is dropped independently), ``both`` to both; the
        two directions are set independently. Needs ``nft`` and nf_tables bridge
        support; raises :class:`LabUnavailable` otherwise.
        """
        if not 0 <= percent <= 100:
            raise ValueError("percent must be within 0..100")
        if shutil.which("nft") is None:
            raise LabUnavailable("packet loss needs nftables (`nft`), which is not installed")
        with self._lock:
            self.check_open()
            self._loss.set(port, percent, direction)
            script = self._loss.script()
            proc = self.bridge.run(["nft", "-f", "-"], input=script + "\n", check=False)
            if proc.returncode != 0:
                raise LabUnavailable(f"nft failed in {self.bridge.netns}: {proc.stderr.strip()}")

    # -- cleanup -----------------------------------------------------------------

    def close(self) -> None:
        """Stop the lab's processes and watchers, delete its namespaces and temp dir.

        Idempotent; each step runs even if an earlier one failed. A SIGTERM that
        arrives meanwhile is held back and raised when the cleanup is complete.
        """
        if os.getpid() != self._owner_pid:
            return  # a forked child never tears down its parent's lab
        with self._lock:
            if self._closed:
                return
            self._closed = True
        registry.start_closing()
        try:
            errors = teardown(
                self._processes,
                self.stop_timeout,
                [*self._watchers.values(), *self._controls.values()],
                self._created,
                None if self.keep_tmpdir else self.tmpdir,
            )
        finally:
            registry.unregister(self)
            raise_pending = registry.finish_closing()
        if raise_pending:
            raise LabInterrupted("SIGTERM during lab cleanup")
        for error in errors:
            if not isinstance(error, Exception):
                raise error  # KeyboardInterrupt and the like keep their meaning
        if errors:
            raise RuntimeError(f"errors while closing {self!r}: {errors!r}") from errors[0]
