"""The record of what this daemon created, kept under --state-dir.

Only objects recorded here are ever changed or removed: an address or IPVS
service made by someone else (an operator, another tool) is never touched.
The record survives crashes (written atomically with fsync), so after a
SIGKILL the next start can still clean up VIPs it left behind.

A takeover adds its VIPs before it writes them down (an fsync first would delay the
takeover), so the record also keeps the VIPs a takeover *may* add, written before any
instance runs: ``pending``. A VIP that is pending and on the link at the next start
was ours (a crash between the add and the write); the daemon claims it then.

A record that cannot be read as one (not JSON, truncated, the wrong shape, a version
this code does not know) is moved aside, never trusted in part: `damaged` then says
where it went and why, and the node starts from an empty record (the daemon claims
only the VIPs its configuration names, see `runtime.revision_apply.RevisionApplier`).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import ip_interface
from pathlib import Path
from typing import Any

from reconciler.model.common import Key

Ident = tuple[str, Key]
FILE_NAME = "owned.json"
VERSION = 1
# The kinds of object a record may hold, and how many parts each one's key has
# (model.kernel: LiveAddress (interface, address/prefix), LiveService, LiveDest).
KEY_PARTS = {"address": 2, "ipvs_service": 3, "ipvs_dest": 5}


@dataclass(frozen=True)
class DamagedRecord:
    """A record that was moved aside on load instead of being trusted."""

    moved_to: Path
    reason: str


class RecordInvalid(ValueError):
    """The record's content is not a record this code wrote."""


def _idents(doc: dict[str, Any], field: str) -> set[Ident]:
    items = doc.get(field, [])
    if not isinstance(items, list):
        raise RecordInvalid(f"{field!r} is not a list")
    out: set[Ident] = set()
    for item in items:
        if not (isinstance(item, list) and len(item) == 2):
            raise RecordInvalid(f"{field!r} has an entry that is not [kind, key]: {item!r}")
        kind, key = item
        parts = KEY_PARTS.get(kind) if isinstance(kind, str) else None
        if parts is None:
            raise RecordInvalid(f"{field!r} has an unknown kind: {kind!r}")
        if not (
            isinstance(key, list) and len(key) == parts and all(isinstance(k, str) for k in key)
        ):
            raise RecordInvalid(f"{field!r} has a malformed {kind} key: {key!r}")
        if kind == "address":
            try:
                ip_interface(key[1])
            except ValueError as exc:
                raise RecordInvalid(f"{field!r} has a malformed address: {key[1]!r}") from exc
        out.add((kind, tuple(key)))
    return out


def parse_record(text: str) -> tuple[set[Ident], set[Ident]]:
    """(owned, pending) of a record's text; RecordInvalid when it is not one."""
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise RecordInvalid(f"not JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise RecordInvalid("not a JSON object")
    if doc.get("version") != VERSION:
        raise RecordInvalid(f"unknown version {doc.get('version')!r}")
    if "owned" not in doc:
        raise RecordInvalid("no 'owned' list")
    return _idents(doc, "owned"), _idents(doc, "pending")


class OwnershipStore:
    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / FILE_NAME
        self._owned: set[Ident] = set()
        self._pending: set[Ident] = set()
        self._dirty = False  # claimed in memory, not yet written
        self.damaged: DamagedRecord | None = None  # set by load when the record was bad

    def load(self) -> set[Ident]:
        """Read the record; a damaged one is moved aside (see `damaged`) and the store
        starts empty. OSError only when the record cannot be read or moved at all."""
        self._owned = set()
        self._pending = set()
        self.damaged = None
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return set()
        try:
            owned, pending = parse_record(raw.decode("utf-8"))
        except (UnicodeDecodeError, RecordInvalid) as exc:
            stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
            moved = self.path.with_name(f"{self.path.name}.damaged-{stamp}")
            os.replace(self.path, moved)
            self.damaged = DamagedRecord(moved, str(exc))
            return set()
        self._owned = owned
        self._pending = pending
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

    def check_writable(self, idents: Iterable[Ident] = ()) -> None:
        """Raise OSError unless the record can be written with `idents` in both of its
        lists: the largest record a switch to a revision that may add `idents` writes.
        A reload checks this before it changes anything (a takeover must be able to write
        down what it added, a stopped instance what it released). The probe is written
        and synced in full: on a full filesystem an empty file can still be made (an
        inode is free) while no record fits."""
        extra = set(idents)
        text = self._text(self._owned | extra, self._pending | extra)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".owned.", suffix=".probe")
        try:
            with os.fdopen(fd, "w") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
        finally:
            Path(tmp).unlink(missing_ok=True)

    @staticmethod
    def _text(owned: set[Ident], pending: set[Ident]) -> str:
        doc = {
            "version": VERSION,
            "owned": sorted([k, list(key)] for k, key in owned),
            "pending": sorted([k, list(key)] for k, key in pending),
        }
        return json.dumps(doc, indent=1) + "\n"

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        text = self._text(self._owned, self._pending)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".owned.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
