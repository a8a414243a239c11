"""OpenTelemetry spans for elections, health checks, failovers, reconcile passes and reloads.

The runtime calls :class:`Tracing` with plain values after the fact (what moved,
when, why); nothing here returns anything the runtime acts on, and no method
raises. The tracer provider is injected: :func:`tracer_provider_from_env` builds
the daemon's from the standard ``OTEL_*`` environment, tests pass a fresh SDK
provider with an in-memory exporter, and ``None`` turns every method into a
check of one attribute (tracing off, no cost).

Every call makes its own trace (a root span: the runtime has no ambient span to
parent under, and an election should not be glued to whatever ran before it).
Times are wall-clock Unix seconds supplied by the caller, so a span shows when
the thing happened, not when it was reported.

Spans (all ``SpanKind.INTERNAL``, instrumentation scope ``reconciler``):

``vrrp.transition``
    One per VRRP state change; zero length at ``at_unix_s``. Attributes:
    ``vrrp.instance`` (str), ``vrrp.vrid`` (int), ``vrrp.interface`` (str),
    ``vrrp.from_state`` and ``vrrp.to_state`` (INITIALIZE | BACKUP | MASTER |
    FAULT, as given), ``vrrp.reason`` (str), ``vrrp.priority`` (int: the
    priority the instance advertises at the transition). It carries one event,
    ``vrrp.state_change``, at the same instant with ``vrrp.from_state``,
    ``vrrp.to_state`` and ``vrrp.reason``, for backends that show events as a
    log line on the timeline. Status unset: FAULT is a state, not a failure of
    this code.

``vrrp.failover``
    From ``started_unix_s`` (e.g. the master-down timer starting) to
    ``ended_unix_s`` (this node master): the span's duration is the measured
    failover. Attributes: ``vrrp.instance``, ``vrrp.vrid``,
    ``vrrp.failover.kind`` (str, as given). An end before the start is clamped
    to the start.

``reconciler.check.transition``
    One per health-check state change; zero length at ``at_unix_s``.
    Attributes: ``reconciler.check.name``, ``reconciler.check.target``,
    ``reconciler.check.from_state``, ``reconciler.check.to_state`` (up | down |
    unknown, as given), ``reconciler.check.reason`` (all str). Status unset: a
    failing probe is the check working.

``reconciler.reconcile``
    One per reconcile pass that had steps or failed. A converged pass (outcome
    ``converged`` and no steps) is NOT traced: the loop runs one every resync
    interval and they would bury the passes that changed something. From
    ``started_unix_s`` for ``duration_s``. Attributes:
    ``reconciler.reconcile.outcome`` (str), ``reconciler.reconcile.writes``
    (int), ``reconciler.reconcile.steps`` (int, all steps),
    ``reconciler.reconcile.failed_steps`` (int), and
    ``reconciler.reconcile.untraced_steps`` (int, only when some steps got no
    child span, see below). Status ERROR when the outcome is ``error`` or a step
    failed, with a description naming the first error.

``reconciler.reconcile.step``
    Child of ``reconciler.reconcile``, one per step ``(action, kind, key,
    error)``. The loop does not time steps one by one, so step spans are zero
    length at the pass's start; ``reconciler.step.index`` (int) keeps the plan
    order that equal timestamps lose. Attributes: ``reconciler.step.index``,
    ``reconciler.step.action``, ``reconciler.step.kind``,
    ``reconciler.step.key``, and ``reconciler.step.error`` only when it failed
    (then status ERROR with the error as description). At most
    ``MAX_STEP_SPANS`` per pass, failed steps first: a first pass programming
    thousands of real servers would otherwise fill the exporter's queue and
    push out the failover spans that matter.

``reconciler.reload``
    One per reload of the desired state; zero length at ``at_unix_s``.
    Attributes: ``reconciler.revision`` (str: the revision the reload read),
    ``reconciler.reload.ok`` (bool), ``reconciler.reload.restarted`` (str
    array: what the reload restarted, possibly empty), and
    ``reconciler.reload.error`` only when given. Status ERROR when not ok.

Resource (see :func:`tracer_provider_from_env`): ``service.name``,
``service.version``, ``host.name``, ``reconciler.node``, ``reconciler.cluster``.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import threading
from collections.abc import Iterator, Sequence

from opentelemetry.context import Context
from opentelemetry.environment_variables import OTEL_TRACES_EXPORTER
from opentelemetry.sdk.environment_variables import (
    OTEL_EXPORTER_OTLP_ENDPOINT,
    OTEL_EXPORTER_OTLP_PROTOCOL,
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT,
    OTEL_EXPORTER_OTLP_TRACES_PROTOCOL,
    OTEL_SDK_DISABLED,
)
from opentelemetry.sdk.resources import (
    HOST_NAME,
    SERVICE_NAME,
    SERVICE_VERSION,
    OTELResourceDetector,
    Resource,
)
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Span, Status, StatusCode, Tracer, set_span_in_context

from reconciler import __version__

log = logging.getLogger(__name__)

# Span names.
SPAN_VRRP_TRANSITION = "vrrp.transition"
SPAN_FAILOVER = "vrrp.failover"
SPAN_CHECK_TRANSITION = "reconciler.check.transition"
SPAN_RECONCILE = "reconciler.reconcile"
SPAN_RECONCILE_STEP = "reconciler.reconcile.step"
SPAN_RELOAD = "reconciler.reload"
EVENT_VRRP_STATE_CHANGE = "vrrp.state_change"

# Resource attributes of our own (the others are OpenTelemetry's semantic conventions).
RESOURCE_NODE = "reconciler.node"
RESOURCE_CLUSTER = "reconciler.cluster"

MAX_STEP_SPANS = 200
DEFAULT_SHUTDOWN_TIMEOUT_S = 5.0


def tracer_provider_from_env(service_name: str, node: str, cluster: str) -> TracerProvider | None:
    """The daemon's tracer provider, or None when the environment does not ask for traces.

    Traces are on when ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` or
    ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set (non-empty) and ``OTEL_TRACES_EXPORTER``
    (default ``otlp``) names ``otlp``; ``none`` there, or ``OTEL_SDK_DISABLED=true``,
    turns them off. Spans go through a ``BatchSpanProcessor`` (``OTEL_BSP_*``) to the
    SDK's OTLP/HTTP protobuf exporter, which reads the endpoint, headers, timeout,
    compression and certificates (``OTEL_EXPORTER_OTLP[_TRACES]_*``) itself; the
    provider reads the sampler (``OTEL_TRACES_SAMPLER[_ARG]``) and span limits.

    The resource has ``service.name`` (``OTEL_SERVICE_NAME`` or ``service.name`` in
    ``OTEL_RESOURCE_ATTRIBUTES`` win, as an operator expects), ``host.name`` (this
    host's name unless the environment sets one), and, whatever the environment says,
    ``service.version`` and ``reconciler.node`` / ``reconciler.cluster``: those are
    facts of this process, and dashboards join on them.

    A misconfigured exporter is logged and leaves tracing off rather than stopping
    the daemon. The provider is not shut down at interpreter exit (the SDK's exit
    hook can block for tens of seconds against a dead collector); whoever owns it
    calls :meth:`Tracing.shutdown`, which is bounded.
    """
    env = os.environ
    if env.get(OTEL_SDK_DISABLED, "").strip().lower() == "true":
        return None
    endpoint = (
        env.get(OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, "").strip()
        or env.get(OTEL_EXPORTER_OTLP_ENDPOINT, "").strip()
    )
    if not endpoint:
        return None
    exporters = [
        e.strip().lower() for e in env.get(OTEL_TRACES_EXPORTER, "").split(",") if e.strip()
    ] or ["otlp"]
    if "none" in exporters:
        return None
    if "otlp" not in exporters:
        # An endpoint is set but the operator asked for another exporter: sending
        # to the endpoint anyway would be a surprise, so stay off and say why.
        log.warning(
            "tracing off: %s=%s, and only the otlp exporter is supported",
            OTEL_TRACES_EXPORTER,
            ",".join(exporters),
        )
        return None
    if ignored := sorted(set(exporters) - {"otlp"}):
        log.warning("tracing: exporters %s are not supported; using otlp", ",".join(ignored))
    protocol = (
        env.get(OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, "").strip()
        or env.get(OTEL_EXPORTER_OTLP_PROTOCOL, "").strip()
        or "http/protobuf"
    )
    if protocol.lower() != "http/protobuf":
        log.warning(
            "tracing: OTLP protocol %r is not supported; exporting http/protobuf to %s",
            protocol,
            endpoint,
        )

    defaults = {SERVICE_NAME: service_name, HOST_NAME: os.uname().nodename}
    facts = {SERVICE_VERSION: __version__, RESOURCE_NODE: node, RESOURCE_CLUSTER: cluster}
    # Resource.create puts its argument over the environment's attributes, so the
    # environment's are folded into the argument between our defaults and our facts.
    from_env = dict(OTELResourceDetector().detect().attributes)
    try:
        provider = TracerProvider(
            resource=Resource.create({**defaults, **from_env, **facts}),
            shutdown_on_exit=False,
        )
        # Imported only when tracing is on: the exporter and its protobuf code cost a
        # node that does not trace several MB and a tenth of a second at start.
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # noqa: PLC0415
            OTLPSpanExporter,
        )

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    except Exception:
        log.exception("tracing off: cannot build the OTLP exporter from the environment")
        return None
    log.info("tracing: exporting spans over OTLP/HTTP to %s", endpoint)
    return provider


def _ns(unix_s: float) -> int:
    """Unix seconds to the nanoseconds OpenTelemetry wants, without float noise.

    ``int(t * 1e9)`` rounds to a multiple of 256 ns for present-day times, which
    turns a caller's ``.25`` into ``...249999872``; the whole seconds and the
    fraction are converted apart so round values stay round.
    """
    whole = math.floor(unix_s)
    return whole * 1_000_000_000 + round((unix_s - whole) * 1e9)


class Tracing:
    """Turns runtime events into spans on an injected provider (None: all no-ops)."""

    def __init__(self, provider: TracerProvider | None) -> None:
        self._provider = provider
        self._tracer: Tracer | None = (
            None if provider is None else provider.get_tracer("reconciler", __version__)
        )
        self._warned: set[str] = set()

    @property
    def enabled(self) -> bool:
        """False when spans go nowhere, so a caller can skip building their arguments."""
        return self._tracer is not None

    # ---------------------------------------------------------------- VRRP
    def vrrp_transition(
        self,
        instance: str,
        vrid: int,
        interface: str,
        from_state: str,
        to_state: str,
        reason: str,
        priority: int,
        at_unix_s: float,
    ) -> None:
        tracer = self._tracer
        if tracer is None:
            return
        with self._never_raise("vrrp_transition"):
            at = _ns(at_unix_s)
            span = tracer.start_span(
                SPAN_VRRP_TRANSITION,
                context=Context(),
                start_time=at,
                attributes={
                    "vrrp.instance": instance,
                    "vrrp.vrid": vrid,
                    "vrrp.interface": interface,
                    "vrrp.from_state": from_state,
                    "vrrp.to_state": to_state,
                    "vrrp.reason": reason,
                    "vrrp.priority": priority,
                },
            )
            span.add_event(
                EVENT_VRRP_STATE_CHANGE,
                {"vrrp.from_state": from_state, "vrrp.to_state": to_state, "vrrp.reason": reason},
                timestamp=at,
            )
            span.end(end_time=at)

    def failover(
        self, instance: str, vrid: int, started_unix_s: float, ended_unix_s: float, kind: str
    ) -> None:
        tracer = self._tracer
        if tracer is None:
            return
        with self._never_raise("failover"):
            start = _ns(started_unix_s)
            span = tracer.start_span(
                SPAN_FAILOVER,
                context=Context(),
                start_time=start,
                attributes={
                    "vrrp.instance": instance,
                    "vrrp.vrid": vrid,
                    "vrrp.failover.kind": kind,
                },
            )
            # A wall clock stepped backwards mid-failover must not make a negative span.
            span.end(end_time=max(start, _ns(ended_unix_s)))

    # -------------------------------------------------------------- checks
    def check_transition(
        self, check: str, target: str, old: str, new: str, reason: str, at_unix_s: float
    ) -> None:
        tracer = self._tracer
        if tracer is None:
            return
        with self._never_raise("check_transition"):
            at = _ns(at_unix_s)
            span = tracer.start_span(
                SPAN_CHECK_TRANSITION,
                context=Context(),
                start_time=at,
                attributes={
                    "reconciler.check.name": check,
                    "reconciler.check.target": target,
                    "reconciler.check.from_state": old,
                    "reconciler.check.to_state": new,
                    "reconciler.check.reason": reason,
                },
            )
            span.end(end_time=at)

    # ----------------------------------------------------------- reconcile
    def reconcile_pass(
        self,
        outcome: str,
        started_unix_s: float,
        duration_s: float,
        writes: int,
        steps: list[tuple[str, str, str, str | None]],
    ) -> None:
        """A pass and its steps ``(action, kind, key, error)``; converged passes are skipped."""
        tracer = self._tracer
        if tracer is None or (outcome == "converged" and not steps):
            return
        with self._never_raise("reconcile_pass"):
            start = _ns(started_unix_s)
            end = start + max(0, round(duration_s * 1e9))
            failed = [i for i, step in enumerate(steps) if step[3] is not None]
            # Failed steps first, then the others in plan order, up to the cap.
            ok = (i for i, step in enumerate(steps) if step[3] is None)
            traced = sorted([*failed, *ok][:MAX_STEP_SPANS])
            attributes: dict[str, str | int] = {
                "reconciler.reconcile.outcome": outcome,
                "reconciler.reconcile.writes": writes,
                "reconciler.reconcile.steps": len(steps),
                "reconciler.reconcile.failed_steps": len(failed),
            }
            if len(traced) < len(steps):
                attributes["reconciler.reconcile.untraced_steps"] = len(steps) - len(traced)
            parent = tracer.start_span(
                SPAN_RECONCILE, context=Context(), start_time=start, attributes=attributes
            )
            if failed:
                first = steps[failed[0]]
                parent.set_status(
                    Status(
                        StatusCode.ERROR,
                        f"{len(failed)} of {len(steps)} steps failed; first: "
                        f"{first[0]} {first[1]} {first[2]}: {first[3]}",
                    )
                )
            elif outcome == "error":
                parent.set_status(Status(StatusCode.ERROR, "reconcile pass failed"))
            under = set_span_in_context(parent, Context())
            for i in traced:
                self._step(tracer, under, i, steps[i], start)
            parent.end(end_time=end)

    @staticmethod
    def _step(
        tracer: Tracer,
        parent: Context,
        index: int,
        step: tuple[str, str, str, str | None],
        at: int,
    ) -> None:
        action, kind, key, error = step
        attributes: dict[str, str | int] = {
            "reconciler.step.index": index,
            "reconciler.step.action": action,
            "reconciler.step.kind": kind,
            "reconciler.step.key": key,
        }
        if error is not None:
            attributes["reconciler.step.error"] = error
        span: Span = tracer.start_span(
            SPAN_RECONCILE_STEP, context=parent, start_time=at, attributes=attributes
        )
        if error is not None:
            span.set_status(Status(StatusCode.ERROR, error))
        span.end(end_time=at)

    # -------------------------------------------------------------- reload
    def reload(
        self,
        revision: str,
        ok: bool,
        error: str | None,
        restarted: list[str],
        at_unix_s: float,
    ) -> None:
        tracer = self._tracer
        if tracer is None:
            return
        with self._never_raise("reload"):
            at = _ns(at_unix_s)
            attributes: dict[str, str | bool | Sequence[str]] = {
                "reconciler.revision": revision,
                "reconciler.reload.ok": ok,
                "reconciler.reload.restarted": tuple(restarted),
            }
            if error is not None:
                attributes["reconciler.reload.error"] = error
            span = tracer.start_span(
                SPAN_RELOAD, context=Context(), start_time=at, attributes=attributes
            )
            if not ok:
                span.set_status(Status(StatusCode.ERROR, error or "reload refused"))
            span.end(end_time=at)

    # ------------------------------------------------------------ shutdown
    def shutdown(self, timeout_s: float = DEFAULT_SHUTDOWN_TIMEOUT_S) -> None:
        """Export what is buffered and shut the provider down, waiting at most ``timeout_s``.

        The SDK's own shutdown waits up to 30 s for its worker and then for an
        export that retries until the exporter's timeout; a node being stopped
        cannot wait on a dead collector, so the SDK's shutdown runs in a daemon
        thread and is abandoned (spans dropped, logged) when it overruns. Later
        calls, and every method after this one, are no-ops.
        """
        provider, self._provider, self._tracer = self._provider, None, None
        if provider is None:
            return

        def run() -> None:
            try:
                provider.shutdown()
            except Exception:
                log.exception("tracing: shutting the tracer provider down failed")

        worker = threading.Thread(target=run, name="tracing-shutdown", daemon=True)
        worker.start()
        worker.join(timeout_s)
        if worker.is_alive():
            log.warning(
                "tracing: spans not exported within %.1fs of shutdown are dropped", timeout_s
            )

    @contextlib.contextmanager
    def _never_raise(self, method: str) -> Iterator[None]:
        """Tracing must never break the runtime that calls it: a bad value (a NaN time,
        say) costs that span, logged once per method at WARNING and then at DEBUG."""
        try:
            yield
        except Exception:
            level = logging.DEBUG if method in self._warned else logging.WARNING
            self._warned.add(method)
            log.log(level, "tracing: %s dropped", method, exc_info=True)
