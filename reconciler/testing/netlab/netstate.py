"""A namespace's addresses and links as a watcher has seen them, with their history.

:class:`NetState` decodes rtnetlink notifications and dumps into
:class:`AddrEvent` / :class:`LinkState` values and answers the watcher's queries.
It does no I/O and takes no lock: the watcher calls it under its condition.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from ipaddress import IPv6Address
from typing import Literal

from reconciler.testing.netlab.addressing import IPAddress, IPInterface
from reconciler.testing.netlab.events import AddrEvent, LinkState
from reconciler.testing.netlab.rtnetlink import (
    RTM_DELADDR,
    RTM_DELLINK,
    RTM_NEWADDR,
    RTM_NEWLINK,
    NlMsg,
    ParsedAddr,
    ParsedLink,
    parse_addr,
    parse_link,
)

__all__ = ["NetState", "UnexpectedMessage"]


class UnexpectedMessage(ValueError):
    """A notification of a type the watch socket's groups should never carry."""


@dataclass(frozen=True)
class _Transition:
    event: AddrEvent
    address_changed: bool  # the address as a whole (on any interface) appeared/vanished


class NetState:
    """Addresses and links of one namespace, and every change seen since the start."""

    def __init__(self) -> None:
        self.events: list[AddrEvent] = []
        self._transitions: list[_Transition] = []
        self._present: dict[tuple[IPAddress, int], AddrEvent] = {}
        self._links: dict[int, LinkState] = {}
        self._link_transitions: list[LinkState] = []

    # -- updates -------------------------------------------------------------

    def handle(self, msgs: Iterable[NlMsg], now: float) -> None:
        """Apply notifications read at ``now``; raises :class:`UnexpectedMessage`."""
        for msg in msgs:
            if msg.type in (RTM_NEWADDR, RTM_DELADDR):
                parsed = parse_addr(msg.body)
                if parsed is not None:
                    kind: Literal["new", "del"] = "new" if msg.type == RTM_NEWADDR else "del"
                    self._apply_addr(kind, parsed, now, synthetic=False)
            elif msg.type in (RTM_NEWLINK, RTM_DELLINK):
                link = parse_link(msg.body)
                if link is not None:
                    if msg.type == RTM_DELLINK:
                        self._apply_link(LinkState(link.ifindex, link.ifname, 0, 0, now))
                    else:
                        self._apply_link(_stamped(link, now, synthetic=False))
            else:
                # The socket only joined the link and address groups: anything else
                # means the decoding is wrong, and the state would silently be too.
                raise UnexpectedMessage(f"unexpected rtnetlink message type {msg.type}")

    def resync(self, links: Iterable[ParsedLink], addrs: Sequence[ParsedAddr], now: float) -> None:
        """Rebuild the state from a dump taken at ``now`` (synthetic events)."""
        for link in links:
            self._apply_link(_stamped(link, now, synthetic=True))
        current = {(a.address, a.ifindex): a for a in addrs}
        for key, ev in list(self._present.items()):
            if key not in current:
                gone = ParsedAddr(ev.address, ev.prefixlen, ev.ifindex, ev.flags, None)
                self._apply_addr("del", gone, now, synthetic=True)
        for parsed in addrs:
            if (parsed.address, parsed.ifindex) not in self._present:
                self._apply_addr("new", parsed, now, synthetic=True)

    def _apply_link(self, link: LinkState) -> None:
        old = self._links.get(link.ifindex)
        self._links[link.ifindex] = link
        if old is None or old.running != link.running or old.ifname != link.ifname:
            self._link_transitions.append(link)

    def _ifname(self, ifindex: int, label: str | None) -> str:
        link = self._links.get(ifindex)
        if link is not None:
            return link.ifname
        return label or f"if{ifindex}"

    def _apply_addr(
        self, kind: Literal["new", "del"], parsed: ParsedAddr, now: float, *, synthetic: bool
    ) -> None:
        event = AddrEvent(
            kind,
            parsed.address,
            parsed.prefixlen,
            parsed.ifindex,
            self._ifname(parsed.ifindex, parsed.label),
            parsed.flags,
            now,
            synthetic,
        )
        self.events.append(event)
        key = (parsed.address, parsed.ifindex)
        was_present = self.address_present(parsed.address)
        if kind == "new":
            known = key in self._present
            self._present[key] = event  # keeps the latest flags (e.g. DAD finished)
            if known:
                return  # a flag or lifetime update, not a change of presence
        elif self._present.pop(key, None) is None:
            return
        changed = was_present != self.address_present(parsed.address)
        self._transitions.append(_Transition(event, changed))

    # -- queries -------------------------------------------------------------

    def address_present(self, address: IPAddress, ifname: str | None = None) -> bool:
        return any(
            addr == address and (ifname is None or ev.ifname == ifname)
            for (addr, _idx), ev in self._present.items()
        )

    def addresses(self, ifname: str | None) -> frozenset[IPInterface]:
        return frozenset(
            ev.interface for ev in self._present.values() if ifname is None or ev.ifname == ifname
        )

    def address_since(
        self,
        addr: IPAddress,
        *,
        present: bool,
        ifname: str | None,
        after: float | None,
        never_seen: float,
    ) -> float | None:
        """When ``addr`` became present/absent (see ``NetlinkWatcher.wait_for``), or
        None if it has not; ``never_seen`` is the answer for an address absent all along.
        """

        def matches(tr: _Transition) -> bool:
            ev = tr.event
            if ev.address != addr or ev.present != present:
                return False
            return tr.address_changed if ifname is None else ev.ifname == ifname

        if after is not None:
            for tr in self._transitions:
                if tr.event.timestamp >= after and matches(tr):
                    return tr.event.timestamp
            return None
        if self.address_present(addr, ifname) != present:
            return None
        for tr in reversed(self._transitions):
            if matches(tr):
                return tr.event.timestamp
        return never_seen

    def link_by_name(self, ifname: str) -> LinkState | None:
        found = [s for s in self._links.values() if s.ifname == ifname]
        return max(found, key=lambda s: s.timestamp) if found else None

    def link_since(self, ifname: str, *, running: bool, after: float | None) -> float | None:
        """When ``ifname`` became running / not running (see ``wait_link``), or None."""
        if after is not None:
            for st in self._link_transitions:
                if st.timestamp >= after and st.ifname == ifname and st.running == running:
                    return st.timestamp
            return None
        cur = self.link_by_name(ifname)
        if cur is None or cur.running != running:
            return None
        for st in reversed(self._link_transitions):
            if st.ifname == ifname and st.running == running:
                return st.timestamp
        return cur.timestamp

    def link_local(self, ifname: str) -> IPv6Address | None:
        for ev in self._present.values():
            if (
                ev.ifname == ifname
                and isinstance(ev.address, IPv6Address)
                and ev.address.is_link_local
                and not ev.tentative
            ):
                return ev.address
        return None

    def ready_link_local(self, ifname: str) -> IPv6Address | None:
        """The usable link-local address of ``ifname`` once it is running, else None."""
        cur = self.link_by_name(ifname)
        if cur is None or not cur.running:
            return None
        return self.link_local(ifname)

    def recent_events(self, n: int = 8) -> str:
        return ", ".join(
            f"{e.kind} {e.address}/{e.prefixlen} on {e.ifname} @{e.timestamp:.6f}"
            for e in self.events[-n:]
        )


def _stamped(link: ParsedLink, now: float, *, synthetic: bool) -> LinkState:
    return LinkState(link.ifindex, link.ifname, link.flags, link.operstate, now, synthetic)
