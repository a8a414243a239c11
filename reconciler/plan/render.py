"""Plans as text (terminals), JSON (tools) and Markdown (pull-request comments)."""

from __future__ import annotations

import dataclasses
import enum
import ipaddress
import json
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from reconciler.model.checks import Check, probe_kind
from reconciler.model.common import Resource
from reconciler.model.durations import format_duration
from reconciler.model.ipvs import Endpoint, RealServer, VirtualService
from reconciler.model.kernel import LiveAddress, LiveDest, LiveService
from reconciler.model.vrrp import SyncGroup, VrrpInstance
from reconciler.plan.diff import Action, Step
from reconciler.plan.planner import Plan

FORMATS = ("text", "json", "markdown")

_SIGN = {Action.CREATE: "+", Action.UPDATE: "~", Action.DELETE: "-", Action.CONFLICT: "!"}


def jsonable(value: Any) -> Any:
    """Model values as plain JSON: durations as `1s`, addresses as strings, enums by value."""
    if isinstance(value, timedelta):
        return format_duration(value)
    if isinstance(value, enum.Enum):
        return value.value if not isinstance(value.value, int) else str(value)
    if isinstance(
        value,
        ipaddress.IPv4Address
        | ipaddress.IPv6Address
        | ipaddress.IPv4Interface
        | ipaddress.IPv6Interface,
    ):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out = {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, Check):
            out["probe"] = {probe_kind(value.probe): out["probe"]}
        return out
    if isinstance(value, tuple | list):
        return [jsonable(v) for v in value]
    return value


def _short(value: Any) -> str:
    """A compact one-line rendering of a field value."""
    v = jsonable(value)
    if isinstance(v, str):
        return v
    return json.dumps(v, separators=(", ", ": "))


def title(resource: Resource) -> str:
    """What the object is, as an operator names it."""
    if isinstance(resource, VrrpInstance):
        return resource.name
    if isinstance(resource, RealServer):
        return f"{resource.service} -> {resource.endpoint}"
    if isinstance(resource, VirtualService):
        return f"{resource.service} ({resource.name})"
    if isinstance(resource, Check | SyncGroup):
        return resource.name
    if isinstance(resource, LiveDest):
        endpoint = Endpoint(resource.address, resource.port, resource.forwarding)
        return f"{resource.service} -> {endpoint}"
    if isinstance(resource, LiveService):
        return str(resource.service)
    if isinstance(resource, LiveAddress):
        return f"{resource.address} dev {resource.interface}"
    return "/".join(resource.key)


def summary(resource: Resource) -> str:
    """The few attributes that say what a created or deleted object is."""
    if isinstance(resource, VrrpInstance):
        vips = ", ".join(str(v.address) for v in resource.vips)
        mode = "unicast" if resource.unicast_peers else "multicast"
        return (
            f"vrid {resource.vrid}, v{resource.version}, {resource.interface}, priority "
            f"{resource.priority}, every {format_duration(resource.advert_interval)}, {mode}, "
            f"vips {vips}"
        )
    if isinstance(resource, RealServer):
        check = f", check {resource.check.name}" if resource.check else ""
        return f"weight {resource.weight}, {resource.forwarding.value}{check}"
    if isinstance(resource, VirtualService):
        pers = (
            f", persistence {format_duration(resource.persistence.timeout)}"
            if resource.persistence
            else ""
        )
        sorry = f", sorry server {resource.sorry_server}" if resource.sorry_server else ""
        return f"{resource.scheduler}, {resource.forwarding.value}{pers}{sorry}"
    if isinstance(resource, Check):
        return f"{probe_kind(resource.probe)} every {format_duration(resource.interval)}"
    if isinstance(resource, SyncGroup):
        return "members " + ", ".join(resource.members)
    if isinstance(resource, LiveDest):
        return f"weight {resource.weight}, {resource.forwarding.value}"
    if isinstance(resource, LiveService):
        pers = f", persistent {format_duration(resource.timeout)}" if resource.persistent else ""
        return f"{resource.scheduler}{pers}"
    if isinstance(resource, LiveAddress):
        return f"label {resource.label}" if resource.label else "address"
    return ""


