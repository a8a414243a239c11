"""A two-node cluster driven only by commits to a real git repository.

Both nodes run `reconciler run --git REPO --verify-commits range` in their own network
namespace and poll a repository the test creates and commits to, signing with ssh and
OpenPGP keys it generates. Good commits go live on both nodes; an unsigned commit, one
signed by a key the nodes do not trust, and a signed but invalid one are refused on both,
with the old state serving (asserted from netlink address events: no VIP moves) and
/status saying why. A priority change, a VIP added and removed and an advert interval
change, each a signed commit, are applied in place on both nodes: the VIP that stays
gets no address event at all.
"""

from __future__ import annotations

import ipaddress
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from reconciler.testing.gitrepo import GpgKey, Signers, SshKey, WorkRepo
from reconciler.testing.netlab import CommandError, Host, Lab, LabProcess
from reconciler.testing.vrrp_nodes import (
    Instance,
    cluster_yaml,
    node_status,
    start_ours_git,
    wait_following,
)

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(
        not all(shutil.which(t) for t in ("git", "gpg", "ssh-keygen", "gpgconf")),
        reason="needs git, gpg and ssh-keygen",
    ),
]

VIP = ipaddress.ip_interface("192.0.2.100/24")
VIP2 = ipaddress.ip_interface("192.0.2.101/24")
VIP3 = ipaddress.ip_interface("192.0.2.102/24")
FILE = "lb/cluster.yaml"


@pytest.fixture
def signers(tmp_path: Path) -> Iterator[Signers]:
    s = Signers(tmp_path / "keys")
    yield s
    s.close()


def trust_files(directory: Path, signer: SshKey, key: GpgKey) -> Path:
    """`directory` with a source.yaml that verifies every commit of a range, signed by
    `signer` (ssh) or `key` (OpenPGP)."""
    directory.mkdir()
    (directory / "allowed_signers").write_text(signer.allowed_signers_line())
    (directory / "trusted.asc").write_text(key.armored)
    (directory / "source.yaml").write_text(
        "verify_commits: range\nallowed_signers: allowed_signers\ntrusted_keys: trusted.asc\n"
    )
    return directory


def start_git_node(
    host: Host, repo: WorkRepo, state_dir: Path, *extra: str, interval: str = "200ms"
) -> LabProcess:
    return start_ours_git(host, repo.url, state_dir, path=FILE, interval=interval, extra_args=extra)


