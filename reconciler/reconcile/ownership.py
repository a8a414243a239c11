"""The record of what this daemon created, kept under --state-dir.

Only objects recorded here are ever changed or removed: an address or IPVS
service made by someone else (an operator, another tool) is never touched.
The record survives crashes (written atomically with fsync), so after a
SIGKILL the next start can still clean up VIPs it left behind.

A takeover adds its VIPs before it writes them down (an fsync first would delay the
takeover), so the record also keeps the VIPs a takeover *may* add, written before any
instance runs: ``pending``. A VIP that is pending and on the link at the next start
was ours (a crash between the add and the write); the daemon claims it then.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from reconciler.model.common import Key

Ident = tuple[str, Key]
FILE_NAME = "owned.json"
VERSION = 1


class OwnershipStore:
    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / FILE_NAME
        self._owned: set[Ident] = set()
        self._pending: set[Ident] = set()
        self._dirty = False  # claimed in memory, not yet written

    def load(self) -> set[Ident]:
        try:
            doc = json.loads(self.path.read_text())
        except FileNotFoundError:
            self._owned = set()
            self._pending = set()
            return set()
        if doc.get("version") != VERSION:
            raise ValueError(f"{self.path}: unknown version {doc.get('version')!r}")
        self._owned = {(kind, tuple(key)) for kind, key in doc["owned"]}
        self._pending = {(kind, tuple(key)) for kind, key in doc.get("pending", ())}
        return set(self._owned)

    @property
    def pending(self) -> frozenset[Ident]:
        """What a takeover may add without writing it down first (see module docstring)."""
        return frozenset(self._pending)

    def set_pending(self, idents: Iterable[Ident]) -> None:
        """Record, durably, what a takeover may add from now on; before it can."""
        new = set(idents)
        if new != self._pending:
            self._pending = new
            self._save()

    @property
    def owned(self) -> frozenset[Ident]:
        return frozenset(self._owned)

    def claim(self, idents: Iterable[Ident]) -> None:
        """Mark as ours in memory only, at once; the next `update` writes it down. For the
        failover path, where an fsync before adding a VIP would delay the takeover."""
        self._owned |= set(idents)
        self._dirty = True

    def update(self, add: Iterable[Ident] = (), remove: Iterable[Ident] = ()) -> None:
        new = (self._owned | set(add)) - set(remove)
        if new != self._owned or self._dirty:
            self._owned = new
            self._save()
            self._dirty = False

    def check_writable(self) -> None:
        """Raise OSError unless the record can be written (a reload checks this before it
        changes anything: a takeover must be able to write down what it added)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".owned.", suffix=".probe")
        os.close(fd)
        Path(tmp).unlink()

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        doc = {
            "version": VERSION,
            "owned": sorted([k, list(key)] for k, key in self._owned),
            "pending": sorted([k, list(key)] for k, key in self._pending),
        }
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".owned.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(doc, f, indent=1)
                f.write("\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
