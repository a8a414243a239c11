"""What a node runs and what is suspended, kept in the state directory across restarts.

A suspended node keeps running as it is until resumed, restarts included: it then
starts from the revision it ran (its exact bytes, kept here at every apply), not from
whatever the source has meanwhile, and suspended instances keep that revision's spec.
Files are written atomically (temporary file, fsync, rename).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from reconciler.model.revision import Artifact, Provenance, Verification

log = logging.getLogger("reconciler.revisions")


@dataclass(frozen=True)
class Suspension:
    node: bool = False
    instances: tuple[str, ...] = ()

    @property
    def any(self) -> bool:
        return self.node or bool(self.instances)


class RevisionStore:
    def __init__(self, state_dir: Path) -> None:
        self.dir = state_dir / "revision"

    # ------------------------------------------------------------ applied revision
    def save_applied(self, artifact: Artifact) -> None:
        p = artifact.provenance
        meta = {
            "digest": artifact.digest,
            "verification": artifact.verification.value,
            "source": p.source,
            "commit": p.commit,
            "author": p.author,
            "committed_unix_s": p.committed_unix_s,
            "signer": p.signer,
        }
        self._write("applied.data", artifact.data)
        self._write("applied.json", json.dumps(meta).encode())

    def load_applied(self) -> Artifact | None:
        """The revision applied last, or None (none kept, or unreadable: logged)."""
        try:
            data = (self.dir / "applied.data").read_bytes()
            meta = json.loads((self.dir / "applied.json").read_text())
            provenance = Provenance(
                meta["source"],
                meta["commit"],
                meta["author"],
                meta["committed_unix_s"],
                meta["signer"],
            )
            artifact = Artifact(
                data, meta["digest"], provenance, Verification(meta["verification"])
            )
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("%s: kept revision unreadable: %s", self.dir, exc)
            return None
        if hashlib.sha256(data).hexdigest() != artifact.digest:
            log.warning("%s: kept revision does not match its digest; ignored", self.dir)
            return None
        return artifact

    # ------------------------------------------------------------ suspension
    def save_suspension(self, suspension: Suspension) -> None:
        doc = {"node": suspension.node, "instances": list(suspension.instances)}
        self._write("suspended.json", json.dumps(doc).encode())

    def load_suspension(self) -> Suspension:
        try:
            doc = json.loads((self.dir / "suspended.json").read_text())
            return Suspension(bool(doc["node"]), tuple(str(i) for i in doc["instances"]))
        except FileNotFoundError:
            return Suspension()
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("%s: suspension record unreadable, ignored: %s", self.dir, exc)
            return Suspension()

    def _write(self, name: str, data: bytes) -> None:
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.dir, prefix=f".{name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.dir / name)
        finally:
            with contextlib.suppress(FileNotFoundError):
                Path(tmp).unlink()
