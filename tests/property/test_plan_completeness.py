"""The plan is complete: any single-setting change that reaches a node is in that node's plan.

The changes are generated from the JSON Schema, not listed by hand: a walk of the
schema over a document that uses every kind of object (tests/data/plan/every-setting.yaml)
finds every place a setting can be, present or not, and derives other valid values
from the schema (enums, ranges, patterns, formats, array bounds). A new schema
property is therefore changed by this test without anyone touching it.

For every node, the test compares the node's share of the two models (its
`NodeConfig`, its entry in `nodes`, the cluster name, sysctls and reconcile
settings): when it differs, the node's plan must not be empty and must name the
setting; when it does not, the plan must be empty. A change that reaches no node
at all is only allowed for the few settings listed in NO_EFFECT, so a setting the
model drops is caught too.
"""

from __future__ import annotations

import copy
import ipaddress
import itertools
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.config.build import build
from reconciler.config.diagnostics import InvalidConfig
from reconciler.config.load import load_text
from reconciler.config.schema import validate_schema
from reconciler.config.yamlload import Document
from reconciler.model.cluster import Cluster
from reconciler.plan.diff import Action
from reconciler.plan.planner import Plan, plan_revision
from reconciler.plan.render import change_line, render_text

ROOT = Path(__file__).resolve().parents[2]
SCHEMA: dict[str, Any] = json.loads((ROOT / "schemas/cluster.v1.schema.json").read_text())
BASE: dict[str, Any] = yaml.safe_load((ROOT / "tests/data/plan/every-setting.yaml").read_text())

MISSING: Any = object()
DocPath = tuple[str | int, ...]


@dataclass(frozen=True)
class Slot:
    """Where the schema defines a setting: an object schema and a property name ("*" for
    the values of a map)."""

    parent: str  # JSON pointer of the object schema
    name: str

    def __str__(self) -> str:
        return f"{self.parent}/{self.name}"


# Settings that may change without reaching any node, and why.
NO_EFFECT = {
    Slot("#", "description"): "free text for humans",
    Slot("#/$defs/notify", "timeout"): "only the default of hooks; changes nothing without hooks",
    Slot("#/$defs/realServer/properties/notify", "timeout"): "same, for real-server hooks",
    Slot("#/$defs/notify", "user"): "only the default of hooks; changes nothing without hooks",
    Slot("#/$defs/realServer/properties/notify", "user"): "same, for real-server hooks",
    Slot("#/$defs/virtualService/properties/quorum", "user"): "same, for quorum hooks",
}
# Schema slots this test cannot change on its own, and why.
NOT_CHANGED = {
    Slot("#", "apiVersion"): "a constant",
    Slot("#", "kind"): "a constant",
    Slot("#/$defs/authentication", "type"): "a constant",
    Slot("#/$defs/vrrpDefaults", "authentication"): (
        "valid only when every instance is VRRPv2; an instance's own authentication "
        "covers its password"
    ),
}


@dataclass(frozen=True)
class Setting:
    path: DocPath  # where in the document
    schema: dict[str, Any]  # its schema, unresolved
    pointer: str  # JSON pointer of `schema`
    slots: tuple[Slot, ...]  # its own slot last, after those of the settings around it
    name: str  # the property name that names it


# ---------------------------------------------------------------- the schema


def _deref(node: dict[str, Any], ptr: str) -> tuple[dict[str, Any], str]:
    while "$ref" in node:
        ptr = node["$ref"]
        target: Any = SCHEMA
        for part in ptr.removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node, ptr


_TYPES = {"array": list, "object": dict, "string": str, "boolean": bool}


def branches(node: dict[str, Any], ptr: str, value: Any) -> Iterator[tuple[dict[str, Any], str]]:
    """The schemas `value` is checked against (every branch of an if/then/else when
    there is no value yet)."""
    node, ptr = _deref(node, ptr)
    if "if" not in node:
        yield node, ptr
        return
    want = _TYPES[node["if"]["type"]]
    if value is MISSING or isinstance(value, want):
        yield from branches(node["then"], f"{ptr}/then", value)
    if value is MISSING or not isinstance(value, want):
        yield from branches(node["else"], f"{ptr}/else", value)


