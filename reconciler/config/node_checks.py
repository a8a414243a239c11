"""Warnings that depend on the machine a node runs on, decided from facts given as data.

Whether a program exists, and which subnets an interface has, is I/O: the command line
gathers those facts on the node (``validate --node``) and these functions turn them into
located warnings. What cannot be known (no facts given) yields nothing.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from reconciler.config.diagnostics import Diagnostic, Location, Severity
from reconciler.config.load import Loaded
from reconciler.config.yamlload import Document, Path, dotted
from reconciler.model.cluster import NodeConfig
from reconciler.model.common import IPInterface
from reconciler.model.vrrp import DEFAULT_HOOK_USER


@dataclass(frozen=True)
class ProgramUse:
    """A program the node would run, and where the file names it."""

    program: str  # argv[0] as written (a path, or a name looked up in PATH)
    location: Location
    role: str  # "notify hook", "check script", ... for the message
    where: str  # dotted path of the hook or check, for the message
    user: str = DEFAULT_HOOK_USER  # the account it runs as


@dataclass(frozen=True)
class InterfaceAddress:
    """An address with its prefix on an interface of this machine."""

    interface: str
    address: IPInterface


def programs_for_node(loaded: Loaded, node: str) -> list[ProgramUse]:
    """Every hook and script program that `node` runs, once per place it is written."""
    doc = loaded.document
    nc = loaded.cluster.for_node(node)
    data: dict[str, Any] = doc.data
    vrrp = data.get("vrrp", {})
    uses: list[ProgramUse] = []

    local = {i.name for i in nc.instances}
    instances: dict[str, Any] = vrrp.get("instances", {})
    for name in sorted(local):
        if "notify" in instances.get(name, {}):
            uses += _notify(doc, ("vrrp", "instances", name, "notify"), "notify hook")
    if "notify" in vrrp.get("defaults", {}) and any(
        "notify" not in instances.get(n, {}) for n in local
    ):
        uses += _notify(doc, ("vrrp", "defaults", "notify"), "notify hook")
    groups = {g.name for g in nc.sync_groups}
    for g, raw in vrrp.get("sync_groups", {}).items():
        if g in groups and "notify" in raw:
            uses += _notify(doc, ("vrrp", "sync_groups", g, "notify"), "sync group notify hook")

    used_checks = _check_names(nc)
    for c, raw in data.get("checks", {}).items():
        if c in used_checks:
            uses += _script(doc, ("checks", c), raw)
    services = {s.name for s in nc.services}
    for s, raw in data.get("virtual_services", {}).items():
        if s not in services:
            continue
        path: Path = ("virtual_services", s)
        if isinstance(raw.get("check"), dict):
            uses += _script(doc, (*path, "check"), raw["check"])
        for key in ("up", "down"):
            if key in raw.get("quorum", {}):
                quser = raw["quorum"].get("user", DEFAULT_HOOK_USER)
                uses += _hooks(doc, (*path, "quorum", key), "quorum hook", quser)
        for i, rs in enumerate(raw.get("real_servers", [])):
            rpath: Path = (*path, "real_servers", i)
            if isinstance(rs.get("check"), dict):
                uses += _script(doc, (*rpath, "check"), rs["check"])
            for key in ("up", "down"):
                if key in rs.get("notify", {}):
                    nuser = rs["notify"].get("user", DEFAULT_HOOK_USER)
                    uses += _hooks(doc, (*rpath, "notify", key), "real server notify hook", nuser)
    return uses


def missing_program(use: ProgramUse, problem: str) -> Diagnostic:
    """The warning for a program that `problem` ("does not exist", "is not executable by
    nobody", "would be refused: ...") on this machine."""
    return Diagnostic(
        use.location,
        f"{use.where}: {use.role} {use.program!r} {problem} on this machine",
        Severity.WARNING,
    )


def vip_subnet_warnings(
    loaded: Loaded, node: str, addresses: Iterable[InterfaceAddress]
) -> list[Diagnostic]:
    """A VIP in none of its interface's subnets on this machine: hosts on that link would
    not send to it directly (no neighbour entry), and the node's replies from it follow
    another route. Interfaces without an address of the VIP's family are unknown: no
    warning. VIPs of this file already on the machine do not count as its subnets."""
    nc = loaded.cluster.for_node(node)
    vips = {v.address.ip for c in loaded.cluster.node_configs for i in c.instances for v in i.vips}
    subnets: dict[tuple[str, int], list[IPInterface]] = {}
    for a in addresses:
        if a.address.ip in vips or a.address.ip.is_link_local or a.address.ip.is_loopback:
            continue
        subnets.setdefault((a.interface, a.address.version), []).append(a.address)
    out: list[Diagnostic] = []
    for inst in nc.instances:
        for i, vip in enumerate(inst.vips):
            known = subnets.get((vip.dev, vip.address.version))
            if not known or any(vip.address.ip in a.network for a in known):
                continue
            path: Path = ("vrrp", "instances", inst.name, "vips", i)
            nets = ", ".join(sorted({str(a.network) for a in known}))
            out.append(
                Diagnostic(
                    loaded.document.value_at((*path, "address")),
                    f"vrrp.instances.{inst.name}.vips[{i}]: {vip.address.ip} is outside every "
                    f"subnet of {vip.dev} on this machine ({nets}): hosts on that link will "
                    "not reach it directly",
                    Severity.WARNING,
                )
            )
    return sorted(out, key=Diagnostic.sort_key)


def _check_names(nc: NodeConfig) -> set[str]:
    names = {c.name for c in nc.checks}
    names |= {rs.check.name for rs in nc.real_servers if rs.check is not None}
    return names


def _notify(doc: Document, path: Path, role: str) -> Iterator[ProgramUse]:
    block = doc.get(path)
    user = block.get("user", DEFAULT_HOOK_USER)
    for key in ("master", "backup", "fault", "stop"):
        if key in block:
            yield from _hooks(doc, (*path, key), role, user)


def _hooks(doc: Document, path: Path, role: str, default_user: str) -> Iterator[ProgramUse]:
    for i, hook in enumerate(doc.get(path)):
        if isinstance(hook, list):
            argv: Path = (*path, i)
            user = default_user
        else:
            argv = (*path, i, "command")
            user = hook.get("user", default_user)
        yield ProgramUse(doc.get((*argv, 0)), doc.value_at((*argv, 0)), role, dotted(path), user)


def _script(doc: Document, path: Path, check: dict[str, Any]) -> Iterator[ProgramUse]:
    script = check.get("script")
    if not isinstance(script, dict):
        return
    argv: Path = (*path, "script", "command")
    program = doc.get((*argv, 0))
    if script.get("shell", False):
        # Run as one string by /bin/sh -c: the program is its first word, if it parses.
        try:
            words = shlex.split(" ".join(doc.get(argv)))
        except ValueError:
            return
        if not words:
            return
        program = words[0]
    user = script.get("user", DEFAULT_HOOK_USER)
    yield ProgramUse(program, doc.value_at((*argv, 0)), "check script", dotted(path), user)
