"""Spans leave the process over real OTLP/HTTP, configured only by the environment.

A small `http.server` on 127.0.0.1 plays the collector: it accepts POST /v1/traces
and decodes the protobuf body as an ExportTraceServiceRequest. No root needed.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from reconciler import __version__
from reconciler.observability.tracing import Tracing, tracer_provider_from_env

T0 = 1_700_000_000.25
T0_NS = 1_700_000_000_250_000_000


class Collector:
    """Records every OTLP/HTTP trace export it is sent."""

    def __init__(self) -> None:
        self.requests: list[ExportTraceServiceRequest] = []
        self.content_types: list[str] = []
        self.lock = threading.Lock()
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.path != "/v1/traces":
                    self.send_error(404)
                    return
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                with collector.lock:
                    collector.requests.append(request)
                    collector.content_types.append(self.headers.get("Content-Type", ""))
                reply = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: object) -> None:
                pass  # keep the test output clean

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def spans(self) -> list[tuple[dict[str, object], str, Span]]:
        """(resource attributes, scope name, span) for every span received."""
        out = []
        with self.lock:
            for request in self.requests:
                for rs in request.resource_spans:
                    resource = attributes(rs.resource.attributes)
                    for ss in rs.scope_spans:
                        out += [(resource, ss.scope.name, span) for span in ss.spans]
        return out


@pytest.fixture
def collector() -> Iterator[Collector]:
    c = Collector()
    c.thread.start()
    try:
        yield c
    finally:
        c.server.shutdown()
        c.server.server_close()
        c.thread.join(5)


def value(v: AnyValue) -> object:
    kind = v.WhichOneof("value")
    if kind == "array_value":
        return tuple(value(x) for x in v.array_value.values)
    return None if kind is None else getattr(v, kind)


def attributes(kvs: Iterable[KeyValue]) -> dict[str, object]:
    return {kv.key: value(kv.value) for kv in kvs}


def test_spans_reach_an_otlp_http_receiver(
    collector: Collector, clean_env: pytest.MonkeyPatch
) -> None:
    clean_env.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{collector.port}")
    clean_env.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "5")
    provider = tracer_provider_from_env("reconciler", "lb1", "edge")
    assert provider is not None
    tracing = Tracing(provider)

    tracing.vrrp_transition("web", 51, "eth0", "BACKUP", "MASTER", "master_down", 150, T0)
    tracing.failover("web", 51, T0 - 3.0, T0, "master_down")
    tracing.check_transition("nginx", "127.0.0.1:80", "up", "down", "3 failures", T0)
    tracing.reconcile_pass(
        "error",
        T0,
        0.5,
        1,
        [("create", "address", "eth0/192.0.2.100/24", None), ("delete", "ipvs_dest", "d", "EBUSY")],
    )
    tracing.reconcile_pass("converged", T0, 0.001, 0, [])  # not traced
    tracing.reload("abc123", True, None, ["vrrp/web"], T0)

    started = time.monotonic()
    tracing.shutdown(timeout_s=10)
    assert time.monotonic() - started < 10

    received = collector.spans()
    assert collector.content_types
    assert set(collector.content_types) == {"application/x-protobuf"}
    by_name: dict[str, list[Span]] = {}
    for resource, scope, span in received:
        assert resource["service.name"] == "reconciler"
        assert resource["service.version"] == __version__
        assert resource["host.name"] == socket.gethostname()
        assert resource["reconciler.node"] == "lb1"
        assert resource["reconciler.cluster"] == "edge"
        assert scope == "reconciler"
        by_name.setdefault(span.name, []).append(span)
    assert {name: len(spans) for name, spans in by_name.items()} == {
        "vrrp.transition": 1,
        "vrrp.failover": 1,
        "reconciler.check.transition": 1,
        "reconciler.reconcile": 1,
        "reconciler.reconcile.step": 2,
        "reconciler.reload": 1,
    }

    (transition,) = by_name["vrrp.transition"]
    assert attributes(transition.attributes) == {
        "vrrp.instance": "web",
        "vrrp.vrid": 51,
        "vrrp.interface": "eth0",
        "vrrp.from_state": "BACKUP",
        "vrrp.to_state": "MASTER",
        "vrrp.reason": "master_down",
        "vrrp.priority": 150,
    }
    assert transition.start_time_unix_nano == transition.end_time_unix_nano == T0_NS
    assert [e.name for e in transition.events] == ["vrrp.state_change"]
    assert transition.kind == Span.SPAN_KIND_INTERNAL

    (failover,) = by_name["vrrp.failover"]
    assert attributes(failover.attributes) == {
        "vrrp.instance": "web",
        "vrrp.vrid": 51,
        "vrrp.failover.kind": "master_down",
    }
    assert failover.end_time_unix_nano - failover.start_time_unix_nano == 3_000_000_000

    (check,) = by_name["reconciler.check.transition"]
    assert attributes(check.attributes)["reconciler.check.to_state"] == "down"

    (rpass,) = by_name["reconciler.reconcile"]
    assert attributes(rpass.attributes) == {
        "reconciler.reconcile.outcome": "error",
        "reconciler.reconcile.writes": 1,
        "reconciler.reconcile.steps": 2,
        "reconciler.reconcile.failed_steps": 1,
    }
    assert rpass.status.code == Status.STATUS_CODE_ERROR
    assert rpass.end_time_unix_nano - rpass.start_time_unix_nano == 500_000_000
    assert rpass.parent_span_id == b""
    for step in by_name["reconciler.reconcile.step"]:
        assert step.trace_id == rpass.trace_id
        assert step.parent_span_id == rpass.span_id
    failed = [s for s in by_name["reconciler.reconcile.step"] if s.status.code]
    assert [attributes(s.attributes)["reconciler.step.error"] for s in failed] == ["EBUSY"]
    assert failed[0].status.message == "EBUSY"

    (reload,) = by_name["reconciler.reload"]
    assert attributes(reload.attributes) == {
        "reconciler.revision": "abc123",
        "reconciler.reload.ok": True,
        "reconciler.reload.restarted": ("vrrp/web",),
    }

    # Every call was its own trace, except the steps inside their pass.
    assert len({s.trace_id for _, _, s in received}) == 5


def test_shutdown_is_bounded_when_the_collector_never_answers(
    clean_env: pytest.MonkeyPatch,
) -> None:
    # A listening socket nobody accepts on: the kernel completes the handshake and
    # buffers the request, and the exporter waits for a reply that never comes.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    try:
        port = silent.getsockname()[1]
        clean_env.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{port}")
        clean_env.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "30")
        provider = tracer_provider_from_env("reconciler", "lb1", "edge")
        assert provider is not None
        tracing = Tracing(provider)
        tracing.reload("abc123", False, "bad file", [], T0)
        started = time.monotonic()
        tracing.shutdown(timeout_s=1.0)
        took = time.monotonic() - started
        assert 1.0 <= took < 3.0
    finally:
        # Resets the buffered connection, so the abandoned export ends now.
        silent.close()
