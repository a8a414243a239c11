"""A resource error on the takeover path is counted by kind and logged once per kind, not
once per packet or per event (issue 13, item 1): advert sends, VIP adds and hook starts.

The socket and netlink are the project's own seams (``VrrpSocket``, ``Netlink``), faked as
in test_vrrp_batching.py (tests/helpers.py); the errors are the kernel's (``OSError`` with
an errno, pyroute2's ``NetlinkError``); the hook really fails to start.
"""

from __future__ import annotations

import asyncio
import errno
import logging
from datetime import timedelta
from ipaddress import IPv4Address, IPv4Interface
from pathlib import Path
from types import SimpleNamespace

import pytest
from helpers import FakeAnnouncer, FakeSocket
from pyroute2.netlink.exceptions import NetlinkError

from reconciler.adapters.error_tally import ErrorTally, error_kind
from reconciler.config.load import load_text
from reconciler.model.kernel import LiveAddress
from reconciler.model.vrrp import Hook
from reconciler.reconcile.ownership import OwnershipStore
from reconciler.runtime.notify import Notifier
from reconciler.runtime.vrrp_driver import InstanceDriver, SocketMux, Tallies, instance_params
from reconciler.testing.vrrp_nodes import Instance, cluster_yaml
from reconciler.vrrp.states import State

ME = IPv4Address("192.0.2.11")


class RefusingSocket(FakeSocket):
    """A socket whose every send fails, as behind a firewall that drops VRRP."""

    def send(self, payload: bytes, source: object, destination: object) -> None:
        self.sent.append(payload)
        raise PermissionError(errno.EPERM, "Operation not permitted")


class RefusingNetlink:
    """The kernel refuses every address (EACCES: IPv6 disabled on the link, say)."""

    def begin_add(self, a: LiveAddress) -> None:
        return None

    async def add_address(self, a: LiveAddress) -> None:
        raise NetlinkError(errno.EACCES, "Permission denied")

    async def delete_address(self, a: LiveAddress) -> None:
        raise NetlinkError(errno.EACCES, "Permission denied")


async def _masters(n: int, sock: FakeSocket, netlink: object, tmp: Path, run_s: float) -> Tallies:
    hosts = (SimpleNamespace(name="h1", ipv4=str(ME), ipv6="2001:db8::11"),)
    instances = tuple(
        Instance(
            f"vi{k}",
            k + 1,
            (IPv4Interface(f"192.0.2.{100 + k}/32"),),
            {"h1": 150},
            advert_interval_s=0.01,
        )
        for k in range(n)
    )
    text = cluster_yaml(hosts, instances)  # type: ignore[arg-type]  # names and addresses
    loop = asyncio.get_running_loop()
    mux = SocketMux(sock, loop)  # type: ignore[arg-type]
    tallies = Tallies.fresh()
    drivers = []
    for spec in load_text(text, "c.yaml").cluster.for_node("h1").instances:
        driver = InstanceDriver(
            spec,
            instance_params(spec, ME),
            mux,
            netlink,  # type: ignore[arg-type]
            FakeAnnouncer(),  # type: ignore[arg-type]
            OwnershipStore(tmp),
            loop,
            tallies=tallies,
        )
        mux.attach(driver)
        driver.start()
        drivers.append(driver)
    await asyncio.sleep(run_s)
    assert all(d.state is State.MASTER for d in drivers)  # the errors stopped nothing
    for d in drivers:
        await d.stop(timeout_s=1)
    mux.close()
    return tallies


def _lines(caplog: pytest.LogCaptureFixture, text: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if text in r.getMessage()]


def test_failed_advert_sends_are_counted_and_logged_once_per_kind(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sock = RefusingSocket()
    with caplog.at_level(logging.INFO):
        tallies = asyncio.run(_masters(3, sock, RefusingNetlink(), tmp_path, 0.5))
    # Three masters advertising every 10 ms for about 0.2 s after Master_Down_Interval.
    assert len(sock.sent) >= 15
    assert tallies.advert_send.counts == {"EPERM": len(sock.sent)}
    (line,) = _lines(caplog, "advert_send failed")
    assert "eth0" in line.getMessage() and "EPERM" in line.getMessage()


def test_failed_vip_writes_are_counted_by_errno_without_a_traceback_each(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        tallies = asyncio.run(_masters(4, FakeSocket(), RefusingNetlink(), tmp_path, 0.3))
    assert tallies.vip_add.counts == {"EACCES": 4}  # one takeover each
    assert len(_lines(caplog, "vip_add failed")) == 1
    assert not [r for r in caplog.records if r.exc_info]  # not a bug: no tracebacks
    # The graceful stops try to release the VIPs (claimed before the add), refused alike.
    assert tallies.vip_remove.counts == {"EACCES": 4}
    assert len(_lines(caplog, "vip_remove failed")) == 1


def test_a_hook_that_cannot_start_is_counted_each_time_and_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    missing = str(tmp_path / "no-such-hook")
    hook = Hook(command=(missing, "master"), timeout=timedelta(seconds=1), user="root")

    async def scenario() -> Notifier:
        notifier = Notifier(dict)
        for k in range(5):
            notifier.submit(f"vi{k}", (hook,), {})
        await notifier.stop()
        return notifier

    with caplog.at_level(logging.INFO):
        notifier = asyncio.run(scenario())
    assert notifier.start_failures.counts == {"ENOENT": 5}
    assert notifier.failures == 5
    (line,) = _lines(caplog, "hook_start failed")
    assert missing in line.getMessage()


def test_kinds_and_subjects() -> None:
    assert error_kind(OSError(errno.ENOBUFS, "x")) == "ENOBUFS"
    assert error_kind(NetlinkError(errno.EEXIST, "x")) == "EEXIST"
    assert error_kind(RuntimeError("can't start new thread")) == "RuntimeError"
    tally = ErrorTally("announce", logging.getLogger("test"))
    for subject in ("eth0", "eth0", "eth1"):
        tally.record(OSError(errno.ENETDOWN, "down"), subject)
    assert tally.counts == {"ENETDOWN": 3}
    assert tally._logged == {("ENETDOWN", "eth0"), ("ENETDOWN", "eth1")}
