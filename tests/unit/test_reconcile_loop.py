"""The reconcile loop's rules, against an in-memory kernel behind the loop's own ports.

The real kernel is exercised in tests/ipvs (IPVS) and tests/integration (addresses);
here each rule is pinned down deterministically: convergence, ownership, draining,
backoff and permanent errors.
"""

from __future__ import annotations

import asyncio
import errno
from dataclasses import replace
from pathlib import Path

import pytest

from reconciler.adapters.outcome import WriteOutcome
from reconciler.config.load import load_text
from reconciler.model.common import IPAddress
from reconciler.model.ipvs import ServiceKey
from reconciler.model.kernel import LiveAddress, LiveDest, LiveService
from reconciler.reconcile.loop import Outcome, ReconcileLoop
from reconciler.reconcile.ownership import OwnershipStore
from reconciler.testing.clusters import NODES_AB, cluster_head

CONFIG = (
    cluster_head(NODES_AB[:1])
    + """\
virtual_services:
  web:
    address: 192.0.2.100
    port: 80
    scheduler: wrr
    real_servers:
      - {address: 198.51.100.2, port: 8080, weight: 1}
      - {address: 198.51.100.3, port: 8080, weight: 3}
"""
)


class FakeError(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(errno.errorcode[code])
        self.code = code


class FakeIpvs:
    """A dict-backed IPVS with the adapter's idempotent semantics."""

    def __init__(self) -> None:
        self.services: dict[ServiceKey, LiveService] = {}
        self.dests: dict[tuple[ServiceKey, IPAddress, int], LiveDest] = {}
        self.writes: list[str] = []
        self.fail: dict[str, int] = {}  # write name -> errno to raise

    def _w(self, name: str) -> None:
        self.writes.append(name)
        if name in self.fail:
            raise FakeError(self.fail[name])

    async def dump(self) -> tuple[list[LiveService], list[LiveDest]]:
        return list(self.services.values()), list(self.dests.values())

    async def add_service(self, svc: LiveService) -> WriteOutcome:
        self._w("add_service")
        self.services[svc.service] = svc
        return WriteOutcome.CREATED

    async def edit_service(self, svc: LiveService) -> WriteOutcome:
        self._w("edit_service")
        self.services[svc.service] = svc
        return WriteOutcome.UPDATED

    async def delete_service(self, service: ServiceKey) -> WriteOutcome:
        self._w("delete_service")
        self.services.pop(service, None)
        for k in [k for k in self.dests if k[0] == service]:
            del self.dests[k]
        return WriteOutcome.DELETED

    async def add_dest(self, dest: LiveDest) -> WriteOutcome:
        self._w("add_dest")
        self.dests[(dest.service, dest.address, dest.port)] = dest
        return WriteOutcome.CREATED

    async def edit_dest(self, dest: LiveDest) -> WriteOutcome:
        self._w("edit_dest")
        old = self.dests[(dest.service, dest.address, dest.port)]
        self.dests[(dest.service, dest.address, dest.port)] = replace(
            dest,
            active_connections=old.active_connections,
            inactive_connections=old.inactive_connections,
        )
        return WriteOutcome.UPDATED

    async def delete_dest(self, service: ServiceKey, address: IPAddress, port: int) -> WriteOutcome:
        self._w("delete_dest")
        self.dests.pop((service, address, port), None)
        return WriteOutcome.DELETED


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(tmp_path: Path, text: str = CONFIG) -> tuple[ReconcileLoop, FakeIpvs, Clock, list[str]]:
    cfg = [text]
    kernel = FakeIpvs()
    clock = Clock()
    store = OwnershipStore(tmp_path)
    store.load()
    loop = ReconcileLoop(
        lambda: load_text(cfg[0], "t.yaml").cluster.for_node("a"),
        store,
        ipvs=kernel,
        drain_timeout_s=60,
        clock=clock,
    )
    return loop, kernel, clock, cfg


def run(loop: ReconcileLoop):  # type: ignore[no-untyped-def]
    return asyncio.run(loop.run_once())


def remove_busy_server(
    loop: ReconcileLoop, kernel: FakeIpvs, cfg: list[str], connections: int
) -> tuple[ServiceKey, IPAddress, int]:
    """198.51.100.3 gets `connections` active connections and leaves the file; one pass
    runs. The server's key."""
    key = next(k for k in kernel.dests if str(k[1]) == "198.51.100.3")
    kernel.dests[key] = replace(kernel.dests[key], active_connections=connections)
    cfg[0] = cfg[0].replace("      - {address: 198.51.100.3, port: 8080, weight: 3}\n", "")
    run(loop)
    return key


def test_converges_then_does_nothing(tmp_path: Path) -> None:
    loop, kernel, _, _ = make(tmp_path)
    first = run(loop)
    assert first.outcome is Outcome.CHANGED
    assert kernel.writes == ["add_service", "add_dest", "add_dest"]
    second = run(loop)
    assert second.outcome is Outcome.CONVERGED and second.steps == ()
    assert kernel.writes == ["add_service", "add_dest", "add_dest"]
    # What was created is recorded as ours, on disk.
    assert len(OwnershipStore(tmp_path).load()) == 3


def test_one_weight_change_is_one_write(tmp_path: Path) -> None:
    loop, kernel, _, cfg = make(tmp_path)
    run(loop)
    kernel.writes.clear()
    cfg[0] = CONFIG.replace("weight: 3", "weight: 5")
    assert run(loop).outcome is Outcome.CHANGED
    assert kernel.writes == ["edit_dest"]


def test_drift_is_corrected(tmp_path: Path) -> None:
    loop, kernel, _, _ = make(tmp_path)
    run(loop)
    svc = next(iter(kernel.services))
    removed = kernel.dests.pop((svc, *next(iter(kernel.dests))[1:]))
    # A real server added by hand to our service is removed (at once: it has no traffic).
    stray = replace(removed, address=removed.address + 10)
    kernel.dests[(svc, stray.address, stray.port)] = stray
    run(loop)
    assert (svc, removed.address, removed.port) in kernel.dests
    assert (svc, stray.address, stray.port) not in kernel.dests


def test_foreign_service_and_its_servers_are_never_touched(tmp_path: Path) -> None:
    loop, kernel, _, _ = make(tmp_path)
    run(loop)
    ours = next(iter(kernel.services.values()))
    theirs = replace(ours, service=replace(ours.service, port=8443))
    kernel.services[theirs.service] = theirs
    d = next(iter(kernel.dests.values()))
    their_dest = replace(d, service=theirs.service)
    kernel.dests[(theirs.service, d.address, d.port)] = their_dest
    kernel.writes.clear()
    result = run(loop)
    assert result.outcome is Outcome.CONVERGED and kernel.writes == []
    assert kernel.services[theirs.service] == theirs


def test_clash_with_a_foreign_object_is_a_conflict_not_a_write(tmp_path: Path) -> None:
    loop, kernel, _, _ = make(tmp_path)
    wanted = loop.wanted()
    svc = next(r for r in wanted if isinstance(r, LiveService))
    kernel.services[svc.service] = replace(svc, scheduler="lc")  # someone else's
    result = run(loop)
    assert [c.key for c in result.conflicts] == [svc.key]
    assert kernel.services[svc.service].scheduler == "lc"
    assert "edit_service" not in kernel.writes


def test_removed_tcp_server_drains_before_it_is_deleted(tmp_path: Path) -> None:
    loop, kernel, clock, cfg = make(tmp_path)
    run(loop)
    key = remove_busy_server(loop, kernel, cfg, connections=2)
    assert kernel.dests[key].weight == 0  # quiesced, not deleted: its connection lives on
    clock.now += 5
    kernel.writes.clear()
    run(loop)
    assert key in kernel.dests and kernel.writes == []  # still busy: nothing to do
    kernel.dests[key] = replace(kernel.dests[key], active_connections=0)
    run(loop)
    assert key not in kernel.dests


def test_drain_timeout_deletes_a_busy_server(tmp_path: Path) -> None:
    loop, kernel, clock, cfg = make(tmp_path)
    run(loop)
    key = remove_busy_server(loop, kernel, cfg, connections=1)
    clock.now += 61
    run(loop)
    assert key not in kernel.dests


def test_removed_service_goes_after_its_servers_drained(tmp_path: Path) -> None:
    loop, kernel, _, cfg = make(tmp_path)
    run(loop)
    for k in kernel.dests:
        kernel.dests[k] = replace(kernel.dests[k], inactive_connections=1)
    cfg[0] = CONFIG.split("virtual_services:", maxsplit=1)[0]
    run(loop)
    assert kernel.services and all(d.weight == 0 for d in kernel.dests.values())
    for k in kernel.dests:
        kernel.dests[k] = replace(kernel.dests[k], inactive_connections=0)
    run(loop)  # servers go
    run(loop)  # then the service
    assert not kernel.services and not kernel.dests
    assert OwnershipStore(tmp_path).load() == set()


def test_permanent_error_is_not_retried_until_the_input_changes(tmp_path: Path) -> None:
    loop, kernel, _, cfg = make(tmp_path)
    kernel.fail["add_service"] = errno.ENOENT  # e.g. an unknown scheduler module
    assert run(loop).outcome is Outcome.ERROR
    n = kernel.writes.count("add_service")
    assert run(loop).outcome is Outcome.ERROR
    assert kernel.writes.count("add_service") == n  # not retried
    cfg[0] = CONFIG.replace("scheduler: wrr", "scheduler: rr")
    del kernel.fail["add_service"]
    assert run(loop).outcome is Outcome.CHANGED


def test_transient_error_backs_off(tmp_path: Path) -> None:
    loop, kernel, clock, _ = make(tmp_path)
    kernel.fail["add_service"] = errno.EBUSY
    run(loop)
    run(loop)
    assert kernel.writes.count("add_service") == 1  # within the back-off
    clock.now += 1.5
    del kernel.fail["add_service"]
    assert run(loop).outcome is Outcome.CHANGED


@pytest.mark.parametrize("proto", ["udp"])
def test_udp_servers_go_at_once(tmp_path: Path, proto: str) -> None:
    text = CONFIG.replace("    scheduler: wrr", f"    scheduler: wrr\n    protocol: {proto}")
    loop, kernel, _, cfg = make(tmp_path, text)
    run(loop)
    key = remove_busy_server(loop, kernel, cfg, connections=2)
    assert key not in kernel.dests


def test_pending_takeover_vips_are_written_down_and_survive_a_restart(tmp_path: Path) -> None:
    store = OwnershipStore(tmp_path)
    store.load()
    ident = ("address", ("eth0", "192.0.2.100/24"))
    store.set_pending({ident})
    store.claim({ident})  # a takeover, in memory only: not written yet
    again = OwnershipStore(tmp_path)
    assert again.load() == set()  # the claim was lost with the process...
    assert again.pending == {ident}  # ...the pending VIP was not
    again.set_pending(set())
    assert OwnershipStore(tmp_path).load() == set()
    third = OwnershipStore(tmp_path)
    third.load()
    assert third.pending == frozenset()


VRRP_CONFIG = (
    cluster_head(NODES_AB[:1])
    + """\
vrrp:
  instances:
    web: {vrid: 51, priority: {a: 150}, vips: [192.0.2.100/24]}
"""
)


def test_a_vip_a_driver_added_during_the_pass_stays_ours(tmp_path: Path) -> None:
    """A pass that read the links before a takeover (or a VIP added in place) and then
    finds the VIP there (EEXIST) must not drop the driver's claim: an unowned VIP would
    never be released when the node stops being master."""
    store = OwnershipStore(tmp_path)
    store.load()
    ident = ("address", ("eth0", "192.0.2.100/24"))

    class RacingAddresses:
        writes: list[str] = []

        async def addresses(self) -> list[LiveAddress]:
            store.claim({ident})  # the driver adds and claims it while we read
            return []

        async def add_address(self, a: LiveAddress) -> WriteOutcome:
            self.writes.append(f"add {a.address}")
            return WriteOutcome.UNCHANGED  # EEXIST: the driver's add came first

        async def delete_address(self, a: LiveAddress) -> WriteOutcome:
            raise AssertionError("nothing to delete")

    ports = RacingAddresses()
    loop = ReconcileLoop(
        lambda: load_text(VRRP_CONFIG, "t.yaml").cluster.for_node("a"),
        store,
        addresses=ports,
        masters=lambda: frozenset({"web"}),
    )
    run(loop)
    assert ports.writes == ["add 192.0.2.100/24"]
    assert ident in store.owned
    assert ident in OwnershipStore(tmp_path).load()  # and written down


def test_the_state_directory_is_checked_writable_before_a_reload(tmp_path: Path) -> None:
    OwnershipStore(tmp_path / "state").check_writable()
    assert list((tmp_path / "state").iterdir()) == []  # the probe leaves nothing
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(OSError):
        OwnershipStore(blocker / "state").check_writable()
