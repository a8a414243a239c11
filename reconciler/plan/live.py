"""Project a node's desired state onto the kernel objects it implies.

Which VIPs should be present depends on VRRP state (only the master holds an
instance's VIPs) and real-server weights depend on health; both are inputs
here, so this stays pure and the live diff is `diff(project(...), observed, owned)`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address

from reconciler.model.cluster import NodeConfig
from reconciler.model.common import Key
from reconciler.model.ipvs import VirtualService
from reconciler.model.kernel import LiveAddress, LiveDest, LiveService
from reconciler.model.vrrp import Vip


@dataclass(frozen=True)
class Overlay:
    """What health changes in the desired IPVS table: server weights by key (None: out of
    the table) and the services switched to their sorry server (quorum lost)."""

    weights: Mapping[Key, int | None] = field(default_factory=dict)
    sorry_active: frozenset[Key] = frozenset()


def live_service(svc: VirtualService) -> LiveService:
    p = svc.persistence
    full = 32 if svc.service.family.value == 4 else 128
    return LiveService(
        service=svc.service,
        scheduler=svc.scheduler,
        scheduler_flags=svc.scheduler_flags,
        persistent=p is not None,
        timeout=p.timeout if p else LiveService.timeout,
        netmask=p.netmask if p else full,
    )


def live_vip(vip: Vip) -> LiveAddress:
    """A VIP as the kernel address it becomes."""
    return LiveAddress(vip.dev, vip.address, vip.label, vip.scope)


def vip_addresses(cfg: NodeConfig, masters: frozenset[str]) -> Iterator[LiveAddress]:
    """The VIPs that must be on this node: those of the instances it is master of."""
    for inst in cfg.instances:
        if inst.name in masters:
            yield from map(live_vip, inst.vips)


def no_accept_vips(cfg: NodeConfig) -> frozenset[IPv4Address | IPv6Address]:
    """The VIPs this node must not accept packets for, master or backup (RFC 5798
    §6.4.2, §6.4.3): those of its instances with Accept_Mode False where it is not the
    address owner (priority 255 always accepts)."""
    return frozenset(
        vip.address.ip
        for inst in cfg.instances
        if not inst.accepts_vip_traffic
        for vip in inst.vips
    )


def own_addresses(cfg: NodeConfig) -> frozenset[IPv4Address | IPv6Address]:
    """The node's own addresses as its configuration names them (its node addresses and
    every instance's advert source): never a VIP to remove, whatever a record says, or
    the node could no longer send adverts."""
    node = cfg.node
    found = {node.address, node.address6, *(i.primary_address for i in cfg.instances)}
    return frozenset(a for a in found if a is not None)


def project(
    cfg: NodeConfig,
    masters: frozenset[str] = frozenset(),
    weights: Mapping[Key, int | None] | None = None,
    sorry_active: frozenset[Key] = frozenset(),
) -> Iterator[LiveAddress | LiveService | LiveDest]:
    """Kernel objects for `cfg`: VIPs of the instances in `masters`, every IPVS service,
    and real servers at their configured weight unless `weights` overrides it by key
    (None: the server is out of the table, as after a failed check). Services in
    `sorry_active` (quorum lost) get their sorry server; others keep it at weight 0
    when `sorry_server_inhibit` is set."""
    yield from vip_addresses(cfg, masters)
    for svc in cfg.services:
        yield live_service(svc)
        sorry = svc.sorry_server
        if sorry is not None and (svc.key in sorry_active or svc.sorry_server_inhibit):
            yield LiveDest(
                service=svc.service,
                address=sorry.address,
                port=sorry.port,
                weight=1 if svc.key in sorry_active else 0,
                forwarding=sorry.forwarding,
            )
    overrides = weights or {}
    for rs in cfg.real_servers:
        weight = overrides.get(rs.key, rs.weight)
        if weight is None:
            continue
        yield LiveDest(
            service=rs.service,
            address=rs.address,
            port=rs.port,
            weight=weight,
            forwarding=rs.forwarding,
            upper_threshold=rs.upper_threshold,
            lower_threshold=rs.lower_threshold,
        )
