"""The whole desired state, and each node's share of it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta

from reconciler.model.checks import Check
from reconciler.model.common import IPAddress, Resource
from reconciler.model.ipvs import RealServer, VirtualService
from reconciler.model.vrrp import SyncGroup, VrrpInstance


@dataclass(frozen=True)
class Node:
    name: str
    address: IPAddress | None = None
    address6: IPAddress | None = None
    interface: str | None = None
    router_id: str = ""
    labels: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Sysctls:
    """Director sysctls; None means leave the kernel's value alone."""

    ip_forward: bool | None = None
    conntrack: bool | None = None
    expire_nodest_conn: bool | None = None
    expire_quiescent_template: bool | None = None


@dataclass(frozen=True)
class NodeConfig:
    """What one node runs: its VRRP instances, checks and IPVS services, all resolved."""

    node: Node
    checks: tuple[Check, ...] = ()
    instances: tuple[VrrpInstance, ...] = ()
    sync_groups: tuple[SyncGroup, ...] = ()
    services: tuple[VirtualService, ...] = ()
    real_servers: tuple[RealServer, ...] = ()

    def resources(self) -> Iterator[Resource]:
        yield from self.checks
        yield from self.instances
        yield from self.sync_groups
        yield from self.services
        yield from self.real_servers

    def instance(self, name: str) -> VrrpInstance:
        for inst in self.instances:
            if inst.name == name:
                return inst
        raise KeyError(name)


@dataclass(frozen=True)
class Cluster:
    name: str
    nodes: tuple[Node, ...]
    node_configs: tuple[NodeConfig, ...] = field(repr=False, default=())
    sysctls: Sysctls = Sysctls()
    resync_interval: timedelta = timedelta(seconds=30)
    drain_timeout: timedelta = timedelta(minutes=5)

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    def for_node(self, name: str) -> NodeConfig:
        for cfg in self.node_configs:
            if cfg.node.name == name:
                return cfg
        raise KeyError(name)

    @property
    def node_names(self) -> tuple[str, ...]:
        return tuple(n.name for n in self.nodes)
