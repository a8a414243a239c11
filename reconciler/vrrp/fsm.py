"""The VRRP state machine of one virtual router, RFC 5798 §6.4, sans-I/O.

``VirtualRouter.handle(event, now)`` returns the actions the driver must perform, in order.
Time is an argument (monotonic seconds); timers are ``StartTimer``/``CancelTimer`` actions
that the driver turns into real timers and feeds back as ``TimerExpired``.

Shape: one state enum (:class:`~reconciler.vrrp.states.State`), one handler table keyed
by (state, event type), and one choke point, :meth:`VirtualRouter._transition`, that runs
the old state's exit actions, emits ``Transitioned``, counts it, and runs the new state's
entry actions. Handlers only decide; entry/exit bookkeeping lives in one place.

What needs none of the machine's state lives beside it: ``acceptance`` (the §7.1 checks,
memoized, and their counts), ``election`` (§6.4.2 follow or preempt, §6.4.3 yield),
``reconfigure`` (a revision in place), ``outbox`` (building the actions, the running
timers, the adverts we send) and ``counters``.

keepalived compatibility beyond the RFC (reference: keepalived-wire-and-timing.md):
FAULT state; a master answers lower-priority adverts (``answer_lower_priority``); a master
leaving for FAULT sends a priority-0 advert as on shutdown; ``preempt_delay``; the v3
unicast "old checksum" modes; no TTL check for unicast.
"""

from __future__ import annotations

from collections.abc import Callable
from ipaddress import IPv4Address, IPv6Address

from reconciler.vrrp.acceptance import Acceptance
from reconciler.vrrp.actions import Action
from reconciler.vrrp.counters import InstanceCounters
from reconciler.vrrp.election import backup_follows, master_yields
from reconciler.vrrp.events import (
    AdvertReceived,
    Event,
    FaultCleared,
    FaultSet,
    LinkDown,
    LinkUp,
    PriorityChanged,
    Reconfigure,
    Shutdown,
    Startup,
    SyncGroupBackup,
    SyncGroupMaster,
    TimerExpired,
)
from reconciler.vrrp.outbox import Outbox
from reconciler.vrrp.packet import VrrpVersion
from reconciler.vrrp.params import (
    PRIORITY_OWNER,
    PRIORITY_STOP,
    InstanceParams,
    check_effective_priority,
)
from reconciler.vrrp.reconfigure import MasterUpdate, check_reconfigure
from reconciler.vrrp.states import State, TimerKind, TransitionReason

__all__ = ["InstanceCounters", "VirtualRouter"]

_Handler = Callable[["VirtualRouter", Event, float], None]


