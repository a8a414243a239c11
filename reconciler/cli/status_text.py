"""The sections of `reconciler status` text, from the /status document (JSON of
observability.status.NodeStatus): what a node runs and why."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from reconciler.health.priority import PRIORITY_MAX_BACKUP, PRIORITY_MIN, PRIORITY_OWNER


def instances_text(doc: dict[str, Any], now_unix_s: float) -> str:
    """One line per instance, then per instance why its priority is what it is: each
    tracker's term of the sum, adverts refused by reason, the last transition and why."""
    out = [f"{'INSTANCE':<16} {'VRID':>4} {'IFACE':<10} {'STATE':<10} {'PRIO':>9}  MASTER/VIPS"]
    for i in doc["instances"]:
        prio = f"{i['effective_priority']}/{i['priority']}"
        who = "self" if i["state"] == "MASTER" else (i["master_address"] or "-")
        out.append(
            f"{i['name']:<16} {i['vrid']:>4} {i['interface']:<10} {i['state']:<10} {prio:>9}"
            f"  {who}  {' '.join(i['vips'])}"
            + (f"  faults: {', '.join(i['faults'])}" if i["faults"] else "")
            + ("" if i.get("accept_mode", True) else "  (accept: false, VIP traffic dropped)")
        )
    for i in doc["instances"]:
        out += ["", f"instance {i['name']}:", *_instance_detail(i, now_unix_s)]
    return "\n".join(out) + "\n"


def _instance_detail(i: dict[str, Any], now_unix_s: float) -> list[str]:
    trackers = i.get("trackers", [])
    configured, effective = i["priority"], i["effective_priority"]
    if trackers:
        total = sum(t["contribution"] for t in trackers)
        why = f"priority {effective}: configured {configured}, trackers {total:+d}"
        if configured == PRIORITY_OWNER:
            why += " (address owner: trackers never move it)"
        elif not PRIORITY_MIN <= configured + total <= PRIORITY_MAX_BACKUP:
            why += f" = {configured + total}, clamped to {PRIORITY_MIN}..{PRIORITY_MAX_BACKUP}"
        out = [f"  {why}"] + [f"    {_tracker_text(t)}" for t in trackers]
    else:
        out = [f"  priority {effective}: configured {configured}, no trackers"]
    refused = i.get("refused", {})
    out.append(
        "  refused adverts: "
        + (", ".join(f"{reason} {n}" for reason, n in sorted(refused.items())) or "none")
    )
    last = i.get("last_transition")
    if last is None:
        out.append("  last transition: none")
    else:
        at = datetime.fromtimestamp(last["unix_s"], UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        ago = max(0.0, now_unix_s - last["unix_s"])
        out.append(
            f"  last transition: {last['from_state']} -> {last['to_state']} "
            f"({last['reason']}) at {at}, {ago:.0f} s ago"
        )
    return out


def _tracker_text(t: dict[str, Any]) -> str:
    """``check nginx down: -60``; a file check with its value; FAULT when it holds one."""
    state = t["state"] if t["value"] is None else f"{t['state']}, value {t['value']}"
    term = "FAULT" if t["fault"] else (f"{t['contribution']:+d}" if t["contribution"] else "0")
    return f"{t['name']} {state}: {term} (weight {t['weight']})"


def checks_text(doc: dict[str, Any]) -> str:
    """One line per check and target: its state, probe counts and why it last failed."""
    checks = doc.get("checks", [])
    if not checks:
        return ""
    out = ["", f"{'CHECK':<16} {'TARGET':<22} {'STATE':<8} {'PROBES':>7} {'FAILED':>7}  LAST ERROR"]
    for c in checks:
        out.append(
            f"{c['check']:<16} {c['target']:<22} {c['state']:<8} {c['probes']:>7} "
            f"{c['probe_failures']:>7}  {c.get('last_error') or '-'}"
        )
    return "\n".join(out) + "\n"


def _revision_line(label: str, rec: dict[str, Any] | None) -> list[str]:
    if rec is None:
        return [f"  {label:<10} -"]
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(rec["at_unix_s"]))
    out = f"  {label:<10} {rec['digest'][:12]}  at {when}Z"
    if rec["commit"]:
        out += f"  commit {rec['commit'][:12]}"
        if rec["author"]:
            out += f" by {rec['author']}"
        if rec["committed_unix_s"] is not None:
            committed = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(rec["committed_unix_s"]))
            out += f" ({committed}Z)"
    if rec["verification"] != "not-required":
        out += f"  {rec['verification']}"
    if rec.get("error"):
        return [out, f"  {'':<10} failed ({rec['reason']}): {rec['error']}"]
    return [out]


def git_lines(git: dict[str, Any]) -> list[str]:
    """The git source section of `reconciler status`."""
    head = (git["head"] or "-")[:12]
    accepted = (git["accepted"] or "-")[:12]
    lines = [f"git: {git['source']} (verify {git['verify']}): head {head}, accepted {accepted}"]
    if git["last_error"]:
        lines.append(
            f"  fetch failing ({git['consecutive_failures']} in a row, next try in "
            f"{git['next_poll_delay_s']:g} s): {git['last_error']}"
        )
    refusal = git["last_refusal"]
    if refusal:
        lines.append(
            f"  refused {(refusal['provenance']['commit'] or '-')[:12]}: "
            f"{refusal['reason']}: {refusal['detail']}"
        )
    return lines


def revision_lines(rev: dict[str, Any]) -> list[str]:
    """The revision section of `reconciler status`: conditions, then the last applied,
    attempted and verified revisions, suspended parts and refusals."""
    conds = "  ".join(
        f"{c['type']}={'True' if c['status'] else 'False'}"
        + (f" ({c['reason']})" if c["reason"] not in ("NotStalled", "Idle") else "")
        for c in rev["conditions"]
    )
    lines = [f"revisions: {conds}"]
    lines += _revision_line("applied", rev["applied"])
    attempted = rev["attempted"]
    if attempted is not None and (
        rev["applied"] is None
        or attempted["digest"] != rev["applied"]["digest"]
        or attempted["error"]
    ):
        lines += _revision_line("attempted", attempted)
    lines += _revision_line("verified", rev["verified"])
    if rev["pending"]:
        lines.append(f"  {'pending':<10} {rev['pending'][:12]}")
    parts = (["node"] if rev["suspended"] else []) + list(rev["suspended_instances"])
    if parts:
        lines.append(f"  suspended: {', '.join(parts)} (no new revision until resumed)")
    if rev["last_refusal"]:
        lines.append(f"  refused:   {rev['last_refusal']}")
    return lines
