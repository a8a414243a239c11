"""Desired-state files for tests and benchmarks, rendered from a few typed parameters.

Lab tests, unit tests and the benchmarks all need the same kind of cluster file: a few
nodes on an interface, VRRP instances with VIPs and priorities, now and then checks the
instances track, notify hooks or virtual services. Writing that YAML out by hand in every
file copies its head again and again and lets the copies drift; these builders render it
instead, so a test states only what it is about.

The text is rendered with PyYAML (block style, flow style for the innermost lists and
mappings), so it configures exactly what the parameters say; a test that asserts a line
or column in its file keeps its own text.

Below the builders, the lab and bench helpers around such files: a /healthz web root,
git-sync's atomic publish, and the VIPs and instances of a many-instance cluster.

Only tests and bench/ import this module; production code never imports reconciler.testing.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface, IPv6Address, IPv6Interface
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol

import yaml

from reconciler.testing.vrrp_nodes import Instance

Address = str | IPv4Address | IPv6Address | IPv4Interface | IPv6Interface


class HostLike(Protocol):
    """What a node entry needs of a lab host (reconciler.testing.netlab.Host has it)."""

    @property
    def name(self) -> str: ...

    @property
    def ipv4(self) -> IPv4Address: ...


@dataclass(frozen=True)
class Node:
    """One entry of `nodes:`."""

    name: str
    address: Address
    interface: str | None = "eth0"  # None: left out (a node without VRRP needs none)
    address6: Address | None = None

    def as_yaml(self) -> dict[str, Any]:
        out: dict[str, Any] = {"address": str(self.address)}
        if self.address6 is not None:
            out["address6"] = str(self.address6)
        if self.interface is not None:
            out["interface"] = self.interface
        return out


def nodes(*pairs: tuple[str, Address], interface: str | None = "eth0") -> tuple[Node, ...]:
    """Nodes from (name, address) pairs, all on `interface`."""
    return tuple(Node(name, address, interface) for name, address in pairs)


def lab_nodes(hosts: Iterable[HostLike], interface: str = "eth0") -> tuple[Node, ...]:
    """A node per lab host, named after it, at its IPv4 lab address."""
    return tuple(Node(h.name, h.ipv4, interface) for h in hosts)


# The two nodes most unit tests configure: `a` (192.0.2.11) and `b` (192.0.2.12) on eth0.
NODES_AB = nodes(("a", "192.0.2.11"), ("b", "192.0.2.12"))

# Two lab nodes h1 (150) and h2 (100): h1 is master.
H1_MASTER: Mapping[str, int] = MappingProxyType({"h1": 150, "h2": 100})


@dataclass(frozen=True)
class Check:
    """One entry of `checks:`: a probe (`{"http": {...}}`, `{"file": {...}}`, ...) and its
    timing; a field left at None is left out of the file (the loader's default)."""

    name: str
    probe: Mapping[str, Any] = field(hash=False)
    interval: str | None = None
    timeout: str | None = None
    rise: int | None = None
    fall: int | None = None

    def as_yaml(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.probe)
        timing = {
            "interval": self.interval,
            "timeout": self.timeout,
            "rise": self.rise,
            "fall": self.fall,
        }
        out.update({k: v for k, v in timing.items() if v is not None})
        return out


def http_check(
    name: str,
    url: str,
    *,
    status: str | None = None,
    interval: str | None = None,
    timeout: str | None = None,
    rise: int | None = None,
    fall: int | None = None,
) -> Check:
    probe: dict[str, Any] = {"url": url}
    if status is not None:
        probe["status"] = status
    return Check(name, {"http": probe}, interval, timeout, rise, fall)


def file_check(name: str, path: str | Path, *, interval: str | None = None) -> Check:
    return Check(name, {"file": {"path": str(path)}}, interval)


def script_check(
    name: str,
    command: Sequence[str],
    *,
    interval: str | None = None,
    timeout: str | None = None,
    rise: int | None = None,
    fall: int | None = None,
) -> Check:
    return Check(name, {"script": {"command": list(command)}}, interval, timeout, rise, fall)


@dataclass(frozen=True)
class Track:
    """One entry of an instance's `track:` list."""

    check: str
    weight: int

    def as_yaml(self) -> dict[str, Any]:
        return {"check": self.check, "weight": self.weight}


@dataclass(frozen=True)
class Vrrp:
    """One VRRP instance. `priority` maps node names to priorities (None: the default
    for every node); `options` holds any other setting of the instance (preempt, garp,
    notify, unicast, ...), written after the ones named here."""

    name: str
    vrid: int
    vips: Sequence[Address | Mapping[str, Any]] = field(hash=False)
    priority: Mapping[str, int] | None = field(default=None, hash=False)
    advert_interval: str | None = None
    track: Sequence[Track] = ()
    options: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def as_yaml(self) -> dict[str, Any]:
        out: dict[str, Any] = {"vrid": self.vrid}
        if self.advert_interval is not None:
            out["advert_interval"] = self.advert_interval
        if self.priority is not None:
            out["priority"] = dict(self.priority)
        out["vips"] = [v if isinstance(v, Mapping) else str(v) for v in self.vips]
        if self.track:
            out["track"] = [t.as_yaml() for t in self.track]
        out.update(self.options)
        return out


class _Dumper(yaml.SafeDumper):
    # One mapping used twice (a priority map shared by two instances) is written out
    # twice rather than as an anchor and an alias.
    def ignore_aliases(self, data: Any) -> bool:
        return True


def to_yaml(data: Mapping[str, Any]) -> str:
    """`data` as block YAML, keys in the order given."""
    text: str = yaml.dump(
        dict(data), Dumper=_Dumper, sort_keys=False, default_flow_style=None, width=1000
    )
    return text


def cluster_head(node_list: Iterable[Node] = NODES_AB, *, name: str = "t") -> str:
    """apiVersion, kind, name and nodes: the head of a file whose body a test writes."""
    return cluster_text(node_list, name=name)


def cluster_text(
    node_list: Iterable[Node],
    instances: Iterable[Vrrp] = (),
    *,
    name: str = "lab",
    checks: Iterable[Check] = (),
    vrrp: Mapping[str, Any] | None = None,
    **sections: Any,
) -> str:
    """A whole desired-state file. `vrrp` holds settings of the `vrrp:` section besides
    its instances (sync_groups, ...); `sections` are further top-level sections
    (virtual_services, ...), written last, in the order given."""
    doc: dict[str, Any] = {
        "apiVersion": "reconciler/v1",
        "kind": "Cluster",
        "name": name,
        "nodes": {n.name: n.as_yaml() for n in node_list},
    }
    check_map = {c.name: c.as_yaml() for c in checks}
    if check_map:
        doc["checks"] = check_map
    vrrp_section: dict[str, Any] = {}
    instance_map = {i.name: i.as_yaml() for i in instances}
    if instance_map:
        vrrp_section["instances"] = instance_map
    vrrp_section.update(vrrp or {})
    if vrrp_section:
        doc["vrrp"] = vrrp_section
    doc.update(sections)
    return to_yaml(doc)


# --------------------------------------------------------------- lab and bench helpers


def healthz_dir(parent: Path) -> Path:
    """A new directory `www` under `parent` with a `healthz` file: `python -m http.server`
    run in it answers an http_check of /healthz with 200."""
    www = parent / "www"
    www.mkdir()
    (www / "healthz").write_text("ok\n")
    return www


def git_sync_publish(root: Path, commit: str, data: str | bytes, link: str = "current") -> Path:
    """Publish `data` as cluster.yaml the way git-sync v4 publishes a commit, atomically: a
    new worktree directory named by the commit, a new symlink to it, renamed over `link`
    in `root`. Returns the worktree."""
    worktree = root / ".worktrees" / commit
    worktree.mkdir(parents=True)
    (worktree / "cluster.yaml").write_bytes(data.encode() if isinstance(data, str) else data)
    tmp = root / f".tmp-link-{commit}"
    tmp.symlink_to(Path(".worktrees") / commit)
    os.rename(tmp, root / link)
    return worktree


def vip_pool(n: int) -> list[IPv4Interface]:
    """`n` /32 VIPs, one per instance of a large cluster, from the documentation ranges:
    away from the lab hosts' addresses (.11, .12, ...) and from the VIPs the lab tests
    time (.100 up to .128 of 192.0.2.0/24)."""
    pool = [f"203.0.113.{i}" for i in range(1, 255)]
    pool += [f"198.51.100.{i}" for i in range(129, 255)]
    pool += [f"192.0.2.{i}" for i in range(129, 255)]
    if n > len(pool):
        raise ValueError(f"at most {len(pool)} instances")
    return [IPv4Interface(f"{a}/32") for a in pool[:n]]


VRIDS_PER_SEGMENT = 250


def many_instances(n: int, priorities: Mapping[str, int]) -> tuple[Instance, ...]:
    """`n` instances of 1 s adverts, a /32 VIP each (vip_pool): VRIDs 1..250 on eth0
    (VI_eth0_1, ...), then again on eth1, and so on; a lab needs a segment per 250."""
    out = []
    for k, vip in enumerate(vip_pool(n)):
        seg, vrid = divmod(k, VRIDS_PER_SEGMENT)
        out.append(
            Instance(
                f"VI_eth{seg}_{vrid + 1}",
                vrid + 1,
                (vip,),
                dict(priorities),
                advert_interval_s=1.0,
                interface=f"eth{seg}",
            )
        )
    return tuple(out)
