"""Accept_Mode false: packets to the VIPs are dropped, as RFC 5798 asks.

RFC 5798 §6.4.2 (Backup) and §6.4.3 (Master): a router that is not the address owner
"MUST NOT accept packets addressed to the IPvX address(es) associated with the virtual
router" unless Accept_Mode is True. The VIPs of every instance of this node with
``accept: false`` (and a priority below 255 here) go into nftables sets of one table
that is ours alone, ``inet reconciler``; two chains at priority -1 (before IPVS and
conntrack) drop what is addressed to them on input and what leaves from them on output,
and let IPv6 neighbour solicitations and advertisements through, so that the master
still answers for its VIPs. This is what keepalived installs (its ``keepalived`` table,
vrrp_nftables.c) for ``no_accept`` or ``vrrp_strict`` instances.

The sets hold the VIPs whatever the instance's state: a backup has no VIP on its links,
so nothing addressed to one is delivered locally there anyway, and a takeover never
waits for a firewall write before it adds its VIPs (the table is written at start and on
reload, before any instance of that revision runs).

Written with ``nft -f -``: the whole table is replaced in one transaction, so a reload
never leaves a moment without the rules. Read back with ``nft -j``. Nothing outside the
table is touched; a node with no such instance has no table (and removes a leftover one).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from collections.abc import Iterable
from ipaddress import IPv4Address, IPv6Address
from typing import Final

from reconciler.adapters.outcome import WriteOutcome

TABLE: Final = "reconciler"
FAMILY: Final = "inet"
SET4: Final = "no_accept_v4"
SET6: Final = "no_accept_v6"
CHAIN_PRIORITY: Final = -1  # keepalived's vrrp_nf_chain_priority default
NFT_TIMEOUT_S: Final = 10.0
RULES_PER_CHAIN: Final = 3  # the ND accept and one drop per family

IPAddr = IPv4Address | IPv6Address


class FirewallError(OSError):
    """nft is missing or refused the table."""


class _NoTable(FirewallError):
    """nft says our table does not exist."""


def ruleset(vips: Iterable[IPAddr]) -> str:
    """The nft script that replaces our table with one dropping ``vips`` (never empty:
    with no VIP the table is deleted instead, see ``AcceptModeFirewall.apply``)."""
    v4 = sorted({v for v in vips if isinstance(v, IPv4Address)})
    v6 = sorted({v for v in vips if isinstance(v, IPv6Address)})

    def elements(addrs: list[IPv4Address] | list[IPv6Address]) -> str:
        return f" elements = {{ {', '.join(map(str, addrs))} }};" if addrs else ""

    nd = "icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } accept"
    return "\n".join(
        [
            # Create it first so that the delete cannot fail: one transaction replaces
            # the table whether or not it existed.
            f"table {FAMILY} {TABLE} {{}}",
            f"delete table {FAMILY} {TABLE}",
            f"table {FAMILY} {TABLE} {{",
            f"  set {SET4} {{ type ipv4_addr;{elements(v4)} }}",
            f"  set {SET6} {{ type ipv6_addr;{elements(v6)} }}",
            "  chain input {",
            f"    type filter hook input priority {CHAIN_PRIORITY}; policy accept;",
            f"    {nd}",
            f"    ip daddr @{SET4} counter drop",
            f"    ip6 daddr @{SET6} counter drop",
            "  }",
            "  chain output {",
            f"    type filter hook output priority {CHAIN_PRIORITY}; policy accept;",
            f"    {nd}",
            f"    ip saddr @{SET4} counter drop",
            f"    ip6 saddr @{SET6} counter drop",
            "  }",
            "}",
            "",
        ]
    )


class AcceptModeFirewall:
    """Our nftables table in the namespace this process runs in."""

    def __init__(self, nft: str | None = None) -> None:
        self._nft = nft
        self.vips: frozenset[IPAddr] = frozenset()  # what the table holds, as last written

    def _binary(self) -> str:
        nft = self._nft or shutil.which("nft")
        if nft is None:
            raise FirewallError(
                "the nft command is not installed (Debian: apt-get install nftables)"
            )
        return nft

    async def _run(self, args: list[str], script: str | None = None) -> str:
        nft = self._binary()
        try:
            proc = await asyncio.create_subprocess_exec(
                nft,
                *args,
                stdin=asyncio.subprocess.PIPE if script is not None else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env={**os.environ, "LC_ALL": "C"},  # "No such file or directory" untranslated
            )
        except OSError as exc:
            raise FirewallError(f"cannot run {nft}: {exc.strerror or exc}") from exc
        try:
            out, err = await asyncio.wait_for(
                proc.communicate(script.encode() if script is not None else None), NFT_TIMEOUT_S
            )
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise FirewallError(f"nft {' '.join(args)}: no answer in {NFT_TIMEOUT_S:g} s") from None
        if proc.returncode != 0:
            text = err.decode(errors="replace")
            detail = text.strip().splitlines()
            kind = _NoTable if "No such file or directory" in text else FirewallError
            raise kind(f"nft {' '.join(args)}: {' | '.join(detail[-3:]) or 'failed'}")
        return out.decode()

    async def _table(self) -> list[dict[str, object]] | None:
        """Our table's objects as nft's JSON lists them; None when there is no table."""
        try:
            text = await self._run(["-j", "list", "table", FAMILY, TABLE])
        except _NoTable:
            return None
        doc = json.loads(text)
        items = doc.get("nftables", []) if isinstance(doc, dict) else []
        return [i for i in items if isinstance(i, dict)]

    async def observe(self) -> frozenset[IPAddr] | None:
        """The VIPs our table drops now; None when there is no table, or when it is not
        whole (a chain or rule missing: someone edited it), so that it is rewritten."""
        items = await self._table()
        if items is None:
            return None
        found: set[IPAddr] = set()
        rules = {"input": 0, "output": 0}
        for item in items:
            rule = item.get("rule")
            if isinstance(rule, dict) and rule.get("chain") in rules:
                rules[str(rule["chain"])] += 1
            s = item.get("set")
            if not isinstance(s, dict) or s.get("name") not in (SET4, SET6):
                continue
            elems = s.get("elem", [])
            for e in elems if isinstance(elems, list) else []:
                if isinstance(e, str):
                    found.add(IPv4Address(e) if s["name"] == SET4 else IPv6Address(e))
        if any(n != RULES_PER_CHAIN for n in rules.values()):
            return None
        return frozenset(found)

    async def apply(self, vips: Iterable[IPAddr]) -> WriteOutcome:
        """Make the table drop exactly ``vips``; with none, make sure there is no table
        (without nft installed there can be none of ours to remove)."""
        want = frozenset(vips)
        if not want:
            no_nft = self._nft is None and shutil.which("nft") is None
            if no_nft or await self._table() is None:
                outcome = WriteOutcome.UNCHANGED
            else:
                await self._run(["delete", "table", FAMILY, TABLE])
                outcome = WriteOutcome.DELETED
        else:
            have = await self.observe()
            if have == want:
                outcome = WriteOutcome.UNCHANGED
            else:
                await self._run(["-f", "-"], ruleset(want))
                outcome = WriteOutcome.CREATED if have is None else WriteOutcome.UPDATED
        self.vips = want
        return outcome

    async def remove(self) -> WriteOutcome:
        """No table (at a clean stop, after the VIPs are gone)."""
        return await self.apply(())
