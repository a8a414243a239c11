"""Packet loss on bridge ports: one nftables bridge table in the bridge namespace."""

from __future__ import annotations

from typing import Final

from reconciler.testing.netlab.addressing import LossDirection

__all__ = ["LossRules"]

_NFT_TABLE: Final = "netlab"


class LossRules:
    """The drop percentage of each (bridge port, direction), as an nft script."""

    def __init__(self) -> None:
        self._loss: dict[tuple[str, str], float] = {}  # (port, iifname|oifname) -> %

    def set(self, port: str, percent: float, direction: LossDirection) -> None:
        """Drop ``percent`` % of the frames through ``port`` in ``direction`` (0 removes)."""
        matches = {
            "both": ("iifname", "oifname"),
            "from_host": ("iifname",),
            "to_host": ("oifname",),
        }[direction]
        for match in matches:
            if percent == 0:
                self._loss.pop((port, match), None)
            else:
                self._loss[(port, match)] = percent

    def script(self) -> str:
        """An ``nft -f`` script that replaces the lab's table with the current rules."""
        rules = []
        for (name, match), pct in sorted(self._loss.items()):
            threshold = round(pct * 100)
            sample = "" if threshold >= 10000 else f" numgen random mod 10000 < {threshold}"
            rules.append(f'    {match} "{name}"{sample} drop')
        return "\n".join(
            [
                f"table bridge {_NFT_TABLE}",
                f"delete table bridge {_NFT_TABLE}",
                f"table bridge {_NFT_TABLE} {{",
                "  chain forward {",
                "    type filter hook forward priority 0; policy accept;",
                *rules,
                "  }",
                "}",
            ]
        )