class VirtualRouter:
    """The state machine of one virtual router (RFC 5798's term; one configured VRRP
    instance on one interface). Not thread-safe; one driver calls it.

    One piece on purpose: the handlers of RFC 5798 section 6.4 and the repeat fast path
    (`follow_repeat`, `follow_repeats`, `refollow`) share the machine's state on the
    hottest per-advert path, where a call into another object costs ~80 ns (about a
    third of that step); what needs no state is in acceptance, election, outbox,
    reconfigure and timers."""

    def __init__(self, params: InstanceParams) -> None:
        self.params = params
        self.state = State.INITIALIZE
        self.priority = params.priority  # effective priority, moved by PriorityChanged
        # RFC 5798 §6.1 Master_Adver_Interval: the master's interval as learned in Backup.
        self.master_adver_interval_cs = params.advert_interval_cs
        self.master_address: IPv4Address | IPv6Address | None = None  # as seen in Backup
        self.link_up = True
        self.faults: set[str] = set()  # trackers at weight 0 currently failing
        self.counters = InstanceCounters()
        self.last_transition_s: float | None = None
        self._out = Outbox(params, self.counters)  # the actions of the event being handled
        self._timers = self._out.timers
        self._deadlines = self._timers.deadlines  # running timers: kind -> deadline (s)
        self._down_reason = TransitionReason.MASTER_NO_RESPONSE
        self._preempt_deadline_s: float | None = None
        self._acceptance = Acceptance()  # the §7.1 checks of the last valid advert
        # The advert this BACKUP last followed (see ``follow_repeat``) and the
        # Master_Down_Interval it restarted; cleared by any other event.
        self._followed: AdvertReceived | None = None
        self._followed_down_s = 0.0
        # It is counted by more than adverts_received (old checksum, address mismatch).
        self._followed_special = False

    # --- public -------------------------------------------------------------------------

    def handle(self, event: Event, now: float) -> list[Action]:
        """Feed one event at monotonic time ``now`` (seconds); return the actions."""
        self._out.begin(now)
        self._followed = None
        handler = _HANDLERS.get((self.state, type(event)))
        if handler is not None:
            handler(self, event, now)
        return self._out.actions

    def follow_repeat(self, event: AdvertReceived, now: float) -> float | None:
        """The fast path of ``handle`` for the advert a BACKUP receives most: the very
        advert it followed last, with nothing else handled since.

        That advert passed the §7.1 checks, left the state, priority, learned interval and
        master as they are, and restarted the Master_Down_Timer; handling the same advert
        again does exactly that again. Returns the timer's new deadline (seconds; the
        driver restarts it), counted as ``handle`` counts it; None when the full
        ``handle`` is needed.
        """
        if event is not self._followed:
            return None
        counters = self.counters
        counters.adverts_received += 1
        if self._followed_special:
            self._acceptance.count_special(event.received, counters, 1)
        deadline = now + self._followed_down_s
        self._deadlines[TimerKind.MASTER_DOWN] = deadline
        return deadline

    def follow_repeats(self, event: AdvertReceived, count: int, last_s: float) -> float | None:
        """``follow_repeat`` for ``count`` copies of the followed advert handled elsewhere
        (dropped by the kernel's repeat filter), the last at ``last_s``.

        Same effect as handing each to ``follow_repeat`` in turn: counted, and the
        Master_Down_Timer restarted from the last. None (nothing counted) when ``event``
        is no longer the followed advert.
        """
        if event is not self._followed or count <= 0:
            return None
        counters = self.counters
        counters.adverts_received += count
        if self._followed_special:
            self._acceptance.count_special(event.received, counters, count)
        deadline = last_s + self._followed_down_s
        deadline = max(deadline, self._deadlines.get(TimerKind.MASTER_DOWN, deadline))
        self._deadlines[TimerKind.MASTER_DOWN] = deadline
        return deadline

    def refollow(self, event: AdvertReceived, now: float) -> list[Action]:
        """``handle`` for a repeat that ``follow_repeats`` counted already and that must be
        handled once more, at its time ``now``: the kernel dropped it after an advert that
        the machine was handed later (that one was still unread), so the machine has to see
        it after that advert, as it would have without the filter. Not counted again.

        Handling the advert a backup follows again is idempotent (§6.4.2: learn the
        interval, follow the master, restart the Master_Down_Timer from ``now``), so it
        undoes whatever the advert handled in between did to those.
        """
        counted = self.counters.received_counts()
        actions = self.handle(event, now)
        self.counters.restore_received(counted)
        return actions

    @property
    def followed(self) -> AdvertReceived | None:
        """The advert ``follow_repeat`` takes now, if any."""
        return self._followed

    @property
    def faulted(self) -> bool:
        return not self.link_up or bool(self.faults)

    def timer_deadline(self, kind: TimerKind) -> float | None:
        """When the running timer ``kind`` fires (seconds), or None."""
        return self._deadlines.get(kind)

    def _master_down_interval(self) -> float:
        """Master_Down_Interval in seconds, at our priority and the master's interval."""
        return self._timers.master_down_s(self.priority, self.master_adver_interval_cs)

    # --- the choke point ----------------------------------------------------------------

    def _transition(self, to: State, reason: TransitionReason) -> None:
        """Exit the current state, record and announce the change, enter ``to``."""
        old = self.state
        vips = self.params.vips
        out = self._out
        # exit actions
        if old is State.BACKUP:
            out.cancel_timer(TimerKind.MASTER_DOWN)
            self._preempt_deadline_s = None
        elif old is State.MASTER:
            out.cancel_timer(TimerKind.ADVER)
            if to is not State.BACKUP:
                # §6.4.3 Shutdown: priority 0 so a backup takes over after Skew_Time, not
                # Master_Down_Interval. keepalived does the same when entering FAULT.
                out.send_advert(PRIORITY_STOP)
            out.remove_vips(vips)
        elif old is State.INITIALIZE and to is not State.MASTER:
            # Starting up not as master: make sure no VIP is left over from a crash of a
            # previous run (keepalived "removing VIPs" at start-up; reference quirks 3, 13).
            out.remove_vips(vips)

        self.state = to
        self.last_transition_s = out.now
        out.transitioned(old, to, reason)

        # entry actions
        if to is State.BACKUP:
            # §6.4.1 / §6.4.2: the Master_Down_Timer runs from entry. The caller has set
            # master_adver_interval_cs (configured on startup, learned when preempted).
            self.master_address = None
            self._down_reason = TransitionReason.MASTER_NO_RESPONSE
            out.start_timer(TimerKind.MASTER_DOWN, self._master_down_interval())
        elif to is State.MASTER:
            # §6.4.1 / §6.4.2: send an advert, announce the VIPs, start the Adver_Timer.
            # A master advertises its configured interval (reverting any learned one).
            self.master_adver_interval_cs = self.params.advert_interval_cs
            self.master_address = None
            out.send_advert(self.priority)
            out.add_vips(vips)
            out.start_adver_timer()

    def _start(self, reason: TransitionReason) -> None:
        """§6.4.1 Startup (also leaving FAULT): owner to Master, others to Backup."""
        self.master_adver_interval_cs = self.params.advert_interval_cs
        if self.faulted:
            self._transition(State.FAULT, self._fault_reason())
        elif self.priority == PRIORITY_OWNER:
            self._transition(
                State.MASTER,
                TransitionReason.ADDRESS_OWNER if reason is TransitionReason.STARTUP else reason,
            )
        else:
            self._transition(State.BACKUP, reason)

    def _fault_reason(self) -> TransitionReason:
        return TransitionReason.LINK_DOWN if not self.link_up else TransitionReason.TRACKER_FAULT

    # --- handlers, any running state ----------------------------------------------------

    def _on_startup(self, event: Event, now: float) -> None:
        self._start(TransitionReason.STARTUP)

    def _on_shutdown(self, event: Event, now: float) -> None:
        self._transition(State.INITIALIZE, TransitionReason.SHUTDOWN)

    def _on_fault_event(self, event: Event, now: float) -> None:
        """Record link/tracker state; enter FAULT from BACKUP/MASTER, leave it when clear."""
        if isinstance(event, LinkDown):
            self.link_up = False
        elif isinstance(event, LinkUp):
            self.link_up = True
        elif isinstance(event, FaultSet):
            self.faults.add(event.source)
        elif isinstance(event, FaultCleared):
            self.faults.discard(event.source)
        if self.state in (State.BACKUP, State.MASTER) and self.faulted:
            self._transition(State.FAULT, self._fault_reason())
        elif self.state is State.FAULT and not self.faulted:
            self._start(TransitionReason.FAULT_CLEARED)

    def _on_priority_changed(self, event: Event, now: float) -> None:
        assert isinstance(event, PriorityChanged)
        check_effective_priority(event.priority)
        changed = event.priority != self.priority
        self.priority = event.priority
        if changed and self.state is State.MASTER:
            # Tell the backups at once rather than at the next Adver_Timer, so a backup
            # that now outranks us can preempt (or stop waiting) without delay.
            self._out.advertise(self.priority)
        # In BACKUP the new priority takes effect with the next advert (§6.4.2 compares
        # and recomputes Skew_Time/Master_Down_Interval on receipt).

    def _on_reconfigure(self, event: Event, now: float) -> None:
        """A new revision of this virtual router, in place (see ``Reconfigure``)."""
        assert isinstance(event, Reconfigure)
        old, new = self.params, event.params
        check_reconfigure(old, new, event.priority)
        old_priority = self.priority
        self.params = new
        self.priority = event.priority
        self.counters.reconfigured += 1
        self._out.reconfigure(new)
        self._acceptance.forget()  # the receive checks depend on the params
        if new.preempt_delay_s != old.preempt_delay_s or not new.preempt:
            self._preempt_deadline_s = None  # a wait starts again with the next lower advert
        if not (new.version is VrrpVersion.V3 and new.learn_master_adver_interval):
            # Nothing to learn (v2): Master_Adver_Interval is the configured interval.
            self.master_adver_interval_cs = new.advert_interval_cs
        if self.state is not State.MASTER:
            # BACKUP: §6.4.2 compares priorities and recomputes Master_Down_Interval with
            # the next advert, so the new values take effect then (as PriorityChanged).
            # INITIALIZE and FAULT hold nothing and elect nothing until they start.
            return
        # MASTER, §6.4.3 (see MasterUpdate). A lower priority is settled by the RFC's
        # election: a backup with preempt discards our adverts and takes over after
        # Master_Down_Interval.
        self.master_adver_interval_cs = new.advert_interval_cs
        update = MasterUpdate.between(old, old_priority, new, self.priority)
        if update.readvertise:
            self._out.advertise(self.priority)
        if update.added:
            self._out.add_vips(update.added)
        if update.removed:
            self._out.remove_vips(update.removed)

    def _on_stale_timer(self, event: Event, now: float) -> None:
        self.counters.stale_timer_events += 1

    def _timer_fired(self, event: Event) -> TimerKind | None:
        """The timer that fired, or None for a stale ``TimerExpired`` (counted)."""
        assert isinstance(event, TimerExpired)
        if not self._timers.stop(event.kind):
            self.counters.stale_timer_events += 1
            return None
        return event.kind

    def _learn_interval(self, advert_interval_cs: int) -> None:
        # §6.4.2: "Set Master_Adver_Interval to Adver Interval contained in the
        # ADVERTISEMENT". v2 intervals must already equal ours (receive check).
        if self.params.version is VrrpVersion.V3 and self.params.learn_master_adver_interval:
            self.master_adver_interval_cs = advert_interval_cs

    # --- BACKUP (§6.4.2) ----------------------------------------------------------------

    def _backup_timer(self, event: Event, now: float) -> None:
        if self._timer_fired(event) is TimerKind.MASTER_DOWN:
            self._transition(State.MASTER, self._down_reason)

    def _backup_advert(self, event: Event, now: float) -> None:
        assert isinstance(event, AdvertReceived)
        received = event.received
        params = self.params
        if not self._acceptance.accept(params, received, self.counters):
            return
        advert = received.advert
        if advert.priority == PRIORITY_STOP:
            # §6.4.2: the master is leaving; take over after Skew_Time.
            self._down_reason = TransitionReason.MASTER_RELEASED
            skew_s = self._timers.skew_s(self.priority, self.master_adver_interval_cs)
            self._out.start_timer(TimerKind.MASTER_DOWN, skew_s)
            return
        if backup_follows(params, advert.priority, self.priority, self._preempt_deadline_s, now):
            # §6.4.2: accept: follow this master and restart the Master_Down_Timer.
            self._learn_interval(advert.advert_interval_cs)
            self.master_address = received.source
            self._down_reason = TransitionReason.MASTER_NO_RESPONSE
            down_s = self._master_down_interval()
            self._out.start_timer(TimerKind.MASTER_DOWN, down_s)
            if params.preempt_delay_s == 0:
                # Without a preempt delay, the same advert again would do the same again.
                self._followed = event
                self._followed_down_s = down_s
                self._followed_special = self._acceptance.special
            elif advert.priority >= self.priority:
                self._preempt_deadline_s = None
            elif self._preempt_deadline_s is None:
                # first lower-priority advert: preemption may happen after the delay
                self._preempt_deadline_s = now + params.preempt_delay_s
        else:
            # §6.4.2: preempt and a lower priority: discard, so the Master_Down_Timer runs
            # out and we take over.
            self.master_address = received.source
            self._down_reason = TransitionReason.PREEMPTED

    # --- MASTER (§6.4.3) ----------------------------------------------------------------

    def _master_timer(self, event: Event, now: float) -> None:
        if self._timer_fired(event) is TimerKind.ADVER:
            self._out.advertise(self.priority)

    def _master_advert(self, event: Event, now: float) -> None:
        assert isinstance(event, AdvertReceived)
        received = event.received
        if not self._acceptance.accept(self.params, received, self.counters):
            return
        advert = received.advert
        if advert.priority == PRIORITY_STOP:
            # §6.4.3: another master is leaving; assert ourselves at once.
            self._out.advertise(self.priority)
            return
        reason = master_yields(
            advert.priority, received.source, self.priority, self.params.primary_address
        )
        if reason is not None:
            # §6.4.3: yield to the higher priority (or the higher primary address).
            self._learn_interval(advert.advert_interval_cs)
            self._transition(State.BACKUP, reason)
            self.master_address = received.source
        elif self.params.answer_lower_priority:
            # keepalived: "forcing new election" -- answer at once, restart our timer, so a
            # backup that took over spuriously (lost adverts) yields within one round trip.
            self._out.advertise(self.priority)
        # else: RFC 5798 §6.4.3, discard.

    # --- sync groups (keepalived vrrp_sync_group) -----------------------------------------

    def _sync_to_master(self, event: Event, now: float) -> None:
        self._transition(State.MASTER, TransitionReason.SYNC_GROUP)

    def _sync_to_backup(self, event: Event, now: float) -> None:
        self._transition(State.BACKUP, TransitionReason.SYNC_GROUP)