def universe() -> set[Slot]:
    """Every slot of the schema."""
    out: set[Slot] = set()
    seen: set[str] = set()

    def walk(node: dict[str, Any], ptr: str) -> None:
        for b, bptr in branches(node, ptr, MISSING):
            if bptr in seen:
                continue
            seen.add(bptr)
            for name, sub in b.get("properties", {}).items():
                out.add(Slot(bptr, name))
                walk(sub, f"{bptr}/properties/{name}")
            if isinstance(b.get("additionalProperties"), dict):
                out.add(Slot(bptr, "*"))
                walk(b["additionalProperties"], f"{bptr}/additionalProperties")
            if "items" in b:
                walk(b["items"], f"{bptr}/items")

    walk(SCHEMA, "#")
    return out


def settings_in(doc: dict[str, Any]) -> list[Setting]:
    """Every place in `doc` a setting is or could be (absent objects are entered two deep)."""
    out: list[Setting] = []

    def walk(
        node: dict[str, Any],
        ptr: str,
        value: Any,
        path: DocPath,
        slots: tuple[Slot, ...],
        name: str,
        absent: int,
    ) -> None:
        for b, bptr in branches(node, ptr, value):
            if isinstance(value, dict) or (value is MISSING and absent < 2 and "properties" in b):
                # The alternatives of a oneOf (a check's probe): only the one present.
                exclusive = {r for alt in b.get("oneOf", []) for r in alt.get("required", [])}
                for pname, sub in b.get("properties", {}).items():
                    pval = value.get(pname, MISSING) if isinstance(value, dict) else MISSING
                    if pval is MISSING and pname in exclusive:
                        continue
                    s = Setting(
                        (*path, pname),
                        sub,
                        f"{bptr}/properties/{pname}",
                        (*slots, Slot(bptr, pname)),
                        pname,
                    )
                    out.append(s)
                    walk(sub, s.pointer, pval, s.path, s.slots, pname, absent + (pval is MISSING))
                extra = b.get("additionalProperties")
                if isinstance(extra, dict) and isinstance(value, dict):
                    for key, v in value.items():
                        s = Setting(
                            (*path, key),
                            extra,
                            f"{bptr}/additionalProperties",
                            (*slots, Slot(bptr, "*")),
                            name,
                        )
                        out.append(s)
                        walk(extra, s.pointer, v, s.path, s.slots, name, absent)
            if "items" in b and isinstance(value, list):
                for i, v in enumerate(value):
                    s = Setting((*path, i), b["items"], f"{bptr}/items", slots, name)
                    out.append(s)
                    walk(b["items"], s.pointer, v, s.path, slots, name, absent)

    walk(SCHEMA, "#", doc, (), (), "", 0)
    return out


# ---------------------------------------------------------------- values


def _names(doc: dict[str, Any]) -> list[str]:
    vrrp = doc.get("vrrp", {})
    groups = [doc["nodes"], doc.get("checks", {}), vrrp.get("instances", {})]
    return [n for g in groups for n in g]


# Strings tried for a string setting; each setting takes those its schema accepts.
STRINGS = [
    "alpha",
    "beta7",
    "192.0.2.77",
    "198.51.100.78",
    "2001:db8::77",
    "192.0.2.79/24",
    "2001:db8::79/64",
    "2s",
    "250ms",
    "eth0:7",
    "/ready",
    "http://192.0.2.60/ready",
    "201-204",
    "fedcba9876543210fedcba9876543210",
]


def _format_ok(fmt: str | None, text: str) -> bool:
    parse = {
        "ipv4": ipaddress.IPv4Address,
        "ipv6": ipaddress.IPv6Address,
        "ip-address": ipaddress.ip_address,
        "ip-interface": ipaddress.ip_interface,
    }
    if fmt is None:
        return True
    try:
        parse[fmt](text)
    except ValueError:
        return False
    return True


def alternatives(node: dict[str, Any], ptr: str, current: Any, doc: dict[str, Any]) -> list[Any]:
    """Valid values other than `current` for a setting, as its schema describes them."""
    out: list[Any] = []
    for b, bptr in branches(node, ptr, current):
        kind = b.get("type")
        if "const" in b:
            continue
        if "enum" in b:
            out += [e for e in b["enum"] if e != current]
        elif kind == "boolean":
            out += [x for x in (True, False) if x != current]
        elif kind == "integer":
            lo, hi = b.get("minimum", 0), b.get("maximum", 10**6)
            near = [current + 1, current - 1] if isinstance(current, int) else []
            out += [v for v in (*near, lo, lo + 1, hi, 2, 100) if lo <= v <= hi and v != current]
        elif kind == "string":
            pool = _names(doc) if bptr == "#/$defs/name" else STRINGS
            out += [
                s
                for s in pool
                if s != current
                and re.fullmatch(b.get("pattern", ".*").strip("^$"), s)
                and b.get("minLength", 0) <= len(s) <= b.get("maxLength", 10**6)
                and _format_ok(b.get("format"), s)
            ]
        elif kind == "array":
            items, iptr = b["items"], f"{bptr}/items"
            fresh = examples(items, iptr, doc)
            if isinstance(current, list):
                if len(current) > b.get("minItems", 0):
                    out.append(current[:-1])
                if len(current) < b.get("maxItems", 10**6):
                    out += [[*current, x] for x in fresh[:2]]
            else:
                out += [[x] for x in fresh[:2]]
    unique: list[Any] = []
    for v in out:
        if v not in unique:
            unique.append(v)
    return unique


