"""Spans of `observability.tracing`, on a fresh SDK provider with an in-memory exporter.

Each method is pinned to exactly the spans, attributes, timestamps and status its
module docstring documents; the environment parsing is checked by building the
provider and looking at its processor, exporter and resource.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Iterator, Sequence

import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_ON
from opentelemetry.trace import SpanKind, StatusCode

from reconciler import __version__
from reconciler.observability.tracing import (
    MAX_STEP_SPANS,
    Tracing,
    tracer_provider_from_env,
)

T0 = 1_700_000_000.25  # a present-day time whose .25 must survive as exact nanoseconds
T0_NS = 1_700_000_000_250_000_000


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def tracing(exporter: InMemorySpanExporter) -> Iterator[Tracing]:
    # Sampler fixed so an OTEL_TRACES_SAMPLER in the environment cannot change the tests.
    provider = TracerProvider(sampler=ALWAYS_ON, shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    t = Tracing(provider)
    yield t
    t.shutdown()


def only(spans: Sequence[ReadableSpan]) -> ReadableSpan:
    assert len(spans) == 1, [s.name for s in spans]
    return spans[0]


def assert_root(span: ReadableSpan) -> None:
    assert span.parent is None
    assert span.kind is SpanKind.INTERNAL
    assert span.instrumentation_scope is not None
    assert span.instrumentation_scope.name == "reconciler"
    assert span.instrumentation_scope.version == __version__


# ------------------------------------------------------------------ VRRP
def test_vrrp_transition_is_an_instant_span_with_an_event(
    tracing: Tracing, exporter: InMemorySpanExporter
) -> None:
    tracing.vrrp_transition("web", 51, "eth0", "BACKUP", "MASTER", "master_down", 150, T0)

    span = only(exporter.get_finished_spans())
    assert span.name == "vrrp.transition"
    assert_root(span)
    assert dict(span.attributes or {}) == {
        "vrrp.instance": "web",
        "vrrp.vrid": 51,
        "vrrp.interface": "eth0",
        "vrrp.from_state": "BACKUP",
        "vrrp.to_state": "MASTER",
        "vrrp.reason": "master_down",
        "vrrp.priority": 150,
    }
    assert span.start_time == span.end_time == T0_NS
    assert span.status.status_code is StatusCode.UNSET
    (event,) = span.events
    assert event.name == "vrrp.state_change"
    assert event.timestamp == T0_NS
    assert dict(event.attributes or {}) == {
        "vrrp.from_state": "BACKUP",
        "vrrp.to_state": "MASTER",
        "vrrp.reason": "master_down",
    }


def test_failover_span_lasts_the_measured_failover(
    tracing: Tracing, exporter: InMemorySpanExporter
) -> None:
    tracing.failover("web", 51, T0, T0 + 3.5, "master_down")

    span = only(exporter.get_finished_spans())
    assert span.name == "vrrp.failover"
    assert_root(span)
    assert dict(span.attributes or {}) == {
        "vrrp.instance": "web",
        "vrrp.vrid": 51,
        "vrrp.failover.kind": "master_down",
    }
    assert span.start_time == T0_NS
    assert span.end_time == T0_NS + 3_500_000_000
    assert span.status.status_code is StatusCode.UNSET


def test_failover_ending_before_it_started_is_clamped(
    tracing: Tracing, exporter: InMemorySpanExporter
) -> None:
    tracing.failover("web", 51, T0, T0 - 1.0, "preempt")
    span = only(exporter.get_finished_spans())
    assert span.start_time == span.end_time == T0_NS


# ---------------------------------------------------------------- checks
def test_check_transition(tracing: Tracing, exporter: InMemorySpanExporter) -> None:
    tracing.check_transition("nginx", "127.0.0.1:80", "up", "down", "3 failures", T0)

    span = only(exporter.get_finished_spans())
    assert span.name == "reconciler.check.transition"
    assert_root(span)
    assert dict(span.attributes or {}) == {
        "reconciler.check.name": "nginx",
        "reconciler.check.target": "127.0.0.1:80",
        "reconciler.check.from_state": "up",
        "reconciler.check.to_state": "down",
        "reconciler.check.reason": "3 failures",
    }
    assert span.start_time == span.end_time == T0_NS
    assert span.status.status_code is StatusCode.UNSET


# ------------------------------------------------------------- reconcile
def test_reconcile_pass_has_a_child_per_step_and_fails_with_its_steps(
    tracing: Tracing, exporter: InMemorySpanExporter
) -> None:
    steps: list[tuple[str, str, str, str | None]] = [
        ("create", "ipvs_service", "tcp/192.0.2.100:80", None),
        ("create", "ipvs_dest", "tcp/192.0.2.100:80/198.51.100.2:8080", "EINVAL"),
        ("delete", "address", "eth0/192.0.2.101/24", None),
    ]
    tracing.reconcile_pass("error", T0, 0.125, 2, steps)

    spans = exporter.get_finished_spans()
    assert len(spans) == 4
    (parent,) = [s for s in spans if s.name == "reconciler.reconcile"]
    children = sorted(
        (s for s in spans if s.name == "reconciler.reconcile.step"),
        key=lambda s: int(str((s.attributes or {})["reconciler.step.index"])),
    )
    assert_root(parent)
    assert dict(parent.attributes or {}) == {
        "reconciler.reconcile.outcome": "error",
        "reconciler.reconcile.writes": 2,
        "reconciler.reconcile.steps": 3,
        "reconciler.reconcile.failed_steps": 1,
    }
    assert parent.start_time == T0_NS
    assert parent.end_time == T0_NS + 125_000_000
    assert parent.status.status_code is StatusCode.ERROR
    assert parent.status.description == (
        "1 of 3 steps failed; first: create ipvs_dest tcp/192.0.2.100:80/198.51.100.2:8080: EINVAL"
    )

    assert parent.context is not None
    for i, (child, (action, kind, key, error)) in enumerate(zip(children, steps, strict=True)):
        assert child.parent is not None
        assert child.parent.span_id == parent.context.span_id
        assert child.context is not None
        assert child.context.trace_id == parent.context.trace_id
        assert child.start_time == child.end_time == T0_NS
        expected: dict[str, object] = {
            "reconciler.step.index": i,
            "reconciler.step.action": action,
            "reconciler.step.kind": kind,
            "reconciler.step.key": key,
        }
        if error is None:
            assert child.status.status_code is StatusCode.UNSET
        else:
            expected["reconciler.step.error"] = error
            assert child.status.status_code is StatusCode.ERROR
            assert child.status.description == error
        assert dict(child.attributes or {}) == expected


def test_changed_pass_is_ok(tracing: Tracing, exporter: InMemorySpanExporter) -> None:
    tracing.reconcile_pass("changed", T0, 0.01, 1, [("create", "address", "eth0/a", None)])
    spans = exporter.get_finished_spans()
    assert sorted(s.name for s in spans) == ["reconciler.reconcile", "reconciler.reconcile.step"]
    assert all(s.status.status_code is StatusCode.UNSET for s in spans)


def test_converged_pass_is_not_traced(tracing: Tracing, exporter: InMemorySpanExporter) -> None:
    tracing.reconcile_pass("converged", T0, 0.002, 0, [])
    assert exporter.get_finished_spans() == ()


def test_failed_pass_without_steps_is_traced(
    tracing: Tracing, exporter: InMemorySpanExporter
) -> None:
    tracing.reconcile_pass("error", T0, 0.5, 0, [])
    span = only(exporter.get_finished_spans())
    assert span.name == "reconciler.reconcile"
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "reconcile pass failed"
    assert (span.attributes or {})["reconciler.reconcile.steps"] == 0


def test_step_spans_are_capped_and_keep_the_failures(
    tracing: Tracing, exporter: InMemorySpanExporter
) -> None:
    n = MAX_STEP_SPANS + 50
    steps: list[tuple[str, str, str, str | None]] = [
        ("create", "ipvs_dest", f"d{i}", "ENOMEM" if i >= n - 3 else None) for i in range(n)
    ]
    tracing.reconcile_pass("error", T0, 1.0, n - 3, steps)

    spans = exporter.get_finished_spans()
    (parent,) = [s for s in spans if s.name == "reconciler.reconcile"]
    children = [s for s in spans if s.name == "reconciler.reconcile.step"]
    assert len(children) == MAX_STEP_SPANS
    assert (parent.attributes or {})["reconciler.reconcile.untraced_steps"] == 50
    assert (parent.attributes or {})["reconciler.reconcile.failed_steps"] == 3
    indices = sorted(int(str((c.attributes or {})["reconciler.step.index"])) for c in children)
    # All three failures (the last steps), then the first steps in plan order.
    assert indices == [*range(MAX_STEP_SPANS - 3), n - 3, n - 2, n - 1]


# ---------------------------------------------------------------- reload
def test_reload_ok(tracing: Tracing, exporter: InMemorySpanExporter) -> None:
    tracing.reload("abc123", True, None, ["vrrp/web", "vrrp/db"], T0)

    span = only(exporter.get_finished_spans())
    assert span.name == "reconciler.reload"
    assert_root(span)
    assert dict(span.attributes or {}) == {
        "reconciler.revision": "abc123",
        "reconciler.reload.ok": True,
        "reconciler.reload.restarted": ("vrrp/web", "vrrp/db"),
    }
    assert span.start_time == span.end_time == T0_NS
    assert span.status.status_code is StatusCode.UNSET


def test_reload_refused(tracing: Tracing, exporter: InMemorySpanExporter) -> None:
    tracing.reload("def456", False, "c.yaml:3:5: bad vrid", [], T0)

    span = only(exporter.get_finished_spans())
    assert dict(span.attributes or {}) == {
        "reconciler.revision": "def456",
        "reconciler.reload.ok": False,
        "reconciler.reload.restarted": (),
        "reconciler.reload.error": "c.yaml:3:5: bad vrid",
    }
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "c.yaml:3:5: bad vrid"


# ------------------------------------------------------------ properties
def test_every_call_is_its_own_trace_even_under_an_ambient_span(
    tracing: Tracing, exporter: InMemorySpanExporter
) -> None:
    other = TracerProvider(shutdown_on_exit=False).get_tracer("test")
    with other.start_as_current_span("ambient"):
        tracing.vrrp_transition("web", 51, "eth0", "INITIALIZE", "BACKUP", "startup", 100, T0)
        tracing.vrrp_transition("web", 51, "eth0", "BACKUP", "MASTER", "master_down", 100, T0)
    a, b = exporter.get_finished_spans()
    assert a.parent is None and b.parent is None
    assert a.context is not None and b.context is not None
    assert a.context.trace_id != b.context.trace_id


def test_the_global_tracer_provider_is_left_alone(tracing: Tracing) -> None:
    tracing.reload("r", True, None, [], T0)
    assert not isinstance(trace.get_tracer_provider(), TracerProvider)


def test_no_provider_means_no_spans_and_no_errors() -> None:
    off = Tracing(None)
    assert not off.enabled
    off.vrrp_transition("web", 51, "eth0", "BACKUP", "MASTER", "master_down", 150, T0)
    off.failover("web", 51, T0, T0 + 1, "master_down")
    off.check_transition("nginx", "t", "up", "down", "r", T0)
    off.reconcile_pass("error", T0, 1.0, 0, [("create", "k", "x", "boom")])
    off.reload("r", False, "e", [], math.nan)
    off.shutdown()
    off.shutdown()


def test_bad_values_cost_the_span_not_the_caller(
    tracing: Tracing, exporter: InMemorySpanExporter, caplog: pytest.LogCaptureFixture
) -> None:
    assert tracing.enabled
    with caplog.at_level(logging.DEBUG, logger="reconciler.observability.tracing"):
        tracing.vrrp_transition("web", 51, "eth0", "BACKUP", "MASTER", "x", 1, math.nan)
        tracing.vrrp_transition("web", 51, "eth0", "BACKUP", "MASTER", "x", 1, math.inf)
    assert exporter.get_finished_spans() == ()
    levels = [r.levelno for r in caplog.records if "vrrp_transition dropped" in r.message]
    assert levels == [logging.WARNING, logging.DEBUG]  # warned once, then quietly
    tracing.vrrp_transition("web", 51, "eth0", "BACKUP", "MASTER", "x", 1, T0)
    assert len(exporter.get_finished_spans()) == 1


# -------------------------------------------------------------- shutdown
def test_shutdown_flushes_batched_spans_and_ends_tracing() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=ALWAYS_ON, shutdown_on_exit=False)
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=60_000))
    t = Tracing(provider)
    t.check_transition("nginx", "t", "down", "up", "2 successes", T0)
    assert exporter.get_finished_spans() == ()  # still in the batch
    t.shutdown()
    assert [s.name for s in exporter.get_finished_spans()] == ["reconciler.check.transition"]
    assert not t.enabled
    t.check_transition("nginx", "t", "up", "down", "3 failures", T0)  # after: a no-op
    t.shutdown()  # twice: a no-op


class _StuckExporter(SpanExporter):
    """An exporter whose export hangs, like a collector that accepts and never answers."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.entered = threading.Event()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.entered.set()
        self.release.wait(30)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        self.release.set()


