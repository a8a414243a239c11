"""Every Prometheus metric of the daemon, in one place.

Metrics are computed at scrape time from a status snapshot (a custom
collector), so the runtime keeps plain counters and never calls a metrics
library. Label sets are bounded: instance names come from the desired state,
reasons from enums.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

from reconciler import __version__
from reconciler.observability.status import ReconcileStatus, StatusSource
from reconciler.revision.gate import GateStatus
from reconciler.revision.git_policy import GitSourceStatus

PREFIX = "reconciler_"


class NodeCollector(Collector):
    def __init__(self, source: StatusSource) -> None:
        self.source = source

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily | InfoMetricFamily]:
        st = self.source.status()
        labels = ["vrrp_instance", "vrid", "interface"]

        def g(name: str, doc: str, extra: list[str] | None = None) -> GaugeMetricFamily:
            return GaugeMetricFamily(PREFIX + name, doc, labels=labels + (extra or []))

        def c(name: str, doc: str, extra: list[str] | None = None) -> CounterMetricFamily:
            return CounterMetricFamily(PREFIX + name, doc, labels=labels + (extra or []))

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
            ["tracker"],
        )
        rx = c("vrrp_adverts_received", "Adverts for this instance that reached it.")
        tx = c("vrrp_adverts_sent", "Adverts sent by this instance.")
        bad = c(
            "vrrp_adverts_invalid",
            "Adverts refused by the RFC 5798 7.1 checks, by reason.",
            ["reason"],
        )
        mismatch = c(
            "vrrp_adverts_address_mismatch",
            "Adverts elected on although their VIP list differs from ours (a peer that has "
            "not yet, or already, applied a VIP change; RFC 5798 7.1 makes the check a MAY).",
        )
        moves = c(
            "vrrp_transitions",
            "State transitions by from, to and reason.",
            ["from", "to", "reason"],
        )
        for i in st.instances:
            key = [i.name, str(i.vrid), i.interface]
            state.add_metric(key, i.state_code)
            prio.add_metric(key, i.priority)
            eff.add_metric(key, i.effective_priority)
            fault.add_metric(key, len(i.faults))
            for tracker in i.trackers:
                track.add_metric([*key, tracker.name], tracker.contribution)
            if i.last_transition_unix_s is not None:
                last.add_metric(key, i.last_transition_unix_s)
            rx.add_metric(key, i.adverts_received)
            tx.add_metric(key, i.adverts_sent)
            mismatch.add_metric(key, i.address_mismatch)
            for reason, n in sorted(i.refused.items()):
                bad.add_metric([*key, reason], n)
            for (frm, to, why), n in sorted(i.transitions.items()):
                moves.add_metric([*key, frm.lower(), to.lower(), why], n)
        yield from (state, prio, eff, last, fault, track, rx, tx, bad, mismatch, moves)

        malformed = CounterMetricFamily(
            PREFIX + "vrrp_packets_malformed",
            "Packets on a VRRP socket that could not be decoded, by reason.",
            labels=["interface", "family", "reason"],
        )
        foreign = CounterMetricFamily(
            PREFIX + "vrrp_packets_unknown_vrid",
            "Well-formed adverts for a VRID this node does not run.",
            labels=["interface", "family"],
        )
        read = CounterMetricFamily(
            PREFIX + "vrrp_packets_read",
            "Packets read from a VRRP socket in user space (repeats the kernel's repeat "
            "filter dropped are not read, and count only as adverts received).",
            labels=["interface", "family"],
        )
        offload = GaugeMetricFamily(
            PREFIX + "vrrp_repeat_filter",
            "1 when the kernel drops the masters' repeated adverts on this socket (they "
            "still count as received), 0 when every advert is read in user space.",
            labels=["interface", "family"],
        )
        for s in st.sockets:
            for reason, n in sorted(s.malformed.items()):
                malformed.add_metric([s.interface, s.family, reason], n)
            foreign.add_metric([s.interface, s.family], s.unknown_vrid)
            read.add_metric([s.interface, s.family], s.read)
            offload.add_metric([s.interface, s.family], 1 if s.repeat_filter else 0)
        yield from (malformed, foreign, read, offload)

        up = GaugeMetricFamily(
            PREFIX + "check_up",
            "Health check state: 1 up, 0 down, -1 unknown (no result yet).",
            labels=["check", "target"],
        )
        probes = CounterMetricFamily(
            PREFIX + "check_probes", "Probe attempts finished.", labels=["check", "target"]
        )
        failed = CounterMetricFamily(
            PREFIX + "check_probe_failures",
            "Probe attempts that failed.",
            labels=["check", "target"],
        )
        seconds = CounterMetricFamily(
            PREFIX + "check_probe_duration_seconds",
            "Time spent in probes (with _total: divide by check_probes for the mean).",
            labels=["check", "target"],
        )
        late = GaugeMetricFamily(
            PREFIX + "check_schedule_lateness_seconds_max",
            "Worst delay of a probe's start against its schedule.",
            labels=["check", "target"],
        )
        for ck in st.checks:
            key = [ck.check, ck.target]
            up.add_metric(key, {"up": 1, "down": 0}.get(ck.state, -1))
            probes.add_metric(key, ck.probes)
            failed.add_metric(key, ck.probe_failures)
            seconds.add_metric(key, ck.probe_seconds_sum)
            late.add_metric(key, ck.probe_lateness_seconds_max)
        yield from (up, probes, failed, seconds, late)

        if st.reconcile is not None:
            yield from _reconcile_metrics(st.reconcile)

        info = InfoMetricFamily(
            PREFIX + "desired_state",
            "The desired state this node runs: revision (sha256 of the file, shortened) and "
            "the commit it came from ('' when unknown).",
            labels=["revision", "commit"],
        )
        info.add_metric(
            [st.revision, st.commit or ""],
            {"cluster": st.cluster, "node": st.node, "file": st.file},
        )
        yield info
        if st.revisions is not None:
            yield from _revision_metrics(st.revisions)
        if st.git is not None:
            yield from _git_metrics(st.git)
        applied = GaugeMetricFamily(
            PREFIX + "desired_state_applied_timestamp_seconds",
            "Unix time the running revision was applied.",
        )
        applied.add_metric([], st.applied_unix_s)
        yield applied
        reloads = CounterMetricFamily(
            PREFIX + "config_reloads", "Reloads of the desired state by result.", labels=["result"]
        )
        reloads.add_metric(["ok"], st.reloads_ok)
        reloads.add_metric(["invalid"], st.reloads_failed)
        yield reloads
        last = GaugeMetricFamily(
            PREFIX + "config_last_reload_successful",
            "0 while the latest reload was refused (the node runs an older revision), else 1.",
        )
        last.add_metric([], 0 if st.last_reload_error else 1)
        yield last
        build = InfoMetricFamily(PREFIX + "build", "Version of the running daemon.")
        build.add_metric([], {"version": __version__})
        yield build


def _reconcile_metrics(
    rc: ReconcileStatus,
) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
    passes = CounterMetricFamily(
        PREFIX + "reconcile", "Reconcile passes by result.", labels=["result"]
    )
    for result, n in sorted(rc.passes.items()):
        passes.add_metric([result], n)
    writes = CounterMetricFamily(PREFIX + "reconcile_writes", "Kernel writes made by reconcile.")
    writes.add_metric([], rc.writes)
    duration = GaugeMetricFamily(
        PREFIX + "reconcile_duration_seconds", "Duration of the last reconcile pass."
    )
    duration.add_metric([], rc.last_duration_s)
    conflicts = GaugeMetricFamily(
        PREFIX + "reconcile_conflicts", "Objects wanted here that someone else owns."
    )
    conflicts.add_metric([], len(rc.conflicts))
    draining = GaugeMetricFamily(
        PREFIX + "ipvs_real_servers_draining", "Removed real servers waiting for connections."
    )
    draining.add_metric([], len(rc.draining))
    ipvs_ok = GaugeMetricFamily(
        PREFIX + "ipvs_managed",
        "0 when this node has virtual services but cannot program IPVS, else 1.",
    )
    ipvs_ok.add_metric([], 0 if rc.ipvs_error and rc.ipvs_required else 1)
    weight = GaugeMetricFamily(
        PREFIX + "ipvs_real_server_weight",
        "Weight of each real server in the kernel.",
        labels=["service", "server"],
    )
    active = GaugeMetricFamily(
        PREFIX + "ipvs_connections_active",
        "Active connections per real server.",
        labels=["service", "server"],
    )
    inactive = GaugeMetricFamily(
        PREFIX + "ipvs_connections_inactive",
        "Inactive connections per real server.",
        labels=["service", "server"],
    )
    for r in rc.real_servers:
        weight.add_metric([r.service, r.server], r.weight)
        active.add_metric([r.service, r.server], r.active_connections)
        inactive.add_metric([r.service, r.server], r.inactive_connections)
    yield from (passes, writes, duration, conflicts, draining, ipvs_ok, weight, active, inactive)


def _revision_metrics(gs: GateStatus) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
    if gs.attempted is not None:
        attempted = GaugeMetricFamily(
            PREFIX + "desired_state_attempted_timestamp_seconds",
            "Unix time of the latest attempt to apply a revision, whether it applied or not.",
        )
        attempted.add_metric([], gs.attempted.at_unix_s)
        yield attempted
    refused = CounterMetricFamily(
        PREFIX + "desired_state_refused",
        "Revisions not applied, by reason: refused by the source (unreadable, unsigned, "
        "...), invalid, or apply-failed.",
        labels=["reason"],
    )
    for reason, n in gs.refused.items():
        refused.add_metric([reason], n)
    yield refused
    condition = GaugeMetricFamily(
        PREFIX + "desired_state_condition",
        "Conditions of the desired state (Ready, Reconciling, Stalled): 1 true, 0 false; "
        "reason says why.",
        labels=["type", "reason"],
    )
    for c in gs.conditions:
        condition.add_metric([c.type, c.reason], 1 if c.status else 0)
    yield condition
    suspended = GaugeMetricFamily(
        PREFIX + "desired_state_suspended",
        "1 for each suspended part (part=node: the whole node; else an instance): it keeps "
        "running as it is and takes no new revision until resumed.",
        labels=["part"],
    )
    if gs.suspended:
        suspended.add_metric(["node"], 1)
    for name in gs.suspended_instances:
        suspended.add_metric([name], 1)
    yield suspended


def _git_metrics(gs: GitSourceStatus) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
    fetches = CounterMetricFamily(
        PREFIX + "git_fetches", "Fetches of the polled repository, failed ones included."
    )
    fetches.add_metric([], gs.fetches_total)
    failures = CounterMetricFamily(
        PREFIX + "git_fetch_failures",
        "Fetches of the polled repository that failed (the running revision stays).",
    )
    failures.add_metric([], gs.fetch_failures_total)
    failing = GaugeMetricFamily(
        PREFIX + "git_fetch_consecutive_failures",
        "Failed fetches in a row (0 once one succeeds); each waits twice as long, to a cap.",
    )
    failing.add_metric([], gs.consecutive_failures)
    yield from (fetches, failures, failing)
    if gs.last_fetch_unix_s is not None:
        last = GaugeMetricFamily(
            PREFIX + "git_last_fetch_timestamp_seconds",
            "Unix time of the last successful fetch of the polled repository.",
        )
        last.add_metric([], gs.last_fetch_unix_s)
        yield last


def registry_for(source: StatusSource) -> CollectorRegistry:
    """A fresh registry with the node's collector (tests make their own)."""
    registry = CollectorRegistry()
    registry.register(NodeCollector(source))
    return registry
