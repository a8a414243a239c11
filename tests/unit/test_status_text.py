"""`reconciler status` text from a NodeStatus value (no daemon): the JSON /status serves,
rendered by the CLI's sections. It must answer "why is this node's priority 90"."""

from __future__ import annotations

import json
from typing import Any

from reconciler.cli.status_text import checks_text, instances_text
from reconciler.observability.http import status_json
from reconciler.observability.metrics import registry_for
from reconciler.observability.status import (
    CheckStatus,
    InstanceStatus,
    NodeStatus,
    TrackerStatus,
    TransitionStatus,
)

T0 = 1_796_000_000.0  # 2026-11-30 00:53:20 UTC


def instance(**kwargs: object) -> InstanceStatus:
    fields: dict[str, object] = {
        "name": "web",
        "vrid": 51,
        "interface": "eth0",
        "family": "ipv4",
        "state": "BACKUP",
        "state_code": 1,
        "priority": 150,
        "effective_priority": 90,
        "master_address": "192.0.2.12",
        "vips": ("192.0.2.100/24",),
        "last_transition_unix_s": T0,
        "adverts_received": 120,
        "adverts_sent": 40,
    }
    fields.update(kwargs)
    return InstanceStatus(**fields)  # type: ignore[arg-type]


def node(*instances: InstanceStatus, checks: tuple[CheckStatus, ...] = ()) -> NodeStatus:
    return NodeStatus(
        node="lb1",
        cluster="web-edge",
        file="/etc/reconciler/cluster.yaml",
        revision="0123456789ab",
        started_unix_s=T0 - 100,
        applied_unix_s=T0 - 100,
        reloads_ok=1,
        reloads_failed=0,
        last_reload_error=None,
        instances=instances,
        sockets=(),
        checks=checks,
    )


class Fixed:
    """A StatusSource that always answers the same snapshot."""

    def __init__(self, status: NodeStatus) -> None:
        self._status = status

    def status(self) -> NodeStatus:
        return self._status


def doc_of(status: NodeStatus) -> dict[str, Any]:
    """What `reconciler status` reads: /status's JSON, through a real encode and decode."""
    doc = json.loads(json.dumps(status_json(Fixed(status))))
    assert isinstance(doc, dict)
    return doc


NGINX_DOWN = TrackerStatus("check nginx", -60, "down", None, -60, False)
WEB = instance(
    trackers=(
        NGINX_DOWN,
        TrackerStatus("check maintenance", -1, "up", 0, 0, False),
        TrackerStatus("interface eth1", 10, "up", None, 10, False),
        TrackerStatus("check gate", 0, "unknown", None, 0, False),
    ),
    effective_priority=100,
    refused={"auth_mismatch": 3, "bad_ttl": 12},
    last_transition=TransitionStatus("MASTER", "BACKUP", "higher_priority", T0),
)


def test_an_instance_says_which_tracker_took_what() -> None:
    text = instances_text(doc_of(node(WEB)), now_unix_s=T0 + 42)
    assert text.splitlines() == [
        "INSTANCE         VRID IFACE      STATE           PRIO  MASTER/VIPS",
        "web                51 eth0       BACKUP       100/150  192.0.2.12  192.0.2.100/24",
        "",
        "instance web:",
        "  priority 100: configured 150, trackers -50",
        "    check nginx down: -60 (weight -60)",
        "    check maintenance up, value 0: 0 (weight -1)",
        "    interface eth1 up: +10 (weight 10)",
        "    check gate unknown: 0 (weight 0)",
        "  refused adverts: auth_mismatch 3, bad_ttl 12",
        "  last transition: MASTER -> BACKUP (higher_priority)"
        " at 2026-11-30 00:53:20 UTC, 42 s ago",
    ]


def test_fault_clamp_owner_and_nothing_to_say() -> None:
    faulty = instance(
        name="db",
        state="FAULT",
        state_code=3,
        priority=100,
        effective_priority=1,
        master_address=None,
        faults=("track:check gate",),
        trackers=(
            TrackerStatus("check gate", 0, "down", None, 0, True),
            TrackerStatus("check disk", -120, "down", None, -120, False),
        ),
    )
    owner = instance(
        name="owner",
        priority=255,
        effective_priority=255,
        state="MASTER",
        trackers=(NGINX_DOWN,),
    )
    plain = instance(name="plain", effective_priority=150, last_transition_unix_s=None)
    lines = instances_text(doc_of(node(faulty, owner, plain)), now_unix_s=T0).splitlines()
    assert (
        "db                 51 eth0       FAULT          1/100  -  192.0.2.100/24"
        "  faults: track:check gate" in lines
    )
    assert "  priority 1: configured 100, trackers -120 = -20, clamped to 1..254" in lines
    assert "    check gate down: FAULT (weight 0)" in lines
    assert "  priority 255: configured 150, trackers -60" not in lines
    assert (
        "  priority 255: configured 255, trackers -60 (address owner: trackers never move it)"
        in lines
    )
    i = lines.index("instance plain:")
    assert lines[i + 1 : i + 4] == [
        "  priority 150: configured 150, no trackers",
        "  refused adverts: none",
        "  last transition: none",
    ]


def test_checks_say_their_state_and_last_error() -> None:
    checks = (
        CheckStatus(
            "nginx",
            "-",
            "down",
            "connect: Connection refused",
            40,
            12,
            0.4,
            0.002,
            last_error="connect: Connection refused",
        ),
        CheckStatus("web-health", "198.51.100.2:8080", "up", "HTTP 200", 10, 0, 0.1, 0.001),
    )
    assert checks_text(doc_of(node(WEB, checks=checks))).splitlines() == [
        "",
        "CHECK            TARGET                 STATE     PROBES  FAILED  LAST ERROR",
        "nginx            -                      down          40      12"
        "  connect: Connection refused",
        "web-health       198.51.100.2:8080      up            10       0  -",
    ]
    assert checks_text(doc_of(node(WEB))) == ""


def test_the_tracker_metric_says_what_the_status_says() -> None:
    registry = registry_for(Fixed(node(WEB)))
    labels = {"vrrp_instance": "web", "vrid": "51", "interface": "eth0"}
    for tracker in WEB.trackers:
        value = registry.get_sample_value(
            "reconciler_vrrp_tracker_contribution", {**labels, "tracker": tracker.name}
        )
        assert value == tracker.contribution, tracker
