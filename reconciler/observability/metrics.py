"""Every Prometheus metric of the daemon, in one place.

Metrics are computed at scrape time from a status snapshot, so the runtime keeps plain
counters and never calls a metrics library. Label sets are bounded: instance names come
from the desired state, reasons from enums.

A scrape shares the process with the VRRP timers, so it must be cheap: at 500 instances
prometheus_client's own path (a ``Sample`` per row, labels sorted and escaped on every
scrape), all on the event loop, held it for about 120 ms (bench/scrape.py). The collectors
here describe each metric once, as a `Family` of plain rows, in two steps: a snapshot read
on the event loop, and rows made from it anywhere. `NodeRegistry.snapshot` reads them all
and returns the renderer, which the status listener runs on its own thread: it writes the
text format directly, with each row's label string and each value's text kept from one
scrape to the next, the same bytes as prometheus_client's ``generate_latest``
(tests/unit/test_metrics_exposition.py compares them). The same collectors also serve
prometheus_client's API (``collect``), which tests and other exporters use.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from prometheus_client import generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.utils import floatToGoString

from reconciler import __version__
from reconciler.observability.status import (
    HttpStatus,
    NodeStatus,
    ReconcileStatus,
    StatusSource,
    status_reader,
)
from reconciler.revision.gate import GateStatus
from reconciler.revision.git_policy import GitSourceStatus

PREFIX = "reconciler_"

# Rendering runs on a thread beside the event loop (observability/http.py), and the loop
# waits for the interpreter lock while that thread holds it (CPython takes it back after
# its switch interval, 5 ms). The renderer lets go of it every this many rows (about
# 0.1 ms of work), a chance for the loop to take it sooner.
YIELD_EVERY_ROWS = 256
YIELD_EVERY_INSTANCES = 32

FamilyKind = Literal["gauge", "counter", "info"]
Row = tuple[tuple[str, ...], float]


@dataclass(frozen=True, slots=True)
class Family:
    """One metric family of a scrape: rows of (label values, value).

    ``labels`` name the values of each row in order; an info family's rows carry the
    values of ``info`` after them (its value is 1). Rows are in exposition order.
    """

    kind: FamilyKind
    name: str  # without the _total / _info suffix the exposition adds
    doc: str
    labels: tuple[str, ...] = ()
    info: tuple[str, ...] = ()
    rows: list[Row] = field(default_factory=list)

    def add_metric(self, values: tuple[str, ...], value: float) -> None:
        self.rows.append((values, value))

    @property
    def sample_name(self) -> str:
        return self.name + {"gauge": "", "counter": "_total", "info": "_info"}[self.kind]

    def metric(self) -> GaugeMetricFamily | CounterMetricFamily | InfoMetricFamily:
        """The same family as prometheus_client's object."""
        if self.kind == "info":
            n = len(self.labels)
            info = InfoMetricFamily(self.name, self.doc, labels=self.labels)
            for values, _ in self.rows:
                info.add_metric(values[:n], dict(zip(self.info, values[n:], strict=True)))
            return info
        out: GaugeMetricFamily | CounterMetricFamily
        if self.kind == "gauge":
            out = GaugeMetricFamily(self.name, self.doc, labels=self.labels)
        else:
            out = CounterMetricFamily(self.name, self.doc, labels=self.labels)
        for values, value in self.rows:
            out.add_metric(values, value)
        return out


class FamilyCollector(Collector):
    """A collector that describes its metrics as `Family` rows, in two steps:
    ``snapshot`` reads what the metrics say, on the thread that owns it (the event loop),
    and ``families`` turns that immutable snapshot into rows, on any thread."""

    def snapshot(self) -> Any:
        raise NotImplementedError

    def families(self, snapshot: Any) -> Iterable[Family]:
        raise NotImplementedError

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily | InfoMetricFamily]:
        for f in self.families(self.snapshot()):
            yield f.metric()


