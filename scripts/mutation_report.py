"""Kill rate per module from `mutmut results --all true`, equivalent mutants set aside.

Usage: mutation_report.py RESULTS EQUIVALENTS. RESULTS has one `name: status` line per
mutant (names like ``reconciler.vrrp.fsm.x_handle__mutmut_3``); EQUIVALENTS lists one
mutant name per line, each with a ``# reason``. Exit 1 when a module is under 95 %.
"""

from __future__ import annotations

import sys
from collections import Counter, defaultdict
from pathlib import Path

KILLED = {"killed", "timeout", "caught by type check", "segfault"}
TARGET = 0.95


def main(results: Path, equivalents: Path) -> int:
    equivalent = {
        line.split("#", 1)[0].strip()
        for line in equivalents.read_text().splitlines()
        if line.split("#", 1)[0].strip()
    }
    by_module: dict[str, Counter[str]] = defaultdict(Counter)
    survivors: list[tuple[str, str]] = []
    for line in results.read_text().splitlines():
        name, sep, status = line.strip().rpartition(": ")
        if not sep:
            continue
        module = name.split(".x_", 1)[0].split(".xǁ", 1)[0]
        if name in equivalent:
            by_module[module]["equivalent"] += 1
            continue
        outcome = "killed" if status in KILLED else "survived"
        by_module[module][outcome] += 1
        if outcome == "survived":
            survivors.append((name, status))
    worst = 1.0
    print(f"{'module':45} {'killed':>7} {'survived':>8} {'equiv':>6} {'rate':>7}")
    for module, c in sorted(by_module.items()):
        total = c["killed"] + c["survived"]
        rate = c["killed"] / total if total else 1.0
        worst = min(worst, rate)
        print(f"{module:45} {c['killed']:7} {c['survived']:8} {c['equivalent']:6} {rate:7.1%}")
    killed = sum(c["killed"] for c in by_module.values())
    total = killed + sum(c["survived"] for c in by_module.values())
    print(f"{'all':45} {killed:7} {total - killed:8} {'':6} {killed / max(total, 1):7.1%}")
    if survivors:
        print("\nsurvivors (`mutmut show NAME` in the scratch tree shows the diff):")
        for name, status in survivors:
            print(f"  {name}: {status}")
    return 0 if worst >= TARGET else 1


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2])))
