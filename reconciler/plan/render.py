"""Plans as text (terminals), JSON (tools) and Markdown (pull-request comments)."""

from __future__ import annotations

import dataclasses
import enum
import ipaddress
import json
import shlex
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

from reconciler.model.checks import Check, Probe, probe_kind
from reconciler.model.common import Resource
from reconciler.model.durations import format_duration
from reconciler.model.ipvs import Endpoint, RealServer, VirtualService
from reconciler.model.kernel import LiveAddress, LiveDest, LiveService
from reconciler.model.vrrp import Hook, SyncGroup, TrackCheck, TrackInterface, Vip, VrrpInstance
from reconciler.plan.diff import Action, FieldChange, Step
from reconciler.plan.forecast import Forecast
from reconciler.plan.planner import NodeSettings, Plan

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


SECRET_FIELDS = frozenset({"auth_password"})  # never printed: plans go to PR comments and logs


def _leaf(field: str) -> str:
    """`garp.master_delay` -> `master_delay`; `track[0]` -> `track`."""
    return field.rsplit(".", 1)[-1].split("[", 1)[0]


def show(field: str, value: Any) -> str:
    """One field's value as a reader wants it on a `field: old -> new` line: durations
    with units, addresses as text, an object by its name or a few words, a list as
    its items; never a serialized object."""
    name = _leaf(field)
    if name in SECRET_FIELDS:
        return "none" if value is None else "(hidden)"
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, timedelta):
        return format_duration(value)
    if isinstance(value, enum.Enum):
        return str(value) if isinstance(value.value, int) else str(value.value)
    if isinstance(value, str):
        return value if value else '""'
    if isinstance(value, tuple):
        return _show_items(name, value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _show_object(value)
    return str(value)


def _show_items(name: str, items: tuple[Any, ...]) -> str:
    if not items:
        return "none"
    if name == "command":
        return shlex.join(items)
    if all(isinstance(i, tuple) and len(i) == 2 for i in items):
        if all(isinstance(x, int) for i in items for x in i):  # status code ranges
            return ",".join(str(lo) if lo == hi else f"{lo}-{hi}" for lo, hi in items)
        return ", ".join(f"{k}={v}" for k, v in items)  # labels, headers
    sep = "; " if any(isinstance(i, Hook) for i in items) else ", "
    return sep.join(show(name, i) for i in items)


def _show_object(value: Any) -> str:
    if isinstance(value, Check):
        return value.name
    if isinstance(value, Hook):
        extra = ", before release" if value.before_release else ""
        return f"{shlex.join(value.command)} (timeout {format_duration(value.timeout)}{extra})"
    if isinstance(value, TrackCheck):
        return f"check {value.check} weight {value.weight}"
    if isinstance(value, TrackInterface):
        return f"interface {value.interface} weight {value.weight}"
    if isinstance(value, Endpoint):
        return f"{value} ({value.forwarding.value})"
    if isinstance(value, Vip):
        return str(value)
    words = [
        f"{f.name} {show(f.name, v)}"
        for f in dataclasses.fields(value)
        if (v := getattr(value, f.name)) is not None and v != ()
    ]
    if isinstance(value, Probe):
        words.insert(0, probe_kind(value))
    return ", ".join(words)


def change_line(c: FieldChange) -> str:
    if _leaf(c.field) in SECRET_FIELDS and c.before is not None and c.after is not None:
        return f"{c.field}: changed (not shown)"
    return f"{c.field}: {show(c.field, c.before)} -> {show(c.field, c.after)}"


def title(resource: Resource) -> str:
    """What the object is, as an operator names it."""
    if isinstance(resource, VrrpInstance):
        return resource.name
    if isinstance(resource, RealServer):
        return f"{resource.service} -> {resource.endpoint}"
    if isinstance(resource, VirtualService):
        return f"{resource.service} ({resource.name})"
    if isinstance(resource, Check | SyncGroup | NodeSettings):
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
    if isinstance(resource, NodeSettings):
        sysctls = [
            f"{f.name}={show(f.name, v)}"
            for f in dataclasses.fields(resource.sysctls)
            if (v := getattr(resource.sysctls, f.name)) is not None
        ]
        return (
            f"cluster {resource.cluster_name}, sysctls {' '.join(sysctls) or 'untouched'}, resync "
            f"every {format_duration(resource.resync_interval)}, drain timeout "
            f"{format_duration(resource.drain_timeout)}"
        )
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
    restarts = sum(1 for s in plan.steps if s.restart_reasons)
    if restarts:
        line += f" ({restarts} disruptive restart{'s' if restarts != 1 else ''})"
    if c[Action.CONFLICT]:
        line += f", {c[Action.CONFLICT]} conflict(s) left alone"
    return line


def verb(step: Step) -> str:
    """What the step does: `restart` for an update that stops and starts an instance."""
    return "restart" if step.restart_reasons else step.action.value


def note(step: Step) -> str:
    """How an update reaches the running node, when that is worth saying."""
    if step.restart_reasons:
        return (
            f"disruptive: {', '.join(step.restart_reasons)} changed; the instance stops "
            "(priority-0 advert, VIPs released) and starts again"
        )
    if step.action is Action.UPDATE and step.kind == VrrpInstance.kind:
        return "in place"
    return ""


def render_text(plans: Sequence[Plan]) -> str:
    out: list[str] = []
    for plan in plans:
        out.append(f"Plan for node {plan.node}: {plan.source} -> {plan.target}")
        if not plan.steps:
            out.append("  No changes.")
        for step in plan.steps:
            head = f"  {_SIGN[step.action]} {verb(step)} {step.kind} {title(step.resource)}"
            if step.action is Action.UPDATE or (step.action is Action.CONFLICT and step.changes):
                out.append(f"{head} ({note(step)})" if note(step) else head)
                out.extend(f"      {change_line(c)}" for c in step.changes)
                if step.used_by:
                    out.append(f"      used by: {step.used_by[0]}")
                    out.extend(f"               {u}" for u in step.used_by[1:])
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


def _hide(field: str, value: Any) -> Any:
    return value if value is None or _leaf(field) not in SECRET_FIELDS else "(hidden)"


def _resource_json(resource: Resource | None) -> Any:
    doc = jsonable(resource)
    if isinstance(doc, dict):
        for name in SECRET_FIELDS & doc.keys():
            doc[name] = _hide(name, doc[name])
    return doc


def _step_json(step: Step) -> dict[str, Any]:
    return {
        "action": step.action.value,
        "kind": step.kind,
        "key": list(step.key),
        "title": title(step.resource),
        "restart": bool(step.restart_reasons),
        "restart_reasons": list(step.restart_reasons),
        "changes": [
            {
                "field": c.field,
                "before": jsonable(_hide(c.field, c.before)),
                "after": jsonable(_hide(c.field, c.after)),
                "text": change_line(c),
            }
            for c in step.changes
        ],
        "used_by": list(step.used_by),
        "before": _resource_json(step.before),
        "after": _resource_json(step.after),
    }


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _md_change(c: FieldChange) -> str:
    if _leaf(c.field) in SECRET_FIELDS and c.before is not None and c.after is not None:
        return f"{_md(c.field)}: changed (not shown)"
    return f"{_md(c.field)}: `{_md(show(c.field, c.before))}` → `{_md(show(c.field, c.after))}`"


def _md_details(step: Step) -> str:
    parts: list[str] = []
    if step.restart_reasons:
        parts.append(f"**{_md(note(step))}**")
    parts.extend(_md_change(c) for c in step.changes)
    if step.used_by:
        parts.append("used by: " + ", ".join(f"`{_md(u)}`" for u in step.used_by))
    if not step.changes and step.action is Action.CONFLICT:
        parts.append("exists and is not ours; left alone")
    elif not step.changes:
        parts.append(_md(summary(step.resource)))
    return "<br>".join(parts)


def render_steps_markdown(plan: Plan) -> list[str]:
    """The plan's steps as a Markdown table (no heading)."""
    if not plan.steps:
        return ["No changes.", ""]
    out = ["| # | action | kind | object | details |", "|---:|---|---|---|---|"]
    for i, step in enumerate(plan.steps, 1):
        action = f"{_SIGN[step.action]} {verb(step)}"
        if note(step) == "in place":
            action += " (in place)"
        out.append(
            f"| {i} | {action} | {step.kind} | "
            f"`{_md(title(step.resource))}` | {_md_details(step)} |"
        )
    out.append("")
    return out


def render_markdown(plans: Sequence[Plan]) -> str:
    out: list[str] = []
    for plan in plans:
        out.append(f"### reconciler plan for node `{plan.node}`")
        out.append("")
        out.append(f"`{_md(plan.source)}` → `{_md(plan.target)}`: **{_count_line(plan)}**")
        out.append("")
        out.extend(render_steps_markdown(plan))
    return "\n".join(out)


def render(plans: Sequence[Plan], fmt: str) -> str:
    if fmt == "json":
        return render_json(plans)
    if fmt == "markdown":
        return render_markdown(plans)
    return render_text(plans)


# ---------------------------------------------------------------- pull-request review


def _nodes(names: Sequence[str]) -> str:
    return ", ".join(dict.fromkeys(names))


def review_lines(fc: Forecast, code: Callable[[str], str]) -> list[str]:
    """The summary of a revision change, one item per line (`code` marks up names)."""
    out: list[str] = []
    for m in fc.moves:
        vip = f"{code(m.vip)} ({code(m.instance)})"
        if m.before and m.after and m.via:
            out.append(f"VIP {vip} moves {m.before} → {m.via} → {m.after} ({m.why})")
        elif m.before and m.after:
            out.append(f"VIP {vip} moves {m.before} → {m.after}")
        elif m.after:
            out.append(f"VIP {vip} is added on {m.after}")
        elif m.before:
            out.append(f"VIP {vip} is removed from {m.before}")
    for f in fc.instances:
        if f.election_changes:
            order = ", ".join(f"{c.node} {c.priority}" for c in f.ranking_after)
            if f.master_before != f.master_after:
                who = f"expected master {f.master_before} → {f.master_after}"
            else:
                who = f"expected master stays {f.master_after}"
            out.append(f"election {code(f.instance)}: {who} (priorities: {order})")
    for f in fc.instances:
        for node, reasons in f.restarts:
            out.append(
                f"restart (disruptive) {code(f.instance)} on {node}: {', '.join(reasons)} "
                "changed; priority-0 advert, VIPs released, then a new start"
            )
    drained: dict[str, list[str]] = {}
    for d in fc.drains:
        drained.setdefault(d.server, []).append(d.node)
    timeout = (
        f"drain_timeout {format_duration(fc.drain_timeout)}"
        if fc.drain_timeout
        else "the drain timeout"
    )
    for server, nodes in drained.items():
        out.append(
            f"drain {code(server)} on {_nodes(nodes)}: weight 0 until its connections end "
            f"or {timeout}, then removed"
        )
    removed: dict[str, list[str]] = {}
    for r in fc.removed_services:
        removed.setdefault(r.service, []).append(r.node)
    for service, nodes in removed.items():
        out.append(f"service removed {code(service)} on {_nodes(nodes)}")
    for f in fc.instances:
        out.extend(f"note {code(f.instance)}: {n}" for n in f.notes)
    return out


def render_review(plans: Sequence[Plan], fc: Forecast, title: str, fmt: str) -> str:
    """A revision change for review: the risks, the summary, then every node's steps.
    Markdown is a pull-request comment; JSON adds the forecast to `render_json`."""
    if fmt == "json":
        doc = json.loads(render_json(plans))
        doc["title"] = title
        doc["risks"] = [r.value for r in fc.risks]
        doc["summary"] = review_lines(fc, str)
        doc["forecast"] = jsonable(fc)
        return json.dumps(doc, indent=2) + "\n"
    changed = [p for p in plans if p.has_changes]
    labels = " ".join(f"`{r.value}`" for r in fc.risks) or "none"
    lines = review_lines(fc, lambda s: f"`{_md(s)}`" if fmt == "markdown" else s)
    if fmt != "markdown":
        out = [title, f"risk: {' '.join(r.value for r in fc.risks) or 'none'}"]
        out += [f"  {line}" for line in lines] or ["  no VIP moves, elections, restarts or drains"]
        out.append("")
        return "\n".join(out) + render_text(plans)
    out = [
        f"## reconciler plan: {_md(title)}",
        "",
        f"**Risk:** {labels} · changes on {len(changed)} of {len(plans)} node(s)",
        "",
    ]
    out += [f"- {line}" for line in lines] or ["- no VIP moves, elections, restarts or drains"]
    out.append("")
    for plan in plans:
        out.append(f"<details{' open' if plan.has_changes else ''}>")
        out.append(f"<summary>node <b>{_md(plan.node)}</b>: {_count_line(plan)}</summary>")
        out.append("")
        out.extend(render_steps_markdown(plan))
        out.append("</details>")
        out.append("")
    return "\n".join(out)