class Exposition:
    """Writes families in the Prometheus text format (0.0.4), as ``generate_latest`` does.

    Between scrapes it keeps the text of each row's name and labels (sorted by label
    name, values escaped) and of each value; both are bounded by what the last scrape
    used, so reloads that rename instances do not grow them.
    """

    VALUES_MAX = 4096  # the text of values seen (the common ones come back after a clear)

    def __init__(self) -> None:
        self._prefixes: dict[str, dict[tuple[str, ...], str]] = {}
        self._values: dict[float, str] = {}

    def render(self, families: Iterable[Family]) -> list[str]:
        out: list[str] = []
        append = out.append
        values = self._values
        if len(values) > self.VALUES_MAX:
            values.clear()
        for f in families:
            name = f.sample_name
            doc = f.doc.replace("\\", r"\\").replace("\n", r"\n")
            append(f"# HELP {name} {doc}\n")
            append(f"# TYPE {name} {'gauge' if f.kind == 'info' else f.kind}\n")
            prefixes = self._prefixes.get(name)
            if prefixes is None or len(prefixes) > 2 * len(f.rows) + 16:
                prefixes = self._prefixes[name] = {}
            names = f.labels + f.info
            for n, (labels, value) in enumerate(f.rows):
                if not n % YIELD_EVERY_ROWS:
                    time.sleep(0)  # see YIELD_EVERY_ROWS
                prefix = prefixes.get(labels)
                if prefix is None:
                    prefix = prefixes[labels] = _prefix(name, names, labels)
                text = values.get(value)
                if text is None:
                    text = values[value] = str(floatToGoString(value))  # type: ignore[no-untyped-call]
                append(f"{prefix}{text}\n")
        return out


def _prefix(name: str, names: tuple[str, ...], values: Sequence[str]) -> str:
    """``name{label="value",...} `` with labels sorted by name, as prometheus_client."""
    if not names:
        return name + " "
    pairs = sorted(zip(names, values, strict=True))
    labels = ",".join(f'{k}="{_escape(v)}"' for k, v in pairs)
    return f"{name}{{{labels}}} "


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


class NodeRegistry(CollectorRegistry):
    """A registry whose `exposition` renders each `FamilyCollector` directly (any other
    collector through ``generate_latest``), in registration order as the registry does."""

    def __init__(self) -> None:
        super().__init__()
        self._ordered: list[Collector] = []
        self._exposition = Exposition()
        self._rendering = threading.Lock()  # one rendering at a time uses the caches

    def register(self, collector: Collector) -> None:
        super().register(collector)
        self._ordered.append(collector)

    def unregister(self, collector: Collector) -> None:
        super().unregister(collector)
        self._ordered.remove(collector)

    def snapshot(self) -> Callable[[], bytes]:
        """Read every collector now; the function returned writes the text format of
        what was read, on any thread (the status listener runs it off the event loop)."""
        taken: list[tuple[FamilyCollector, Any] | str] = [
            (c, c.snapshot()) if isinstance(c, FamilyCollector) else generate_latest(c).decode()
            for c in list(self._ordered)
        ]

        def render() -> bytes:
            parts: list[str] = []
            with self._rendering:
                for item in taken:
                    if isinstance(item, str):
                        parts.append(item)
                    else:
                        parts += self._exposition.render(item[0].families(item[1]))
            return "".join(parts).encode()

        return render

    def exposition(self) -> bytes:
        return self.snapshot()()


def snapshot_of(registry: CollectorRegistry) -> Callable[[], bytes]:
    """``registry`` read now; the function returned gives its text format (on any thread
    for a `NodeRegistry`; any other registry is rendered at once)."""
    if isinstance(registry, NodeRegistry):
        return registry.snapshot()
    text = generate_latest(registry)
    return lambda: text


