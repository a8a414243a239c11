"""Every Prometheus metric of the daemon, in one place.

Metrics are computed at scrape time from a status snapshot, so the runtime keeps plain
counters and never calls a metrics library. Label sets are bounded: instance names come
from the desired state, reasons from enums. How the rows become the text format, fast
enough to share the event loop's process, is observability/exposition.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from reconciler import __version__
from reconciler.observability.exposition import (
    PREFIX,
    YIELD_EVERY_INSTANCES,
    FamilyCollector,
    MetricFamily,
    NodeRegistry,
)
from reconciler.observability.status import (
    HttpStatus,
    NodeStatus,
    ReconcileStatus,
    StatusSource,
    status_reader,
)
from reconciler.revision.gate import GateStatus
from reconciler.revision.git_policy import GitSourceStatus


class NodeCollector(FamilyCollector):
    """The node's metrics, from one status snapshot per scrape."""

    def __init__(self, source: StatusSource) -> None:
        self.source = source

    def snapshot(self) -> Callable[[], NodeStatus]:
        return status_reader(self.source)

    def families(self, snapshot: Callable[[], NodeStatus]) -> Iterator[MetricFamily]:
        st = snapshot()
        yield from _instance_metrics(st)
        yield from _socket_metrics(st)
        yield from _check_metrics(st)
        if st.reconcile is not None:
            yield from _reconcile_metrics(st.reconcile)
        yield from _desired_state_metrics(st)


def _instance_metrics(st: NodeStatus) -> Iterator[MetricFamily]:
    """Each VRRP instance: state, priorities, trackers, adverts, transitions."""
    labels = ("vrrp_instance", "vrid", "interface")

    def g(name: str, doc: str, extra: tuple[str, ...] = ()) -> MetricFamily:
        return MetricFamily("gauge", PREFIX + name, doc, labels + extra)

    def c(name: str, doc: str, extra: tuple[str, ...] = ()) -> MetricFamily:
        return MetricFamily("counter", PREFIX + name, doc, labels + extra)

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