def test_shutdown_is_bounded(caplog: pytest.LogCaptureFixture) -> None:
    exporter = _StuckExporter()
    provider = TracerProvider(sampler=ALWAYS_ON, shutdown_on_exit=False)
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=60_000))
    t = Tracing(provider)
    t.reload("r", True, None, [], T0)
    try:
        started = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="reconciler.observability.tracing"):
            t.shutdown(timeout_s=0.3)
        took = time.monotonic() - started
        assert exporter.entered.is_set()
        assert 0.3 <= took < 2.0
        assert any("dropped" in r.message for r in caplog.records)
    finally:
        exporter.release.set()  # let the abandoned SDK thread finish


# ---------------------------------------------------------- environment
def _exporter_of(provider: TracerProvider) -> OTLPSpanExporter:
    processors = provider._active_span_processor._span_processors
    assert len(processors) == 1
    (processor,) = processors
    assert isinstance(processor, BatchSpanProcessor)
    exporter = processor.span_exporter
    assert isinstance(exporter, OTLPSpanExporter)
    return exporter


def _build(monkeypatch: pytest.MonkeyPatch, **env: str) -> TracerProvider | None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return tracer_provider_from_env("reconciler", "lb1", "edge")


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"OTEL_EXPORTER_OTLP_ENDPOINT": ""},
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_EXPORTER": "none"},
        {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318", "OTEL_TRACES_EXPORTER": "NONE"},
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_EXPORTER": "otlp,none"},
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_EXPORTER": "console"},
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "true"},
        {"OTEL_TRACES_EXPORTER": "otlp"},  # asked for, but nowhere to send
    ],
    ids=["unset", "empty", "none", "NONE", "list-with-none", "console", "sdk-disabled", "no-url"],
)
def test_tracing_is_off_unless_the_environment_asks(
    clean_env: pytest.MonkeyPatch, env: dict[str, str]
) -> None:
    assert _build(clean_env, **env) is None