class NodeCollector(FamilyCollector):
    """The node's metrics, from one status snapshot per scrape."""

    def __init__(self, source: StatusSource) -> None:
        self.source = source

    def snapshot(self) -> Callable[[], NodeStatus]:
        return status_reader(self.source)

    def families(self, snapshot: Callable[[], NodeStatus]) -> Iterator[Family]:
        st = snapshot()
        labels = ("vrrp_instance", "vrid", "interface")

        def g(name: str, doc: str, extra: tuple[str, ...] = ()) -> Family:
            return Family("gauge", PREFIX + name, doc, labels + extra)

        def c(name: str, doc: str, extra: tuple[str, ...] = ()) -> Family:
            return Family("counter", PREFIX + name, doc, labels + extra)

        state = g("vrrp_state", "VRRP state: 0 initialize, 1 backup, 2 master, 3 fault.")
        prio = g("vrrp_priority", "Configured VRRP priority.")
        eff = g("vrrp_effective_priority", "Priority after tracking weights; what is advertised.")
        last = g("vrrp_last_transition_timestamp_seconds", "Unix time of the last transition.")
        fault = g("vrrp_faults", "Trackers (or sync-group members) currently holding FAULT.")
        track = g(
            "vrrp_tracker_contribution",
            "What each tracker adds to the configured priority now (its weight while it "
            "applies, a file check's value x weight, else 0), before the 1..254 clamp; a "
            "tracker holding FAULT adds 0 and counts in vrrp_faults.",
            ("tracker",),
        )
        rx = c("vrrp_adverts_received", "Adverts for this instance that reached it.")
        tx = c("vrrp_adverts_sent", "Adverts sent by this instance.")
        bad = c(
            "vrrp_adverts_invalid",
            "Adverts refused by the RFC 5798 7.1 checks, by reason.",
            ("reason",),
        )
        mismatch = c(
            "vrrp_adverts_address_mismatch",
            "Adverts elected on although their VIP list differs from ours (a peer that has "
            "not yet, or already, applied a VIP change; RFC 5798 7.1 makes the check a MAY).",
        )
        moves = c(
            "vrrp_transitions",
            "State transitions by from, to and reason.",
            ("from", "to", "reason"),
        )
        # The hot loop of a scrape (hundreds of instances): rows appended directly.
        for k, i in enumerate(st.instances):
            if not k % YIELD_EVERY_INSTANCES:
                time.sleep(0)  # see YIELD_EVERY_ROWS
            key = (i.name, str(i.vrid), i.interface)
            state.rows.append((key, i.state_code))
            prio.rows.append((key, i.priority))
            eff.rows.append((key, i.effective_priority))
            fault.rows.append((key, len(i.faults)))
            for tracker in i.trackers:
                track.rows.append(((*key, tracker.name), tracker.contribution))
            if i.last_transition_unix_s is not None:
                last.rows.append((key, i.last_transition_unix_s))
            rx.rows.append((key, i.adverts_received))
            tx.rows.append((key, i.adverts_sent))
            mismatch.rows.append((key, i.address_mismatch))
            if i.refused:
                for reason, n in sorted(i.refused.items()):
                    bad.rows.append(((*key, reason), n))
            for (frm, to, why), n in sorted(i.transitions.items()):
                moves.rows.append(((*key, frm.lower(), to.lower(), why), n))
        yield from (state, prio, eff, last, fault, track, rx, tx, bad, mismatch, moves)

        malformed = Family(
            "counter",
            PREFIX + "vrrp_packets_malformed",
            "Packets on a VRRP socket that could not be decoded, by reason.",
            ("interface", "family", "reason"),
        )
        foreign = Family(
            "counter",
            PREFIX + "vrrp_packets_unknown_vrid",
            "Well-formed adverts for a VRID this node does not run.",
            ("interface", "family"),
        )
        read = Family(
            "counter",
            PREFIX + "vrrp_packets_read",
            "Packets read from a VRRP socket in user space (repeats the kernel's repeat "
            "filter dropped are not read, and count only as adverts received).",
            ("interface", "family"),
        )
        offload = Family(
            "gauge",
            PREFIX + "vrrp_repeat_filter",
            "1 when the kernel drops the masters' repeated adverts on this socket (they "
            "still count as received), 0 when every advert is read in user space.",
            ("interface", "family"),
        )
        for s in st.sockets:
            for reason, n in sorted(s.malformed.items()):
                malformed.add_metric((s.interface, s.family, reason), n)
            foreign.add_metric((s.interface, s.family), s.unknown_vrid)
            read.add_metric((s.interface, s.family), s.read)
            offload.add_metric((s.interface, s.family), 1 if s.repeat_filter else 0)
        yield from (malformed, foreign, read, offload)

        up = Family(
            "gauge",
            PREFIX + "check_up",
            "Health check state: 1 up, 0 down, -1 unknown (no result yet).",
            ("check", "target"),
        )
        probes = Family(
            "counter", PREFIX + "check_probes", "Probe attempts finished.", ("check", "target")
        )
        failed = Family(
            "counter",
            PREFIX + "check_probe_failures",
            "Probe attempts that failed.",
            ("check", "target"),
        )
        seconds = Family(
            "counter",
            PREFIX + "check_probe_duration_seconds",
            "Time spent in probes (with _total: divide by check_probes for the mean).",
            ("check", "target"),
        )
        late = Family(
            "gauge",
            PREFIX + "check_schedule_lateness_seconds_max",
            "Worst delay of a probe's start against its schedule.",
            ("check", "target"),
        )
        for ck in st.checks:
            row = (ck.check, ck.target)
            up.add_metric(row, {"up": 1, "down": 0}.get(ck.state, -1))
            probes.add_metric(row, ck.probes)
            failed.add_metric(row, ck.probe_failures)
            seconds.add_metric(row, ck.probe_seconds_sum)
            late.add_metric(row, ck.probe_lateness_seconds_max)
        yield from (up, probes, failed, seconds, late)

        if st.reconcile is not None:
            yield from _reconcile_metrics(st.reconcile)

        info = Family(
            "info",
            PREFIX + "desired_state",
            "The desired state this node runs: revision (sha256 of the file, shortened) and "
            "the commit it came from ('' when unknown).",
            ("revision", "commit"),
            info=("cluster", "node", "file"),
        )
        info.add_metric((st.revision, st.commit or "", st.cluster, st.node, st.file), 1)
        yield info
        if st.revisions is not None:
            yield from _revision_metrics(st.revisions)
        if st.git is not None:
            yield from _git_metrics(st.git)
        errors = Family(
            "counter",
            PREFIX + "vrrp_errors",
            "Failures of what a takeover does, by operation (advert_send, vip_add, "
            "vip_remove, announce, hook_start) and error (errno name); only the first of "
            "each kind is logged.",
            ("operation", "error"),
        )
        for e in st.errors:
            errors.add_metric((e.operation, e.error), e.count)
        yield errors
        applied = Family(
            "gauge",
            PREFIX + "desired_state_applied_timestamp_seconds",
            "Unix time the running revision was applied.",
        )
        applied.add_metric((), st.applied_unix_s)
        yield applied
        reloads = Family(
            "counter",
            PREFIX + "config_reloads",
            "Reloads of the desired state by result.",
            ("result",),
        )
        reloads.add_metric(("ok",), st.reloads_ok)
        reloads.add_metric(("invalid",), st.reloads_failed)
        yield reloads
        last = Family(
            "gauge",
            PREFIX + "config_last_reload_successful",
            "0 while the latest reload was refused (the node runs an older revision), else 1.",
        )
        last.add_metric((), 0 if st.last_reload_error else 1)
        yield last
        build = Family(
            "info", PREFIX + "build", "Version of the running daemon.", info=("version",)
        )
        build.add_metric((__version__,), 1)
        yield build


