"""Fixtures for the IPVS adapter tests, which need a kernel with ip_vs.

Tests marked ``@pytest.mark.ipvs`` are skipped, with the reason, where
``/proc/net/ip_vs`` is absent (the development hosts) or without root; with
``RECONCILER_REQUIRE_IPVS=1`` they fail instead. CI (scripts/test) runs them,
so required, inside Debian's user-mode-linux kernel::

    tools/ipvs-kernel/run-in-ipvs-kernel.sh .venv/bin/python -m pytest -q tests/ipvs

Each such test runs in a network namespace of its own, made for it and
dropped afterwards: IPVS tables, sysctls, links and sockets are per
namespace, so a test starts from an empty IPVS table and never touches the
table of the machine it runs on (which matters where the host itself has
ip_vs). Tests still clean up what they make; a test that leaves a service
behind errors in teardown.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import shutil
import subprocess
import threading
from collections.abc import Awaitable, Callable, Iterator
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any, TypeVar

import pytest
from ipvs_helpers import REAL_PORT, REAL_SERVERS, VIP, VIP_LINK, NamedServer
from pyroute2 import IPRoute

IPVS_PROC = Path("/proc/net/ip_vs")
RUNNER = "tools/ipvs-kernel/run-in-ipvs-kernel.sh .venv/bin/python -m pytest -q tests/ipvs"
CLONE_NEWNET = 0x40000000

_libc = ctypes.CDLL(None, use_errno=True)
_T = TypeVar("_T")


def ipvs_skip_reason() -> str | None:
    if not IPVS_PROC.exists():
        return f"needs a kernel with IPVS (/proc/net/ip_vs is absent); run: {RUNNER}"
    if os.geteuid() != 0:
        return "needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN) for IPVS and network namespaces"
    if shutil.which("ipvsadm") is None:
        return "needs ipvsadm (Debian package ipvsadm) to cross-check the kernel's state"
    return None


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("ipvs") is not None:
        reason = ipvs_skip_reason()
        if reason is not None:
            # CI sets this where the tests must run: a skip there would hide them.
            if os.environ.get("RECONCILER_REQUIRE_IPVS") == "1":
                pytest.fail(f"RECONCILER_REQUIRE_IPVS=1 but {reason}", pytrace=False)
            pytest.skip(reason)


# --------------------------------------------------------------------------- namespace


def _check(rc: int, what: str) -> None:
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _lo_up() -> None:
    with IPRoute() as ipr:
        ipr.link("set", index=ipr.link_lookup(ifname="lo")[0], state="up")


def ipvs_table() -> list[str]:
    """The lines of this namespace's /proc/net/ip_vs after its three header lines."""
    return Path("/proc/thread-self/net/ip_vs").read_text().splitlines()[3:]


@pytest.fixture(autouse=True)
def private_netns(request: pytest.FixtureRequest) -> Iterator[None]:
    """For an ``ipvs`` test: move this thread into a fresh network namespace, and back after.

    Subprocesses (ipvsadm) and threads (the real servers) started by the test
    inherit it; sockets made in it stay in it.
    """
    if request.node.get_closest_marker("ipvs") is None:
        yield
        return
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        _check(_libc.unshare(CLONE_NEWNET), "unshare(CLONE_NEWNET)")
        try:
            _lo_up()
            yield
            left = ipvs_table()
            if left:
                subprocess.run(["ipvsadm", "-C"], check=True)
        finally:
            _check(_libc.setns(home, CLONE_NEWNET), "setns(original namespace)")
    finally:
        os.close(home)
    # A failed test may stop half-way; one that passed must have cleaned up.
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.passed:
        assert not left, f"the test left IPVS state behind: {left}"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call":
        item.rep_call = report  # type: ignore[attr-defined]
    return report


# --------------------------------------------------------------------------- helpers


@pytest.fixture
def run() -> Callable[[Awaitable[_T]], _T]:
    """``run(coro)``: run a coroutine to its end on a fresh event loop."""

    def runner(coro: Awaitable[_T]) -> _T:
        async def main() -> _T:
            return await coro

        return asyncio.run(main())

    return runner


# --------------------------------------------------------------------------- traffic


@pytest.fixture
def vip() -> Iterator[IPv4Address]:
    """192.0.2.10/32 on a dummy link, so that connections to it are local and meet IPVS."""
    with IPRoute() as ipr:
        ipr.link("add", ifname=VIP_LINK, kind="dummy")
        index = ipr.link_lookup(ifname=VIP_LINK)[0]
        try:
            ipr.addr("add", index=index, address=str(VIP), prefixlen=32)
            ipr.link("set", index=index, state="up")
            yield VIP
        finally:
            ipr.link("del", index=index)


@pytest.fixture
def real_servers() -> Iterator[dict[str, IPv4Address]]:
    """TCP servers "a" on 127.0.0.2:8080 and "b" on 127.0.0.3:8080 (threads of this process)."""
    servers: list[NamedServer] = []
    threads: list[threading.Thread] = []
    try:
        for name, address in REAL_SERVERS.items():
            servers.append(NamedServer(name, (str(address), REAL_PORT)))
            # A short poll interval: shutdown() waits for the serve loop to notice.
            thread = threading.Thread(target=servers[-1].serve_forever, args=(0.05,), daemon=True)
            thread.start()
            threads.append(thread)
        yield dict(REAL_SERVERS)
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()
        for thread in threads:
            thread.join(timeout=5)