def wait_status(
    host: Host, ok: Callable[[dict[str, Any]], bool], what: str, timeout: float = 15.0
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    doc: dict[str, Any] | None = None
    while True:
        try:
            doc = node_status(host)
            if ok(doc):
                return doc
        except CommandError:
            pass  # not serving /status yet
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{host.name}: {what} within {timeout:g}s; last status: {doc}")
        time.sleep(0.1)


def wait_refused(host: Host, commit: str, what: str) -> dict[str, Any]:
    """Wait until `host` attempted `commit` and refused it (an error in its attempt)."""
    return wait_status(
        host,
        lambda d: (
            (d["revisions"]["attempted"] or {}).get("commit") == commit
            and bool(d["revisions"]["attempted"]["error"])
        ),
        what,
    )


def applied(commit: str) -> Callable[[dict[str, Any]], bool]:
    return lambda doc: doc["commit"] == commit and not doc["revisions"]["pending"]


def refused(commit: str, reason: str) -> Callable[[dict[str, Any]], bool]:
    def ok(doc: dict[str, Any]) -> bool:
        r = doc["git"]["last_refusal"]
        return r is not None and r["provenance"]["commit"] == commit and r["reason"] == reason

    return ok


def test_two_nodes_follow_signed_commits_and_refuse_the_rest(
    make_lab: Callable[..., Lab], signers: Signers, tmp_path: Path
) -> None:
    lab = make_lab(2)
    h1, h2 = lab.host(1), lab.host(2)
    alice = signers.ssh("alice")  # an allowed ssh signer
    ops = signers.gpg("ops")  # a trusted OpenPGP key
    stranger = signers.gpg("stranger")  # a key the nodes do not trust
    node_files = trust_files(tmp_path / "node", alice, ops)

    repo = WorkRepo(tmp_path / "repo", signers)

    def desired(*vips: ipaddress.IPv4Interface, vrid: int = 81) -> str:
        inst = Instance("web", vrid, tuple(vips), {"h1": 150, "h2": 100})
        return cluster_yaml(lab.hosts, (inst,))

    def settled() -> None:
        wait_status(h1, lambda d: d["instances"][0]["state"] == "MASTER", "h1 master")
        wait_status(h2, lambda d: d["instances"][0]["state"] == "BACKUP", "h2 backup")

    one = repo.commit({FILE: desired(VIP)}, "web on one VIP", sign=alice)
    nodes = [
        start_git_node(h, repo, lab.tmpdir / f"state-{h.name}", "--source-config",
                       str(node_files / "source.yaml"))
        for h in (h1, h2)
    ]  # fmt: skip
    h1.watcher.wait_for(VIP, timeout=20)
    for h in (h1, h2):
        doc = wait_status(h, applied(one), "first commit applied")
        assert doc["revisions"]["applied"]["verification"] == "verified"
        assert doc["revisions"]["applied"]["author"] == "Test Author <author@example.org>"
        assert doc["file"] == f"git:{repo.url}#main:{FILE}"

    # A good commit (OpenPGP-signed this time) goes live on both.
    t0 = time.monotonic()
    two = repo.commit({FILE: desired(VIP, VIP2)}, "second VIP", sign=ops)
    h1.watcher.wait_for(VIP2, timeout=15, after=t0)
    for h in (h1, h2):
        doc = wait_status(h, applied(two), "second commit applied")
        assert doc["revisions"]["applied"]["commit"] == two
    # (Whether the VIPs stay put through a VIP list change is the in-place apply's
    # business, tested with it; here: the revision reached both nodes and settles.)
    settled()

    def refused_on_both(commit: str, reason: str) -> None:
        t = time.monotonic()
        for h in (h1, h2):
            doc = wait_status(h, refused(commit, reason), f"{commit[:12]} refused ({reason})")
            assert doc["commit"] == two, "the last good revision keeps running"
            assert reason in (doc["revisions"]["last_refusal"] or "")
            cli = h.run([sys.executable, "-m", "reconciler", "status"], timeout=30).stdout
            assert f"refused {commit[:12]}: {reason}" in cli
        time.sleep(0.5)  # a few more polls: still refused, nothing moves
        for vip in (VIP, VIP2, VIP3):
            assert not [e for e in h1.watcher.events(vip) if e.timestamp > t], f"{vip} moved"
            assert not [e for e in h2.watcher.events(vip) if e.timestamp > t], f"{vip} moved"

    # Unsigned: refused on both, nothing moves.
    t1 = time.monotonic()
    unsigned = repo.commit({FILE: desired(VIP, VIP2, VIP3)}, "a third VIP, unsigned")
    refused_on_both(unsigned, "unsigned")

    # Range mode: a signed commit on top does not launder the unsigned one.
    on_top = repo.commit({FILE: desired(VIP, VIP2, VIP3)}, "signed on top", sign=alice)
    refused_on_both(on_top, "unsigned")

    # The branch is put back on the applied commit, then a key the nodes do not trust.
    repo.reset_hard(two)
    untrusted = repo.commit({FILE: desired(VIP, VIP2, VIP3)}, "by a stranger", sign=stranger)
    refused_on_both(untrusted, "untrusted-signer")

    # A force-push to an older, once-good commit: a rollback, refused.
    repo.reset_hard(one)
    refused_on_both(one, "not-fast-forward")

    # Signed but invalid: the source hands it on, validation refuses it on both.
    repo.reset_hard(two)
    t2 = time.monotonic()
    invalid = repo.commit({FILE: desired(VIP, VIP2, vrid=300)}, "bad vrid", sign=alice)
    for h in (h1, h2):
        doc = wait_refused(h, invalid, "invalid commit refused")
        assert doc["commit"] == two
        assert "vrid: 300 is out of range" in doc["revisions"]["attempted"]["error"]
    time.sleep(0.5)
    for vip in (VIP, VIP2, VIP3):
        assert not [e for e in h1.watcher.events(vip) if e.timestamp > t2], f"{vip} moved"
    assert not [e for e in h1.watcher.events(VIP3) if e.timestamp > t1], "refused VIP went up"

    # The cluster still follows: a good commit after all that goes live on both.
    t3 = time.monotonic()
    fixed = repo.commit({FILE: desired(VIP, VIP3)}, "swap the second VIP", sign=ops)
    h1.watcher.wait_for(VIP3, timeout=15, after=t3)
    h1.watcher.wait_for(VIP2, present=False, timeout=15, after=t3)
    for h in (h1, h2):
        wait_status(h, applied(fixed), "fixed commit applied")
    settled()

    for proc in nodes:
        assert proc.stop() == 0 or not proc.alive


def test_an_unstartable_commit_is_refused_on_both_with_the_old_state_serving(
    make_lab: Callable[..., Lab], signers: Signers, tmp_path: Path
) -> None:
    lab = make_lab(2)
    h1, h2 = lab.host(1), lab.host(2)
    ops = signers.gpg("ops")
    keys = tmp_path / "trusted.asc"
    keys.write_text(ops.armored)
    repo = WorkRepo(tmp_path / "repo", signers)
    web = Instance("web", 81, (VIP,), {"h1": 150, "h2": 100})
    good = repo.commit({FILE: cluster_yaml(lab.hosts, (web,))}, "web", sign=ops)
    verify = ("--verify-commits", "head", "--trusted-keys", str(keys))
    nodes = [start_git_node(h, repo, lab.tmpdir / f"state-{h.name}", *verify) for h in (h1, h2)]
    h1.watcher.wait_for(VIP, timeout=20)
    for h in (h1, h2):
        wait_status(h, applied(good), "first commit applied")
    wait_status(h2, lambda d: d["instances"][0]["state"] == "BACKUP", "h2 backup")

    # Signed and valid, but it cannot run here: an instance on an interface neither has.
    api = Instance("api", 82, (VIP3,), {"h1": 150, "h2": 100}, interface="eth9")
    t0 = time.monotonic()
    bad = repo.commit({FILE: cluster_yaml(lab.hosts, (web, api))}, "api on eth9", sign=ops)
    for h in (h1, h2):
        doc = wait_refused(h, bad, "unstartable commit refused")
        assert "eth9" in doc["revisions"]["attempted"]["error"]
        assert doc["commit"] == good, "the last good revision keeps running"
        assert [i["name"] for i in doc["instances"]] == ["web"]
    time.sleep(0.5)
    for h in (h1, h2):
        for vip in (VIP, VIP3):
            assert not [e for e in h.watcher.events(vip) if e.timestamp > t0], f"{vip} moved"
    for proc in nodes:
        assert proc.stop() == 0 or not proc.alive


def _post_refresh(host: Host) -> str:
    code = (
        "import sys, urllib.request;"
        "r = urllib.request.Request('http://127.0.0.1:9650/hooks/refresh', method='POST');"
        "sys.stdout.write(urllib.request.urlopen(r, timeout=5).read().decode())"
    )
    return host.run([sys.executable, "-c", code], timeout=30).stdout


def _metrics(host: Host) -> str:
    code = (
        "import sys, urllib.request;"
        "sys.stdout.write(urllib.request.urlopen('http://127.0.0.1:9650/metrics', timeout=5)"
        ".read().decode())"
    )
    return host.run([sys.executable, "-c", code], timeout=30).stdout


def test_sighup_and_the_refresh_hook_fetch_now_and_a_lost_remote_changes_nothing(
    make_lab: Callable[..., Lab], signers: Signers, tmp_path: Path
) -> None:
    lab = make_lab(1)
    h1 = lab.host(1)
    repo = WorkRepo(tmp_path / "repo", signers)

    def desired(*vips: ipaddress.IPv4Interface) -> str:
        return cluster_yaml(lab.hosts, (Instance("web", 81, tuple(vips), {"h1": 150}),))

    one = repo.commit({FILE: desired(VIP)}, "one")
    # Polls an hour apart: whatever is fetched below is fetched because it was asked for.
    proc = start_git_node(h1, repo, lab.tmpdir / "state", "--refresh-hook", interval="1h")
    h1.watcher.wait_for(VIP, timeout=20)
    wait_status(h1, applied(one), "first commit applied")

    two = repo.commit({FILE: desired(VIP, VIP2)}, "two")
    time.sleep(1.0)
    assert node_status(h1)["commit"] == one, "fetched without being asked"
    t0 = time.monotonic()
    proc.signal(signal.SIGHUP)
    h1.watcher.wait_for(VIP2, timeout=10, after=t0)
    wait_status(h1, applied(two), "SIGHUP fetched")

    three = repo.commit({FILE: desired(VIP)}, "three")
    assert "refresh requested" in _post_refresh(h1)
    h1.watcher.wait_for(VIP2, present=False, timeout=10, after=t0)
    wait_status(h1, applied(three), "POST /hooks/refresh fetched")
    wait_status(h1, lambda d: d["instances"][0]["state"] == "MASTER", "master again")
    deadline = time.monotonic() + 10
    while not h1.watcher.is_present(VIP) and time.monotonic() < deadline:
        time.sleep(0.05)

    # The remote goes away: the fetch fails, is reported, and nothing moves.
    hidden = repo.path.with_name("hidden")
    repo.path.rename(hidden)
    t1 = time.monotonic()
    proc.signal(signal.SIGHUP)
    doc = wait_status(h1, lambda d: bool(d["git"]["last_error"]), "fetch failure reported")
    assert doc["commit"] == three and doc["git"]["consecutive_failures"] >= 1
    metrics = _metrics(h1)
    assert "reconciler_git_fetch_failures_total 1.0" in metrics
    assert "reconciler_git_fetch_consecutive_failures 1.0" in metrics
    if shutil.which("promtool"):
        lint = subprocess.run(
            ["promtool", "check", "metrics"], input=metrics, capture_output=True, text=True,
            check=False,
        )  # fmt: skip
        assert lint.returncode == 0, lint.stdout + lint.stderr
    cli = h1.run([sys.executable, "-m", "reconciler", "status"], timeout=30).stdout
    assert "fetch failing (1 in a row" in cli
    time.sleep(0.5)
    assert not [e for e in h1.watcher.events(VIP) if e.timestamp > t1], "VIP moved"
    assert h1.watcher.is_present(VIP)

    hidden.rename(repo.path)
    four = repo.commit({FILE: desired(VIP, VIP3)}, "four")
    proc.signal(signal.SIGHUP)
    doc = wait_status(h1, applied(four), "fetch works again")
    assert doc["git"]["last_error"] is None
    assert proc.stop() == 0 or not proc.alive


def test_signed_commits_change_a_two_node_cluster_in_place_without_a_vip_flap(
    make_lab: Callable[..., Lab], signers: Signers, tmp_path: Path
) -> None:
    """A priority change, a VIP added, that VIP removed and an advert interval change,
    each a signed commit that both nodes poll and apply in place (DESIGN rule 10): the
    VIP that stays sees no netlink address event at all on either node, the added VIP
    comes once on the master and goes once, and each commit is applied on both."""
    lab = make_lab(2)
    h1, h2 = lab.host(1), lab.host(2)
    alice = signers.ssh("alice")
    ops = signers.gpg("ops")
    node_files = trust_files(tmp_path / "node", alice, ops)
    repo = WorkRepo(tmp_path / "repo", signers)
    web = Instance("web", 81, (VIP,), {"h1": 150, "h2": 100})

    def commit_on_both(inst: Instance, message: str, key: SshKey | GpgKey) -> str:
        """Commit `inst`, signed by `key`; wait until both nodes applied it."""
        commit = repo.commit({FILE: cluster_yaml(lab.hosts, (inst,))}, message, sign=key)
        for h in (h1, h2):
            doc = wait_status(h, applied(commit), f"{message!r} applied")
            assert doc["revisions"]["applied"]["verification"] == "verified"
        return commit

    one = repo.commit({FILE: cluster_yaml(lab.hosts, (web,))}, "web on one VIP", sign=alice)
    source = ("--source-config", str(node_files / "source.yaml"))
    nodes = [start_git_node(h, repo, lab.tmpdir / f"state-{h.name}", *source) for h in (h1, h2)]
    h1.watcher.wait_for(VIP, timeout=20)
    for h in (h1, h2):
        wait_status(h, applied(one), "first commit applied")
    wait_following(h2)
    before = {h.name: node_status(h)["instances"][0]["transitions"] for h in (h1, h2)}
    t_start = time.monotonic()

    def stays_put(step: str) -> None:
        time.sleep(0.5)  # a restart would have released VIP and taken it back by now
        for h in (h1, h2):
            events = [e for e in h.watcher.events(VIP) if e.timestamp >= t_start]
            assert events == [], f"{step}: {VIP} got address events on {h.name}: {events}"

    # 1. Priorities, staying above the peer (OpenPGP-signed).
    web = replace(web, priorities={"h1": 160, "h2": 120})
    commit_on_both(web, "priorities up", ops)
    stays_put("priority")
    # 2. A VIP added (ssh-signed): the master adds it, nothing else moves.
    web = replace(web, vips=(VIP, VIP2))
    t_add = time.monotonic()
    commit_on_both(web, "a second VIP", alice)
    h1.watcher.wait_for(VIP2, timeout=10, after=t_add)
    stays_put("VIP added")
    # 3. The VIP removed again.
    web = replace(web, vips=(VIP,))
    t_remove = time.monotonic()
    commit_on_both(web, "back to one VIP", ops)
    h1.watcher.wait_for(VIP2, present=False, timeout=10, after=t_remove)
    stays_put("VIP removed")
    # 4. The advert interval: h2 learns it from h1's adverts (RFC 5798 §6.4.2
    # Master_Adver_Interval) and follows at the new pace, without a takeover.
    web = replace(web, advert_interval_s=0.2)
    commit_on_both(web, "adverts every 200 ms", alice)
    stays_put("advert interval")
    r0 = int(node_status(h2)["instances"][0]["adverts_received"])
    time.sleep(2.0)
    r1 = int(node_status(h2)["instances"][0]["adverts_received"])
    assert 6 <= r1 - r0 <= 14, f"{r1 - r0} adverts in 2 s at 200 ms"

    # Observed, on both nodes: VIP never touched; VIP2 came and went once, on h1 only.
    for h in (h1, h2):
        assert [e for e in h.watcher.events(VIP) if e.timestamp >= t_start] == [], h.name
        assert h.watcher.overruns == 0, f"{h.name}: the watcher lost events"
    kinds = [(e.kind, e.synthetic) for e in h1.watcher.events(VIP2) if e.timestamp >= t_start]
    assert kinds == [("new", False), ("del", False)]
    assert [e for e in h2.watcher.events(VIP2) if e.timestamp >= t_start] == []
    assert h1.watcher.is_present(VIP) and not h2.watcher.is_present(VIP)
    for h, state in ((h1, "MASTER"), (h2, "BACKUP")):
        doc = node_status(h)
        (inst,) = doc["instances"]
        assert inst["state"] == state, h.name
        assert inst["transitions"] == before[h.name], f"{h.name} changed state"
        assert inst["reconfigured"] == 4, h.name
        assert inst["vips"] == [str(VIP)]
        assert (doc["revisions"]["applies"], doc["revisions"]["failures"]) == (5, 0), h.name
    assert node_status(h1)["instances"][0]["effective_priority"] == 160
    for proc in nodes:
        assert proc.stop() == 0 or not proc.alive