def _reconcile_metrics(
    rc: ReconcileStatus,
) -> Iterator[Family]:
    passes = Family("counter", PREFIX + "reconcile", "Reconcile passes by result.", ("result",))
    for result, n in sorted(rc.passes.items()):
        passes.add_metric((result,), n)
    writes = Family("counter", PREFIX + "reconcile_writes", "Kernel writes made by reconcile.")
    writes.add_metric((), rc.writes)
    duration = Family(
        "gauge", PREFIX + "reconcile_duration_seconds", "Duration of the last reconcile pass."
    )
    duration.add_metric((), rc.last_duration_s)
    conflicts = Family(
        "gauge", PREFIX + "reconcile_conflicts", "Objects wanted here that someone else owns."
    )
    conflicts.add_metric((), len(rc.conflicts))
    draining = Family(
        "gauge",
        PREFIX + "ipvs_real_servers_draining",
        "Removed real servers waiting for connections.",
    )
    draining.add_metric((), len(rc.draining))
    ipvs_ok = Family(
        "gauge",
        PREFIX + "ipvs_managed",
        "0 when this node has virtual services but cannot program IPVS, else 1.",
    )
    ipvs_ok.add_metric((), 0 if rc.ipvs_error and rc.ipvs_required else 1)
    weight = Family(
        "gauge",
        PREFIX + "ipvs_real_server_weight",
        "Weight of each real server in the kernel.",
        ("service", "server"),
    )
    active = Family(
        "gauge",
        PREFIX + "ipvs_connections_active",
        "Active connections per real server.",
        ("service", "server"),
    )
    inactive = Family(
        "gauge",
        PREFIX + "ipvs_connections_inactive",
        "Inactive connections per real server.",
        ("service", "server"),
    )
    for r in rc.real_servers:
        weight.add_metric((r.service, r.server), r.weight)
        active.add_metric((r.service, r.server), r.active_connections)
        inactive.add_metric((r.service, r.server), r.inactive_connections)
    yield from (passes, writes, duration, conflicts, draining, ipvs_ok, weight, active, inactive)


