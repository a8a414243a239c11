"""Suspended instances keep running exactly as they are when a new revision applies."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.config.load import load_bytes
from reconciler.model.cluster import NodeConfig
from reconciler.revision.hold import HoldConflict, hold_instances

ROOT = Path(__file__).resolve().parents[2]
BASE = (ROOT / "examples/lvs-nat.yaml").read_text()


def node(text: str) -> NodeConfig:
    return load_bytes(text.encode(), "c.yaml").cluster.for_node("director1")


def test_nothing_held_is_the_new_revision() -> None:
    new = node(BASE)
    assert hold_instances(new, node(BASE), frozenset()) is new


def test_a_held_instance_keeps_its_running_spec() -> None:
    running = node(BASE)
    names = [i.name for i in running.instances]
    assert len(names) >= 2
    held, other = names[0], names[1]
    new = node(BASE.replace("150", "160"))
    assert new.instance(held) != running.instance(held)
    out = hold_instances(new, running, frozenset({held}))
    assert out.instance(held) == running.instance(held)
    assert out.instance(other) == new.instance(other)
    assert [i.name for i in out.instances] == [i.name for i in new.instances]


def test_a_held_instance_the_new_revision_removes_keeps_running() -> None:
    running = node(BASE)
    held = running.instances[0].name
    new = node(BASE)
    new = type(new)(
        new.node, new.checks, tuple(i for i in new.instances if i.name != held), (), new.services
    )
    out = hold_instances(new, running, frozenset({held}))
    assert out.instance(held) == running.instance(held)


def test_a_new_revision_taking_a_held_vrid_is_refused() -> None:
    running = node(BASE)
    held = running.instances[0]
    new = node(BASE)
    clash = type(held)(**{**held.__dict__, "name": "thief"})
    new = type(new)(
        new.node,
        new.checks,
        (*(i for i in new.instances if i.name != held.name), clash),
        (),
        new.services,
    )
    with pytest.raises(HoldConflict, match="thief takes VRID"):
        hold_instances(new, running, frozenset({held.name}))
