"""Revisions in /status, `reconciler status` and /metrics, from the gate's own status."""

from __future__ import annotations

import hashlib
import json

from prometheus_client import generate_latest

from reconciler.cli.status_text import revision_lines
from reconciler.model.revision import Artifact, Provenance
from reconciler.observability.http import status_json
from reconciler.observability.metrics import registry_for
from reconciler.observability.status import NodeStatus
from reconciler.revision.gate import (
    Applied,
    ArtifactSeen,
    RevisionGate,
    Suspend,
    Validated,
    ValidationFailed,
)

T = 1_767_323_045.0
C1 = "a1" * 20


def art(data: bytes, commit: str | None) -> Artifact:
    prov = Provenance("file:/etc/c.yaml", commit, "Ada <ada@example.org>", T - 60)
    return Artifact(data, hashlib.sha256(data).hexdigest(), prov)


GOOD, BAD = art(b"good", C1), art(b"bad", "b2" * 20)


class Node:
    def __init__(self, gate: RevisionGate) -> None:
        self.gate = gate

    def status(self) -> NodeStatus:
        return NodeStatus(
            node="lb1",
            cluster="edge",
            file="/etc/c.yaml",
            revision=GOOD.short_digest,
            started_unix_s=T,
            applied_unix_s=T,
            reloads_ok=0,
            reloads_failed=self.gate.failures,
            last_reload_error=None,
            instances=(),
            sockets=(),
            commit=C1,
            revisions=self.gate.status(),
        )


def stalled_gate() -> RevisionGate:
    g = RevisionGate()
    g.handle(ArtifactSeen(GOOD), T)
    g.handle(Validated(GOOD.digest), T)
    g.handle(Applied(GOOD.digest), T + 1)
    g.handle(ArtifactSeen(BAD), T + 10)
    g.handle(ValidationFailed(BAD.digest, "/etc/c.yaml:9:13: vrid: 300 is out of range"), T + 11)
    return g


def test_metrics_of_revisions() -> None:
    node = Node(stalled_gate())
    text = generate_latest(registry_for(node)).decode()
    assert (
        'reconciler_desired_state_info{cluster="edge",commit="' + C1 + '",file="/etc/c.yaml",'
        'node="lb1",revision="' + GOOD.short_digest + '"} 1.0'
    ) in text
    (attempted,) = [
        float(line.split()[1])
        for line in text.splitlines()
        if line.startswith("reconciler_desired_state_attempted_timestamp_seconds ")
    ]
    assert attempted == T + 11
    assert 'reconciler_desired_state_refused_total{reason="invalid"} 1.0' in text
    assert (
        'reconciler_desired_state_condition{reason="ValidationFailed",type="Stalled"} 1.0' in text
    )
    assert 'reconciler_desired_state_condition{reason="ValidationFailed",type="Ready"} 0.0' in text
    assert 'reconciler_desired_state_condition{reason="Idle",type="Reconciling"} 0.0' in text
    node.gate.handle(Suspend(), T)
    node.gate.handle(Suspend("web"), T)
    text = generate_latest(registry_for(node)).decode()
    assert 'reconciler_desired_state_suspended{part="node"} 1.0' in text
    assert 'reconciler_desired_state_suspended{part="web"} 1.0' in text


def test_status_json_and_text() -> None:
    doc = json.loads(json.dumps(status_json(Node(stalled_gate()))))
    rev = doc["revisions"]
    assert rev["applied"]["digest"] == GOOD.digest and rev["applied"]["commit"] == C1
    assert rev["attempted"]["digest"] == BAD.digest
    assert rev["attempted"]["error"] == "/etc/c.yaml:9:13: vrid: 300 is out of range"
    assert [c["type"] for c in rev["conditions"]] == ["Ready", "Reconciling", "Stalled"]
    lines = revision_lines(rev)
    assert (
        lines[0] == "revisions: Ready=False (ValidationFailed)  Reconciling=False  "
        "Stalled=True (ValidationFailed)"
    )
    assert lines[1] == (
        f"  applied    {GOOD.digest[:12]}  at 2026-01-02 03:04:06Z  commit {C1[:12]} by "
        "Ada <ada@example.org> (2026-01-02 03:03:05Z)"
    )
    assert lines[2].startswith(f"  attempted  {BAD.digest[:12]}  at 2026-01-02 03:04:16Z")
    assert lines[3] == (
        "             failed (invalid): /etc/c.yaml:9:13: vrid: 300 is out of range"
    )
    assert lines[4].startswith(f"  verified   {GOOD.digest[:12]}")
