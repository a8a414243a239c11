"""The ownership record as a damaged disk or a careless hand leaves it, in the namespace
lab: the node still starts, cleans up only what its configuration names, and never
removes its own address (from which it sends its adverts)."""

from __future__ import annotations

import ipaddress
import json
import time

import pytest

from reconciler.testing.netlab import Lab, LabProcess
from reconciler.testing.vrrp_nodes import Instance, cluster_yaml, start_ours, wait_following

pytestmark = pytest.mark.root

VIP = ipaddress.ip_interface("192.0.2.100/24")


def _cluster(lab: Lab) -> LabProcess:
    """h2 master (150), h1 its backup (100); returns h2's daemon."""
    config = lab.tmpdir / "c.yaml"
    config.write_text(
        cluster_yaml(lab.hosts, (Instance("web", 61, (VIP,), {"h1": 100, "h2": 150}),))
    )
    h2 = lab.host(2)
    proc = start_ours(h2, config, lab.tmpdir / "s2", extra_args=("--metrics-addr", "127.0.0.1:0"))
    h2.watcher.wait_for(VIP, timeout=10)
    return proc


@pytest.mark.parametrize(
    "record",
    ['{"version": 1, "owned": [["address", ["eth0"', "not json at all", '{"owned": 5}'],
    ids=["truncated", "not-json", "wrong-shape"],
)
def test_a_damaged_record_is_moved_aside_and_the_stale_vip_still_goes(
    make_lab,  # type: ignore[no-untyped-def]
    record: str,
) -> None:
    lab: Lab = make_lab(2)
    _cluster(lab)
    h1 = lab.host(1)
    # What a crash on a full disk leaves: a VIP on the link and a record that is junk.
    h1.ip("addr", "add", str(VIP), "dev", "eth0")
    state = lab.tmpdir / "s1"
    state.mkdir()
    (state / "owned.json").write_text(record)
    t0 = time.monotonic()
    proc = start_ours(h1, lab.tmpdir / "c.yaml", state)
    h1.watcher.wait_for(VIP, present=False, timeout=10, after=t0)  # a backup: removed
    wait_following(h1)
    assert proc.alive
    log = proc.output()
    assert log.count("was damaged") == 1 and "Traceback" not in log
    (moved,) = state.glob("owned.json.damaged-*")
    assert moved.read_text() == record
    assert json.loads((state / "owned.json").read_text())["version"] == 1


def test_a_record_listing_the_nodes_own_address_never_removes_it(make_lab) -> None:  # type: ignore[no-untyped-def]
    lab: Lab = make_lab(2)
    master = _cluster(lab)
    h1 = lab.host(1)
    own = h1.interface().ipv4
    state = lab.tmpdir / "s1"
    state.mkdir()
    (state / "owned.json").write_text(
        json.dumps({"version": 1, "owned": [["address", ["eth0", str(own)]]], "pending": []})
    )
    t0 = time.monotonic()
    proc = start_ours(h1, lab.tmpdir / "c.yaml", state)
    wait_following(h1)
    time.sleep(0.5)  # a few reconcile passes' worth
    assert not [e for e in h1.watcher.events(own.ip) if e.timestamp > t0 and not e.present]
    assert "this node's own address: never removed" in proc.output()
    # And it still speaks VRRP from that address: it takes over when the master goes.
    t1 = time.monotonic()
    master.kill()
    h1.watcher.wait_for(VIP, timeout=10, after=t1)
    assert h1.watcher.is_present(own)
