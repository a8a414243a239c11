"""/metrics is written directly from the collectors' rows (observability/metrics.py), and
must say exactly what prometheus_client says of the same collectors: the same names, labels,
values and order, byte for byte, on the first scrape and on later ones that reuse the
cached label strings and values."""

from __future__ import annotations

import asyncio
import hashlib
import json

from prometheus_client import generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from reconciler.model.revision import Artifact, Provenance
from reconciler.observability.exposition import Exposition, MetricFamily, NodeRegistry
from reconciler.observability.http import StatusServer, status_json
from reconciler.observability.metrics import registry_for
from reconciler.observability.status import (
    CheckStatus,
    ErrorCount,
    InstanceStatus,
    NodeStatus,
    RealServerStatus,
    ReconcileStatus,
    SocketStatus,
    TrackerStatus,
)
from reconciler.revision.gate import Applied, ArtifactSeen, RevisionGate, Validated
from reconciler.revision.git_policy import GitSourceStatus

T = 1_767_323_045.25


def instance(k: int, sent: int, name: str = "web") -> InstanceStatus:
    return InstanceStatus(
        name=f"{name}{k}",
        vrid=k % 255 + 1,
        interface=f"eth{k % 2}",
        family="ipv4",
        state="MASTER",
        state_code=2,
        priority=150,
        effective_priority=90,
        master_address=None,
        vips=("192.0.2.100/24",),
        last_transition_unix_s=T + k if k % 3 else None,
        adverts_received=k,
        adverts_sent=sent,  # past 10**6 the text format switches to exponents
        refused={"auth_mismatch": 2, "ttl": 1} if k % 2 else {},
        transitions={
            ("INITIALIZE", "BACKUP", "startup"): 1,
            ("BACKUP", "MASTER", "master_down"): k,
        },
        faults=("interface eth1",) if k == 1 else (),
        trackers=(
            TrackerStatus("check nginx", -60, "down", None, -60, False),
            TrackerStatus('file "prio\\1"\n', 2, "up", 7, 14, False),
        ),
        address_mismatch=k % 4,
    )


def node(sent: int, names: str = "web", n: int = 6) -> NodeStatus:
    gate = RevisionGate()
    data = b"cluster"
    art = Artifact(
        data, hashlib.sha256(data).hexdigest(), Provenance("file:/c.yaml", "a1" * 20, "Ada", T)
    )
    gate.handle(ArtifactSeen(art), T)
    gate.handle(Validated(art.digest), T)
    gate.handle(Applied(art.digest), T + 1)
    return NodeStatus(
        node="lb1",
        cluster="edge",
        file='/etc/"odd"\\path.yaml',
        revision="abc123",
        started_unix_s=T,
        applied_unix_s=T + 0.5,
        reloads_ok=3,
        reloads_failed=1,
        last_reload_error="c.yaml:1:1: bad",
        instances=tuple(instance(k, sent + k, names) for k in range(n)) if names else (),
        sockets=(
            SocketStatus("eth0", "ipv4", {"too_short": 4, "bad_checksum": 1}, 2, 99, True),
            SocketStatus("eth1", "ipv6", {}, 0, 0, False),
        ),
        checks=(
            CheckStatus("nginx", "127.0.0.1:80", "down", "refused", 10, 4, 0.125, 0.0031),
            CheckStatus("dns", "203.0.113.5:53", "unknown", "", 0, 0, 0.0, 0.0),
        ),
        reconcile=ReconcileStatus(
            enabled=True,
            passes={"converged": 12, "changed": 2},
            writes=7,
            last_outcome="converged",
            last_error=None,
            last_duration_s=0.0123,
            conflicts=("address eth0/192.0.2.9",),
            draining=(),
            ipvs_error=None,
            ipvs_required=True,
            real_servers=(RealServerStatus("tcp/192.0.2.100:80", "198.51.100.2:8080", 3, 12, 1),),
        ),
        commit="a1" * 20,
        revisions=gate.status(),
        git=GitSourceStatus(
            "git:https://example.org/r.git#main:c.yaml",
            "head",
            "a1" * 20,
            "a1" * 20,
            None,
            None,
            0,
            5,
            1,
            T - 3,
            30.0,
        ),
        errors=(ErrorCount("advert_send", "EPERM", 1234), ErrorCount("vip_add", "EACCES", 2)),
    )