def _socket_metrics(st: NodeStatus) -> Iterator[MetricFamily]:
    """Each VRRP socket: what could not be decoded or was not ours."""
    malformed = MetricFamily(
        "counter",
        PREFIX + "vrrp_packets_malformed",
        "Packets on a VRRP socket that could not be decoded, by reason.",
        ("interface", "family", "reason"),
    )
    foreign = MetricFamily(
        "counter",
        PREFIX + "vrrp_packets_unknown_vrid",
        "Well-formed adverts for a VRID this node does not run.",
        ("interface", "family"),
    )
    read = MetricFamily(
        "counter",
        PREFIX + "vrrp_packets_read",
        "Packets read from a VRRP socket in user space (repeats the kernel's repeat "
        "filter dropped are not read, and count only as adverts received).",
        ("interface", "family"),
    )
    offload = MetricFamily(
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


def _check_metrics(st: NodeStatus) -> Iterator[MetricFamily]:
    """Each health check and target."""
    up = MetricFamily(
        "gauge",
        PREFIX + "check_up",
        "Health check state: 1 up, 0 down, -1 unknown (no result yet).",
        ("check", "target"),
    )
    probes = MetricFamily(
        "counter", PREFIX + "check_probes", "Probe attempts finished.", ("check", "target")
    )
    failed = MetricFamily(
        "counter",
        PREFIX + "check_probe_failures",
        "Probe attempts that failed.",
        ("check", "target"),
    )
    seconds = MetricFamily(
        "counter",
        PREFIX + "check_probe_duration_seconds",
        "Time spent in probes (with _total: divide by check_probes for the mean).",
        ("check", "target"),
    )
    late = MetricFamily(
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


def _desired_state_metrics(st: NodeStatus) -> Iterator[MetricFamily]:
    """The revision running, reloads, takeover errors and the build."""
    info = MetricFamily(
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
    errors = MetricFamily(
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
    applied = MetricFamily(
        "gauge",
        PREFIX + "desired_state_applied_timestamp_seconds",
        "Unix time the running revision was applied.",
    )
    applied.add_metric((), st.applied_unix_s)
    yield applied
    reloads = MetricFamily(
        "counter",
        PREFIX + "config_reloads",
        "Reloads of the desired state by result.",
        ("result",),
    )
    reloads.add_metric(("ok",), st.reloads_ok)
    reloads.add_metric(("invalid",), st.reloads_failed)
    yield reloads
    last = MetricFamily(
        "gauge",
        PREFIX + "config_last_reload_successful",
        "0 while the latest reload was refused (the node runs an older revision), else 1.",
    )
    last.add_metric((), 0 if st.last_reload_error else 1)
    yield last
    build = MetricFamily(
        "info", PREFIX + "build", "Version of the running daemon.", info=("version",)
    )
    build.add_metric((__version__,), 1)
    yield build


def _reconcile_metrics(
    rc: ReconcileStatus,
) -> Iterator[MetricFamily]:
    passes = MetricFamily(
        "counter", PREFIX + "reconcile", "Reconcile passes by result.", ("result",)
    )
    for result, n in sorted(rc.passes.items()):
        passes.add_metric((result,), n)
    writes = MetricFamily(
        "counter", PREFIX + "reconcile_writes", "Kernel writes made by reconcile."
    )
    writes.add_metric((), rc.writes)
    duration = MetricFamily(
        "gauge", PREFIX + "reconcile_duration_seconds", "Duration of the last reconcile pass."
    )
    duration.add_metric((), rc.last_duration_s)
    conflicts = MetricFamily(
        "gauge", PREFIX + "reconcile_conflicts", "Objects wanted here that someone else owns."
    )
    conflicts.add_metric((), len(rc.conflicts))
    draining = MetricFamily(
        "gauge",
        PREFIX + "ipvs_real_servers_draining",
        "Removed real servers waiting for connections.",
    )
    draining.add_metric((), len(rc.draining))
    ipvs_ok = MetricFamily(
        "gauge",
        PREFIX + "ipvs_managed",
        "0 when this node has virtual services but cannot program IPVS, else 1.",
    )
    ipvs_ok.add_metric((), 0 if rc.ipvs_error and rc.ipvs_required else 1)
    weight = MetricFamily(
        "gauge",
        PREFIX + "ipvs_real_server_weight",
        "Weight of each real server in the kernel.",
        ("service", "server"),
    )
    active = MetricFamily(
        "gauge",
        PREFIX + "ipvs_connections_active",
        "Active connections per real server.",
        ("service", "server"),
    )
    inactive = MetricFamily(
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


def _revision_metrics(gs: GateStatus) -> Iterator[MetricFamily]:
    if gs.attempted is not None:
        attempted = MetricFamily(
            "gauge",
            PREFIX + "desired_state_attempted_timestamp_seconds",
            "Unix time of the latest attempt to apply a revision, whether it applied or not.",
        )
        attempted.add_metric((), gs.attempted.at_unix_s)
        yield attempted
    refused = MetricFamily(
        "counter",
        PREFIX + "desired_state_refused",
        "Revisions not applied, by reason: refused by the source (unreadable, unsigned, "
        "...), invalid, or apply-failed.",
        ("reason",),
    )
    for reason, n in gs.refused.items():
        refused.add_metric((reason,), n)
    yield refused
    condition = MetricFamily(
        "gauge",
        PREFIX + "desired_state_condition",
        "Conditions of the desired state (Ready, Reconciling, Stalled): 1 true, 0 false; "
        "reason says why.",
        ("type", "reason"),
    )
    for c in gs.conditions:
        condition.add_metric((c.type, c.reason), 1 if c.status else 0)
    yield condition
    suspended = MetricFamily(
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


def _git_metrics(gs: GitSourceStatus) -> Iterator[MetricFamily]:
    fetches = MetricFamily(
        "counter", PREFIX + "git_fetches", "Fetches of the polled repository, failed ones included."
    )
    fetches.add_metric((), gs.fetches_total)
    failures = MetricFamily(
        "counter",
        PREFIX + "git_fetch_failures",
        "Fetches of the polled repository that failed (the running revision stays).",
    )
    failures.add_metric((), gs.fetch_failures_total)
    failing = MetricFamily(
        "gauge",
        PREFIX + "git_fetch_consecutive_failures",
        "Failed fetches in a row (0 once one succeeds); each waits twice as long, to a cap.",
    )
    failing.add_metric((), gs.consecutive_failures)
    yield from (fetches, failures, failing)
    if gs.last_fetch_unix_s is not None:
        last = MetricFamily(
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

    def families(self, snapshot: HttpStatus) -> Iterator[MetricFamily]:
        hs = snapshot
        responses = MetricFamily(
            "counter",
            PREFIX + "http_responses",
            "Responses of the status listener, by path (/metrics, /status, other).",
            ("path",),
        )
        seconds = MetricFamily(
            "counter",
            PREFIX + "http_response_loop_seconds",
            "Event-loop time spent answering, by path: from the request read to the answer "
            "handed to the socket (the loop runs nothing else meanwhile).",
            ("path",),
        )
        cpu = MetricFamily(
            "counter",
            PREFIX + "http_response_loop_cpu_seconds",
            "The event loop thread's CPU time of those answers, by path (less than the loop "
            "time when the machine is busy).",
            ("path",),
        )
        lag = MetricFamily(
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
        refused = MetricFamily(
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
