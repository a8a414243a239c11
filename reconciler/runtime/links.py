"""The node's network interfaces as netlink reports them, and their changes."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from reconciler.adapters.netlink import HintKind, Link, Netlink, watch


class LinkWatcher:
    """Keeps the interfaces' links current (``load``, then ``run``)."""

    def __init__(self, netlink: Netlink) -> None:
        self._netlink = netlink
        self._links: dict[str, Link] = {}

    def current(self) -> Mapping[str, Link]:
        return self._links

    async def load(self) -> None:
        self._links = await self._netlink.links()

    async def run(self, on_link: Callable[[str, bool], None], on_hint: Callable[[], None]) -> None:
        """Until cancelled: tells ``on_hint`` of every address or link change netlink
        reports, and ``on_link`` (interface, running) of an interface whose carrier
        changed."""
        async for hint in watch():
            on_hint()
            if hint.kind is not HintKind.LINK:
                continue
            links = await self._netlink.links()
            for name, link in links.items():
                before = self._links.get(name)
                if before is not None and before.running != link.running:
                    on_link(name, link.running)
            self._links = links