def test_provider_from_the_generic_endpoint(clean_env: pytest.MonkeyPatch) -> None:
    provider = _build(clean_env, OTEL_EXPORTER_OTLP_ENDPOINT="http://collector:4318/")
    assert provider is not None
    try:
        assert _exporter_of(provider)._endpoint == "http://collector:4318/v1/traces"
        attrs = dict(provider.resource.attributes)
        assert attrs["service.name"] == "reconciler"
        assert attrs["service.version"] == __version__
        assert attrs["reconciler.node"] == "lb1"
        assert attrs["reconciler.cluster"] == "edge"
        assert isinstance(attrs["host.name"], str) and attrs["host.name"]
    finally:
        Tracing(provider).shutdown()


def test_traces_endpoint_is_used_as_given(clean_env: pytest.MonkeyPatch) -> None:
    provider = _build(
        clean_env,
        OTEL_EXPORTER_OTLP_ENDPOINT="http://generic:4318",
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT="https://traces.example:443/otlp/spans",
        OTEL_TRACES_EXPORTER="otlp",
    )
    assert provider is not None
    try:
        assert _exporter_of(provider)._endpoint == "https://traces.example:443/otlp/spans"
    finally:
        Tracing(provider).shutdown()


def test_environment_resource_wins_except_for_our_facts(clean_env: pytest.MonkeyPatch) -> None:
    provider = _build(
        clean_env,
        OTEL_EXPORTER_OTLP_ENDPOINT="http://collector:4318",
        OTEL_SERVICE_NAME="lb-edge",
        OTEL_RESOURCE_ATTRIBUTES=(
            "host.name=lb1.example,deployment.environment=prod,"
            "reconciler.node=other,service.version=9.9"
        ),
    )
    assert provider is not None
    try:
        attrs = dict(provider.resource.attributes)
        assert attrs["service.name"] == "lb-edge"
        assert attrs["host.name"] == "lb1.example"
        assert attrs["deployment.environment"] == "prod"
        assert attrs["reconciler.node"] == "lb1"
        assert attrs["service.version"] == __version__
    finally:
        Tracing(provider).shutdown()


def test_unsupported_protocol_is_warned_about(
    clean_env: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="reconciler.observability.tracing"):
        provider = _build(
            clean_env,
            OTEL_EXPORTER_OTLP_ENDPOINT="http://collector:4317",
            OTEL_EXPORTER_OTLP_PROTOCOL="grpc",
        )
    assert provider is not None
    Tracing(provider).shutdown()
    assert any("'grpc' is not supported" in r.message for r in caplog.records)