def _count_line(plan: Plan) -> str:
    c = plan.counts()
    line = (
        f"{c[Action.CREATE]} to create, {c[Action.UPDATE]} to update, {c[Action.DELETE]} to delete"
    )
    if c[Action.CONFLICT]:
        line += f", {c[Action.CONFLICT]} conflict(s) left alone"
    if plan.disruptive:
        line += f", {len(plan.disruptive)} disruptive (instance restart)"
    return line


def _restart_note(step: Step) -> str:
    """Why an update restarts its instance, or ''."""
    if not step.restarts:
        return ""
    return (
        f"DISRUPTIVE: {', '.join(step.restarts)} changed: the instance restarts "
        "(priority-0 advert, VIPs released, then taken again by the election)"
    )


def render_text(plans: Sequence[Plan]) -> str:
    out: list[str] = []
    for plan in plans:
        out.append(f"Plan for node {plan.node}: {plan.source} -> {plan.target}")
        if not plan.steps:
            out.append("  No changes.")
        for step in plan.steps:
            head = f"  {_SIGN[step.action]} {step.action.value} {step.kind} {title(step.resource)}"
            if step.action is Action.UPDATE or (step.action is Action.CONFLICT and step.changes):
                out.append(head)
                if step.restarts:
                    out.append(f"      {_restart_note(step)}")
                out.extend(
                    f"      {c.field}: {_short(c.before)} -> {_short(c.after)}"
                    for c in step.changes
                )
            elif step.action is Action.CONFLICT:
                out.append(f"{head}: exists and is not ours; left alone")
            else:
                out.append(f"{head} ({summary(step.resource)})")
        if plan.steps:
            out.append(f"  {_count_line(plan)}.")
        out.append("")
    return "\n".join(out)


def render_json(plans: Sequence[Plan]) -> str:
    doc = {
        "changes": any(p.has_changes for p in plans),
        "plans": [
            {
                "node": p.node,
                "from": p.source,
                "to": p.target,
                "changes": p.has_changes,
                "counts": {a.value: n for a, n in p.counts().items()},
                "steps": [_step_json(s) for s in p.steps],
            }
            for p in plans
        ],
    }
    return json.dumps(doc, indent=2) + "\n"


def _step_json(step: Step) -> dict[str, Any]:
    return {
        "action": step.action.value,
        "kind": step.kind,
        "key": list(step.key),
        "title": title(step.resource),
        "disruptive": bool(step.restarts),
        "restart_reasons": list(step.restarts),
        "changes": [
            {"field": c.field, "before": jsonable(c.before), "after": jsonable(c.after)}
            for c in step.changes
        ],
        "before": jsonable(step.before),
        "after": jsonable(step.after),
    }


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(plans: Sequence[Plan]) -> str:
    out: list[str] = []
    for plan in plans:
        out.append(f"### reconciler plan for node `{plan.node}`")
        out.append("")
        out.append(f"`{_md(plan.source)}` → `{_md(plan.target)}`: **{_count_line(plan)}**")
        out.append("")
        if not plan.steps:
            out.append("No changes.")
            out.append("")
            continue
        out.append("| # | action | kind | object | details |")
        out.append("|---:|---|---|---|---|")
        for i, step in enumerate(plan.steps, 1):
            if step.changes:
                details = "<br>".join(
                    f"{_md(c.field)}: `{_md(_short(c.before))}` → `{_md(_short(c.after))}`"
                    for c in step.changes
                )
                if step.restarts:
                    details = f"**{_md(_restart_note(step))}**<br>{details}"
            elif step.action is Action.CONFLICT:
                details = "exists and is not ours; left alone"
            else:
                details = _md(summary(step.resource))
            out.append(
                f"| {i} | {_SIGN[step.action]} {step.action.value} | {step.kind} | "
                f"`{_md(title(step.resource))}` | {details} |"
            )
        out.append("")
    return "\n".join(out)


def render(plans: Sequence[Plan], fmt: str) -> str:
    if fmt == "json":
        return render_json(plans)
    if fmt == "markdown":
        return render_markdown(plans)
    return render_text(plans)
