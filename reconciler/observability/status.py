"""Point-in-time status of a running node, as the runtime reports it.

The runtime builds these snapshots on request; metrics, the /status endpoint
and traces only read them. Nothing here steers the runtime.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from reconciler.revision.gate import GateStatus
from reconciler.revision.git_policy import GitSourceStatus


@dataclass(frozen=True)
class TrackerStatus:
    """One tracker of an instance and what it does to the effective priority now."""

    name: str  # "check nginx", "interface eth1"
    weight: int  # configured
    state: str  # up | down | unknown
    value: int | None  # file checks: the number read (None before the first read)
    contribution: int  # added to the configured priority (before the 1..254 clamp)
    fault: bool  # holds the instance in FAULT (weight 0 and down, or a file's fault value)


@dataclass(frozen=True)
class TransitionStatus:
    """An instance's last state change."""

    from_state: str  # INITIALIZE | BACKUP | MASTER | FAULT
    to_state: str
    reason: str  # vrrp.states.TransitionReason value
    unix_s: float


@dataclass(frozen=True)
class InstanceStatus:
    name: str
    vrid: int
    interface: str
    family: str  # "ipv4" | "ipv6"
    state: str  # INITIALIZE | BACKUP | MASTER | FAULT
    state_code: int  # 0 init, 1 backup, 2 master, 3 fault
    priority: int  # configured
    effective_priority: int  # after tracking weights
    master_address: str | None  # the master this backup follows
    vips: tuple[str, ...]
    last_transition_unix_s: float | None
    adverts_received: int
    adverts_sent: int
    refused: dict[str, int] = field(default_factory=dict)  # by reason
    transitions: dict[tuple[str, str, str], int] = field(default_factory=dict)  # (from,to,why)
    faults: tuple[str, ...] = ()
    sync_group: str | None = None
    # Accept_Mode in force: packets to the VIPs are accepted (false: the node drops them)
    accept_mode: bool = True
    trackers: tuple[TrackerStatus, ...] = ()  # in the order of the instance's `track`
    last_transition: TransitionStatus | None = None
    # Adverts elected on whose VIP list differs from ours (a peer mid-change, RFC 5798
    # 7.1 MAY), and revisions applied to the instance in place.
    address_mismatch: int = 0
    reconfigured: int = 0


@dataclass(frozen=True)
class SocketStatus:
    interface: str
    family: str
    malformed: dict[str, int]  # decode failures by reason
    unknown_vrid: int
    read: int = 0  # packets read in user space
    repeat_filter: bool = False  # the kernel drops the masters' repeated adverts


@dataclass(frozen=True)
class CheckStatus:
    check: str
    target: str
    state: str  # up | down | unknown
    detail: str
    probes: int  # attempts finished
    probe_failures: int
    probe_seconds_sum: float
    probe_lateness_seconds_max: float  # worst start delay against the schedule
    last_error: str | None = None  # why the last failed probe attempt failed


@dataclass(frozen=True)
class RealServerStatus:
    service: str  # tcp/192.0.2.100:80
    server: str  # 198.51.100.2:8080
    weight: int
    active_connections: int
    inactive_connections: int


@dataclass(frozen=True)
class ReconcileStatus:
    enabled: bool
    passes: dict[str, int]  # by outcome: converged, changed, error
    writes: int
    last_outcome: str | None
    last_error: str | None
    last_duration_s: float
    conflicts: tuple[str, ...]
    draining: tuple[str, ...]
    ipvs_error: str | None  # why IPVS is not managed, when it is not
    ipvs_required: bool  # the node has virtual services to program
    real_servers: tuple[RealServerStatus, ...] = ()
    sysctls: dict[str, str] = field(default_factory=dict)  # key -> outcome of the last write


@dataclass(frozen=True)
class ErrorCount:
    """Failures of one operation of the takeover path, of one kind, since start."""

    operation: str  # advert_send | vip_add | vip_remove | announce | hook_start
    error: str  # errno name (ENOBUFS), else the exception's class
    count: int


@dataclass(frozen=True)
class NodeStatus:
    node: str
    cluster: str
    file: str
    revision: str  # content hash of the running desired state
    started_unix_s: float
    applied_unix_s: float  # when the running revision was applied
    reloads_ok: int
    reloads_failed: int
    last_reload_error: str | None
    instances: tuple[InstanceStatus, ...]
    sockets: tuple[SocketStatus, ...]
    checks: tuple[CheckStatus, ...] = ()
    reconcile: ReconcileStatus | None = None
    commit: str | None = None  # the commit the running revision came from, when known
    # Last applied / attempted / verified revision, conditions, suspended parts.
    revisions: GateStatus | None = None
    # The polled repository's fetches, head and last error (run --git only).
    git: GitSourceStatus | None = None
    # What failed on the takeover path (sends, VIP writes, announcements, hook starts).
    errors: tuple[ErrorCount, ...] = ()


class StatusSource(Protocol):
    def status(self) -> NodeStatus: ...


def status_reader(source: StatusSource) -> Callable[[], NodeStatus]:
    """``source`` read now; the function returned gives its snapshot. A source with
    ``status_later`` (the node's, runtime/status_view.py) builds the snapshot in that
    function, which may run on another thread; any other is asked at once."""
    later: Callable[[], Callable[[], NodeStatus]] | None = getattr(source, "status_later", None)
    if later is not None:
        return later()
    snapshot = source.status()
    return lambda: snapshot


@dataclass(frozen=True)
class HttpStatus:
    """The status listener's answers and refusals since start."""

    responses: dict[str, int]  # by path: /metrics, /status, other
    loop_seconds: dict[str, float]  # event-loop time spent answering, by path
    loop_cpu_seconds: dict[str, float]  # the loop thread's CPU time of it, by path
    # Sum over answers of the worst lateness of a loop timer while one rendered off the loop
    render_lag_seconds: dict[str, float]
    refused: dict[str, int]  # clients refused, by reason: busy, too_large, timeout