def _revision_metrics(gs: GateStatus) -> Iterator[Family]:
    if gs.attempted is not None:
        attempted = Family(
            "gauge",
            PREFIX + "desired_state_attempted_timestamp_seconds",
            "Unix time of the latest attempt to apply a revision, whether it applied or not.",
        )
        attempted.add_metric((), gs.attempted.at_unix_s)
        yield attempted
    refused = Family(
        "counter",
        PREFIX + "desired_state_refused",
        "Revisions not applied, by reason: refused by the source (unreadable, unsigned, "
        "...), invalid, or apply-failed.",
        ("reason",),
    )
    for reason, n in gs.refused.items():
        refused.add_metric((reason,), n)
    yield refused
    condition = Family(
        "gauge",
        PREFIX + "desired_state_condition",
        "Conditions of the desired state (Ready, Reconciling, Stalled): 1 true, 0 false; "
        "reason says why.",
        ("type", "reason"),
    )
    for c in gs.conditions:
        condition.add_metric((c.type, c.reason), 1 if c.status else 0)
    yield condition
    suspended = Family(
        "gauge",
        PREFIX + "desired_state_suspended",
        "1 for each suspended part (part=node: the whole node; else an instance): it keeps "
        "running as it is and takes no new revision until resumed.",
        ("part",),
    )
    if gs.suspended:
        suspended.add_metric(("node",), 1)
    for name in gs.suspended_instances:
        suspended.add_metric((name,), 1)
    yield suspended


def _git_metrics(gs: GitSourceStatus) -> Iterator[Family]:
    fetches = Family(
        "counter", PREFIX + "git_fetches", "Fetches of the polled repository, failed ones included."
    )
    fetches.add_metric((), gs.fetches_total)
    failures = Family(
        "counter",
        PREFIX + "git_fetch_failures",
        "Fetches of the polled repository that failed (the running revision stays).",
    )
    failures.add_metric((), gs.fetch_failures_total)
    failing = Family(
        "gauge",
        PREFIX + "git_fetch_consecutive_failures",
        "Failed fetches in a row (0 once one succeeds); each waits twice as long, to a cap.",
    )
    failing.add_metric((), gs.consecutive_failures)
    yield from (fetches, failures, failing)
    if gs.last_fetch_unix_s is not None:
        last = Family(
            "gauge",
            PREFIX + "git_last_fetch_timestamp_seconds",
            "Unix time of the last successful fetch of the polled repository.",
        )
        last.add_metric((), gs.last_fetch_unix_s)
        yield last


class HttpCollector(FamilyCollector):
    """The status listener's own work: what it answered, what that cost the event loop,
    and the clients it refused."""

    def __init__(self, http: Callable[[], HttpStatus]) -> None:
        self.http = http

    def snapshot(self) -> HttpStatus:
        return self.http()

    def families(self, snapshot: HttpStatus) -> Iterator[Family]:
        hs = snapshot
        responses = Family(
            "counter",
            PREFIX + "http_responses",
            "Responses of the status listener, by path (/metrics, /status, other).",
            ("path",),
        )
        seconds = Family(
            "counter",
            PREFIX + "http_response_loop_seconds",
            "Event-loop time spent answering, by path: from the request read to the answer "
            "handed to the socket (the loop runs nothing else meanwhile).",
            ("path",),
        )
        cpu = Family(
            "counter",
            PREFIX + "http_response_loop_cpu_seconds",
            "The event loop thread's CPU time of those answers, by path (less than the loop "
            "time when the machine is busy).",
            ("path",),
        )
        lag = Family(
            "counter",
            PREFIX + "http_render_loop_lag_seconds",
            "Answers are rendered off the event loop, which still waits for the interpreter "
            "lock meanwhile: the sum over answers of the worst lateness of a 1 ms loop timer "
            "during one (epoll's millisecond rounding included), by path.",
            ("path",),
        )
        for path, n in sorted(hs.responses.items()):
            responses.add_metric((path,), n)
            seconds.add_metric((path,), hs.loop_seconds.get(path, 0.0))
            cpu.add_metric((path,), hs.loop_cpu_seconds.get(path, 0.0))
            lag.add_metric((path,), hs.render_lag_seconds.get(path, 0.0))
        refused = Family(
            "counter",
            PREFIX + "http_refused",
            "Clients refused by the status listener, by reason (busy, too_large, timeout).",
            ("reason",),
        )
        for reason, n in sorted(hs.refused.items()):
            refused.add_metric((reason,), n)
        yield from (responses, seconds, cpu, lag, refused)


def registry_for(source: StatusSource) -> NodeRegistry:
    """A fresh registry with the node's collector (tests make their own)."""
    registry = NodeRegistry()
    registry.register(NodeCollector(source))
    return registry