def examples(node: dict[str, Any], ptr: str, doc: dict[str, Any]) -> list[Any]:
    """A few valid-looking new values (objects get their required properties)."""
    out: list[Any] = []
    for b, bptr in branches(node, ptr, MISSING):
        if "properties" not in b:
            out += alternatives(b, bptr, MISSING, doc)[:2]
            continue
        choices = [alt["required"] for alt in b.get("oneOf", [])] or [[]]
        for extra in choices:
            obj = {}
            for req in [*b.get("required", []), *extra]:
                sub = examples(b["properties"][req], f"{bptr}/properties/{req}", doc)
                if sub:
                    obj[req] = sub[0]
            out.append(obj)
    return out


# ---------------------------------------------------------------- documents


def _get(doc: Any, path: DocPath) -> Any:
    for p in path:
        if isinstance(doc, dict):
            if p not in doc:
                return MISSING
            doc = doc[p]
        else:
            doc = doc[p]  # type: ignore[index]
    return doc


def _with(doc: dict[str, Any], path: DocPath, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    at: Any = out
    for p in path[:-1]:
        at = at.setdefault(p, {}) if isinstance(at, dict) else at[p]
    at[path[-1]] = value
    return out


@cache
def _load(text: str) -> Cluster | None:
    # The document is built in memory: parsing YAML text again for every change would
    # only repeat what the line marks are for (the errors' locations, unused here).
    doc = Document("change.yaml", json.loads(text))
    if validate_schema(doc):
        return None
    try:
        return build(doc)[0]
    except InvalidConfig:
        return None


def load(doc: dict[str, Any]) -> Cluster | None:
    return _load(json.dumps(doc))


@dataclass(frozen=True)
class Change:
    setting: Setting
    before: Any
    after: Any


def pairs(setting: Setting, doc: dict[str, Any]) -> list[tuple[Any, Any]]:
    """(old, new) values for one setting: its value and another, or two values when unset."""
    current = _get(doc, setting.path)
    alts = alternatives(setting.schema, setting.pointer, current, doc)
    if current is not MISSING:
        return [(current, a) for a in alts]
    return list(itertools.pairwise(alts))


def documents(change: Change) -> tuple[dict[str, Any], dict[str, Any]]:
    return _with(BASE, change.setting.path, change.before), _with(
        BASE, change.setting.path, change.after
    )


def share(cluster: Cluster, node: str) -> object:
    """A node's share of a model: what the plan must account for."""
    if node not in cluster.node_names:
        return None
    return (
        cluster.for_node(node),
        cluster.node(node),
        cluster.name,
        cluster.sysctls,
        cluster.resync_interval,
        cluster.drain_timeout,
    )


def _names_setting(plan: Plan, change: Change) -> bool:
    name = change.setting.name
    fields = {
        part
        for step in plan.steps
        for c in step.changes
        for part in re.split(r"[.\[\]]", c.field)
        if part and not part.isdigit()
    }
    if any(f == name or f.endswith(f"_{name}") or f.startswith(f"{name}_") for f in fields):
        return True
    # The setting reached this node through another object (another node's address is
    # this node's unicast peer): the changed field shows the new value.
    after = change.after
    value = None if isinstance(after, dict | list | bool) else str(after)
    if value and any(value in change_line(c) for s in plan.steps for c in s.changes):
        return True
    # An identity changed (a service's address, a real server's port, where a service
    # runs): the plan deletes and creates objects, and their lines show the new value
    # or the object the setting belongs to.
    lines = render_text([plan]).splitlines()
    moved = [line for line in lines if line.startswith(("  + create", "  - delete"))]
    words = {str(p) for p in change.setting.path if isinstance(p, str)} - {name}
    if value:
        words.add(value)
    if isinstance(change.before, list) and isinstance(change.after, list):  # an item in or out
        for item in [*change.before, *change.after]:
            if (item in change.before) != (item in change.after):
                values = item.values() if isinstance(item, dict) else [item]
                words |= {str(v) for v in values if isinstance(v, str)}
    return any(w in line for line in moved for w in words)


@dataclass
class Outcome:
    changed_nodes: int
    reached_nobody: bool


def _dotted(path: DocPath) -> str:
    return ".".join(map(str, path))


def check_change(change: Change) -> Outcome | None:
    """Assert the plan of every node for one change; None when a document is invalid."""
    before_doc, after_doc = documents(change)
    old, new = load(before_doc), load(after_doc)
    if old is None or new is None:
        return None
    nodes = sorted(set(old.node_names) | set(new.node_names))
    changed = 0
    for node in nodes:
        plan = plan_revision(node, old, new, source="a", target="b")
        where = (
            f"{_dotted(change.setting.path)}: {change.before!r} -> {change.after!r}, node {node}"
        )
        if share(old, node) == share(new, node):
            assert not plan.steps, (
                f"{where}: nothing changed for the node, yet:\n{render_text([plan])}"
            )
            continue
        changed += 1
        assert plan.has_changes, f"{where}: the node's share changed but the plan is empty"
        assert all(s.action is not Action.CONFLICT for s in plan.steps)
        assert _names_setting(plan, change), (
            f"{where}: the plan does not name it:\n{render_text([plan])}"
        )
    return Outcome(changed, changed == 0)


# ---------------------------------------------------------------- the tests

ALL_SETTINGS = settings_in(BASE)


def test_the_base_document_is_valid() -> None:
    text = (ROOT / "tests/data/plan/every-setting.yaml").read_text()
    assert load_text(text, "every-setting.yaml").cluster == load(BASE)


def test_every_schema_property_is_changed_and_planned() -> None:
    """One valid change per setting in the base document (more where the first ones are
    invalid), checked on every node; every slot of the schema is covered."""
    covered: set[Slot] = set()
    tried = valid = reached_nobody = node_plans = 0
    for setting in ALL_SETTINGS:
        if _get(BASE, setting.path) is MISSING and setting.slots[-1] in covered:
            continue  # unset here and its slot already changed elsewhere
        for before, after in pairs(setting, BASE)[:12]:
            tried += 1
            outcome = check_change(Change(setting, before, after))
            if outcome is None:
                continue
            valid += 1
            node_plans += outcome.changed_nodes
            if outcome.reached_nobody:
                reached_nobody += 1
                own = setting.slots[-1] if setting.slots else None
                assert own in NO_EFFECT, (
                    f"{'.'.join(map(str, setting.path))}: {before!r} -> {after!r} changes no "
                    "node's share of the model: a setting the model ignores?"
                )
            covered.update(setting.slots)
            break
    missing = universe() - covered - NOT_CHANGED.keys()
    assert not missing, (
        "schema properties never changed (add them to every-setting.yaml): "
        + ", ".join(sorted(map(str, missing)))
    )
    # The counts the task note quotes (pytest -s shows them).
    print(
        f"\nplan completeness: {len(ALL_SETTINGS)} settings, {tried} changes tried, {valid} valid "
        f"and planned, {node_plans} node plans checked, {reached_nobody} reaching no node, "
        f"{len(covered)} of {len(universe())} schema slots covered"
    )
    assert valid


CHANGES = [Change(s, b, a) for s in ALL_SETTINGS for b, a in pairs(s, BASE)]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(CHANGES))
def test_any_single_setting_change_is_in_the_plan_of_every_node_it_reaches(change: Change) -> None:
    outcome = check_change(change)
    if outcome is not None and outcome.reached_nobody:
        assert change.setting.slots[-1] in NO_EFFECT


@pytest.mark.parametrize(
    ("path", "value", "line"),
    [
        (("director", "sysctls", "ip_forward"), False, "sysctls.ip_forward: true -> false"),
        (("reconcile", "drain_timeout"), "10m", "drain_timeout: 5m -> 10m"),
        (("reconcile", "resync_interval"), "1m", "resync_interval: 30s -> 1m"),
    ],
)
def test_node_wide_settings_are_planned_on_every_node(path: DocPath, value: Any, line: str) -> None:
    old, new = load(BASE), load(_with(BASE, path, value))
    assert old is not None and new is not None
    for node in old.node_names:
        text = render_text([plan_revision(node, old, new, source="a", target="b")])
        assert f"      {line}\n" in text