_HANDLERS: dict[tuple[State, type], _Handler] = {
    (State.BACKUP, SyncGroupMaster): VirtualRouter._sync_to_master,
    (State.MASTER, SyncGroupBackup): VirtualRouter._sync_to_backup,
    (State.INITIALIZE, Startup): VirtualRouter._on_startup,
    (State.INITIALIZE, LinkDown): VirtualRouter._on_fault_event,
    (State.INITIALIZE, LinkUp): VirtualRouter._on_fault_event,
    (State.INITIALIZE, FaultSet): VirtualRouter._on_fault_event,
    (State.INITIALIZE, FaultCleared): VirtualRouter._on_fault_event,
    (State.INITIALIZE, PriorityChanged): VirtualRouter._on_priority_changed,
    (State.INITIALIZE, TimerExpired): VirtualRouter._on_stale_timer,
    (State.BACKUP, AdvertReceived): VirtualRouter._backup_advert,
    (State.BACKUP, TimerExpired): VirtualRouter._backup_timer,
    (State.BACKUP, Shutdown): VirtualRouter._on_shutdown,
    (State.BACKUP, LinkDown): VirtualRouter._on_fault_event,
    (State.BACKUP, LinkUp): VirtualRouter._on_fault_event,
    (State.BACKUP, FaultSet): VirtualRouter._on_fault_event,
    (State.BACKUP, FaultCleared): VirtualRouter._on_fault_event,
    (State.BACKUP, PriorityChanged): VirtualRouter._on_priority_changed,
    (State.MASTER, AdvertReceived): VirtualRouter._master_advert,
    (State.MASTER, TimerExpired): VirtualRouter._master_timer,
    (State.MASTER, Shutdown): VirtualRouter._on_shutdown,
    (State.MASTER, LinkDown): VirtualRouter._on_fault_event,
    (State.MASTER, LinkUp): VirtualRouter._on_fault_event,
    (State.MASTER, FaultSet): VirtualRouter._on_fault_event,
    (State.MASTER, FaultCleared): VirtualRouter._on_fault_event,
    (State.MASTER, PriorityChanged): VirtualRouter._on_priority_changed,
    (State.FAULT, Shutdown): VirtualRouter._on_shutdown,
    (State.FAULT, LinkDown): VirtualRouter._on_fault_event,
    (State.FAULT, LinkUp): VirtualRouter._on_fault_event,
    (State.FAULT, FaultSet): VirtualRouter._on_fault_event,
    (State.FAULT, FaultCleared): VirtualRouter._on_fault_event,
    (State.FAULT, PriorityChanged): VirtualRouter._on_priority_changed,
    (State.FAULT, TimerExpired): VirtualRouter._on_stale_timer,
    (State.INITIALIZE, Reconfigure): VirtualRouter._on_reconfigure,
    (State.BACKUP, Reconfigure): VirtualRouter._on_reconfigure,
    (State.MASTER, Reconfigure): VirtualRouter._on_reconfigure,
    (State.FAULT, Reconfigure): VirtualRouter._on_reconfigure,
}
"""Every (state, event) the machine reacts to. Anything else is ignored: Startup while
running, adverts in INITIALIZE or FAULT (not listening), Shutdown when not running."""
