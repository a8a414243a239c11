"""The ownership record: a damaged one is moved aside, never trusted in part, and the
node's own addresses are never removed whatever a record lists (issue: a record naming
the primary address made the daemon delete it, and the node could not send adverts)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from reconciler.adapters.outcome import WriteOutcome
from reconciler.config.load import load_text
from reconciler.model.kernel import LiveAddress
from reconciler.reconcile.loop import ReconcileLoop
from reconciler.reconcile.ownership import FILE_NAME, OwnershipStore
from reconciler.testing.clusters import cluster_head

GOOD = {
    "version": 1,
    "owned": [["address", ["eth0", "192.0.2.100/24"]], ["ipvs_service", ["tcp", "a", "80"]]],
    "pending": [["address", ["eth0", "192.0.2.101/24"]]],
}

DAMAGED = {
    "truncated": json.dumps(GOOD)[:40],
    "not json": "owned: everything\n",
    "empty": "",
    "a list": "[]",
    "no owned": json.dumps({"version": 1}),
    "future version": json.dumps({**GOOD, "version": 7}),
    "owned not a list": json.dumps({"version": 1, "owned": {"a": 1}}),
    "entry not a pair": json.dumps({"version": 1, "owned": [["address"]]}),
    "unknown kind": json.dumps({"version": 1, "owned": [["route", ["eth0", "x"]]]}),
    "short key": json.dumps({"version": 1, "owned": [["address", ["eth0"]]]}),
    "key not strings": json.dumps({"version": 1, "owned": [["address", ["eth0", 5]]]}),
    "bad address": json.dumps({"version": 1, "owned": [["address", ["eth0", "nope"]]]}),
    "bad pending": json.dumps({"version": 1, "owned": [], "pending": "x"}),
}


def test_a_good_record_loads(tmp_path: Path) -> None:
    (tmp_path / FILE_NAME).write_text(json.dumps(GOOD))
    store = OwnershipStore(tmp_path)
    assert store.load() == {
        ("address", ("eth0", "192.0.2.100/24")),
        ("ipvs_service", ("tcp", "a", "80")),
    }
    assert store.pending == {("address", ("eth0", "192.0.2.101/24"))}
    assert store.damaged is None


@pytest.mark.parametrize("text", DAMAGED.values(), ids=DAMAGED.keys())
def test_a_damaged_record_is_moved_aside_and_nothing_of_it_is_trusted(
    tmp_path: Path, text: str
) -> None:
    record = tmp_path / FILE_NAME
    record.write_text(text)
    store = OwnershipStore(tmp_path)
    assert store.load() == set()
    assert store.owned == frozenset() and store.pending == frozenset()
    assert store.damaged is not None
    assert not record.exists()
    assert store.damaged.moved_to.parent == tmp_path
    assert store.damaged.moved_to.name.startswith(FILE_NAME + ".damaged-")
    assert store.damaged.moved_to.read_text() == text  # kept for the operator, unchanged
    # The next write starts a good record again.
    store.update(add={("address", ("eth0", "192.0.2.100/24"))})
    assert OwnershipStore(tmp_path).load() == {("address", ("eth0", "192.0.2.100/24"))}


def test_bytes_that_are_not_utf8_are_damage_too(tmp_path: Path) -> None:
    (tmp_path / FILE_NAME).write_bytes(b'{"version": 1, "owned": [\xff]}')
    store = OwnershipStore(tmp_path)
    assert store.load() == set() and store.damaged is not None


CONFIG = (
    cluster_head()
    + """\
vrrp:
  instances:
    web: {vrid: 51, priority: {a: 150, b: 100}, vips: [192.0.2.100/24]}
"""
)


class Addresses:
    def __init__(self, present: list[LiveAddress]) -> None:
        self.present = present
        self.deleted: list[LiveAddress] = []

    async def addresses(self) -> list[LiveAddress]:
        return list(self.present)

    async def add_address(self, a: LiveAddress) -> WriteOutcome:
        raise AssertionError(f"no address is added here: {a}")

    async def delete_address(self, a: LiveAddress) -> WriteOutcome:
        self.deleted.append(a)
        self.present.remove(a)
        return WriteOutcome.DELETED


def _live(text: str) -> LiveAddress:
    import ipaddress  # noqa: PLC0415

    return LiveAddress("eth0", ipaddress.ip_interface(text))


def test_the_nodes_own_addresses_are_never_removed_whatever_the_record_says(
    tmp_path: Path,
) -> None:
    """A backup removes the VIPs it owns, but not its node address, another advert source
    the runtime uses, or a link-local address, even when the record lists them."""
    own, source, link_local, vip = (
        _live("192.0.2.11/24"),
        _live("198.51.100.7/24"),
        _live("fe80::1/64"),
        _live("192.0.2.100/24"),
    )
    (tmp_path / FILE_NAME).write_text(
        json.dumps(
            {
                "version": 1,
                "owned": [["address", list(a.key)] for a in (own, source, link_local, vip)],
            }
        )
    )
    store = OwnershipStore(tmp_path)
    store.load()
    kernel = Addresses([own, source, link_local, vip])
    loop = ReconcileLoop(
        lambda: load_text(CONFIG, "t.yaml").cluster.for_node("a"),
        store,
        addresses=kernel,
        protected=lambda: frozenset({source.address.ip}),
    )
    asyncio.run(loop.run_once())
    assert kernel.deleted == [vip]  # the VIP of an instance we are not master of: gone
    assert asyncio.run(loop.run_once()).steps == ()