class Changing:
    def __init__(self) -> None:
        self.current = node(999_998)

    def status(self) -> NodeStatus:
        return self.current


def test_the_direct_text_is_what_prometheus_client_writes_scrape_after_scrape() -> None:
    source = Changing()
    registry = registry_for(source)
    first = registry.exposition()
    assert first == generate_latest(registry)
    text = first.decode()
    assert (
        'reconciler_vrrp_adverts_sent_total{interface="eth0",vrid="1",vrrp_instance="web0"}' in text
    )
    assert " 999998.0\n" in text and " 1.000003e+06\n" in text  # Go's exponents past 10**6
    assert 'reconciler_vrrp_errors_total{error="EPERM",operation="advert_send"} 1234.0' in text
    assert 'tracker="file \\"prio\\\\1\\"\\n"' in text  # escaped as the library does
    # Later scrapes reuse label strings and values: new values and new instances show.
    for sent, names, n in ((1_000_050, "web", 6), (7, "web", 2), (7, "db", 9), (8, "", 0)):
        source.current = node(sent, names, n)
        assert registry.exposition() == generate_latest(registry)


def test_other_collectors_keep_their_place_and_text() -> None:
    class Plain(Collector):
        def collect(self):  # type: ignore[no-untyped-def]
            g = GaugeMetricFamily("plain_thing", "A plain collector.", labels=["a"])
            g.add_metric(["x"], 2.5)
            yield g

    registry = NodeRegistry()
    registry.register(Plain())
    registry.register(registry_for(Changing())._ordered[0])
    assert registry.exposition() == generate_latest(registry)
    assert registry.exposition().startswith(b"# HELP plain_thing")


def test_the_status_listener_exports_what_it_answered_and_what_that_cost() -> None:
    async def scenario() -> tuple[bytes, bytes]:
        registry = registry_for(Changing())
        server = StatusServer(Changing(), registry)
        port = await server.start("127.0.0.1", 0)
        try:
            for path in ("/status", "/metrics", "/nowhere"):
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(f"GET {path} HTTP/1.1\r\n\r\n".encode())
                await reader.read()
                writer.close()
            return registry.exposition(), generate_latest(registry)
        finally:
            await server.close()

    direct, library = asyncio.run(scenario())
    assert direct == library
    text = direct.decode()
    for path in ("/status", "/metrics", "other"):
        assert f'reconciler_http_responses_total{{path="{path}"}} 1.0' in text
        line = next(
            x
            for x in text.splitlines()
            if x.startswith(f'reconciler_http_response_loop_seconds_total{{path="{path}"}}')
        )
        assert 0 < float(line.split()[-1]) < 5
    assert 'reconciler_http_refused_total{reason="busy"} 0.0' in text


def test_cached_texts_stay_bounded_across_renames() -> None:
    exposition = Exposition()
    for generation in range(50):
        family = MetricFamily("gauge", "x", "doc", ("name",))
        for k in range(10):
            family.add_metric((f"g{generation}-{k}",), generation * 1000.5 + k)
        exposition.render([family])
    assert sum(len(p) for p in exposition._prefixes.values()) <= 2 * 10 + 16


def test_status_is_the_json_of_the_whole_snapshot() -> None:
    """/status is encoded one instance at a time off the loop: the same text as encoding
    the whole document at once."""
    source = Changing()

    async def scenario() -> bytes:
        server = StatusServer(source, registry_for(source))
        port = await server.start("127.0.0.1", 0)
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /status HTTP/1.1\r\n\r\n")
            answer = await reader.read()
            writer.close()
            return answer.split(b"\r\n\r\n", 1)[1]
        finally:
            await server.close()

    body = asyncio.run(scenario())
    assert body == (json.dumps(status_json(source)) + "\n").encode()
    assert json.loads(body)["instances"][1]["transitions"][0] == {
        "from": "BACKUP",
        "to": "MASTER",
        "reason": "master_down",
        "count": 1,
    }
