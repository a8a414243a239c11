"""Revisions of the desired state as sources hand them on: immutable, verified once.

A source (a watched file, a git-sync directory, a polled git repository) turns what
it sees into an `Artifact` (the exact bytes, their digest and where they came from)
or a `Refusal` (a revision it saw and will not hand on, with the reason). What runs is
decided from these alone: the bytes that are validated are the bytes whose digest and
commit are reported.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class VerifyMode(enum.Enum):
    """Which fetched commits must carry a trusted signature (`verify_commits`)."""

    OFF = "off"  # no signature is checked
    HEAD = "head"  # the fetched head commit is signed by an allowed signer
    RANGE = "range"  # every commit since the last accepted one is (Argo CD's strict mode)


class Verification(enum.Enum):
    NOT_REQUIRED = "not-required"  # a plain file, or a git source with verification off
    VERIFIED = "verified"  # signed by an allowed signer (head, or every commit of a range)


@dataclass(frozen=True)
class Provenance:
    """Where a revision came from."""

    source: str  # "file:/etc/reconciler/cluster.yaml", "git:URL#BRANCH:PATH"
    commit: str | None = None  # full commit id, when the file lives in git
    author: str | None = None  # "Name <email>"
    committed_unix_s: float | None = None
    signer: str | None = None  # the key or principal that signed, when verified

    @property
    def location(self) -> str:
        """Where errors in the revision point: the file's path for a file source, so
        that a diagnostic reads FILE:LINE:COL like `reconciler validate FILE`."""
        return self.source.removeprefix("file:")


@dataclass(frozen=True)
class Artifact:
    """One revision of the desired-state file, exactly as read."""

    data: bytes
    digest: str  # sha256 of data, hex
    provenance: Provenance
    verification: Verification = Verification.NOT_REQUIRED

    @property
    def short_digest(self) -> str:
        return self.digest[:12]


@dataclass(frozen=True)
class Refusal:
    """A revision a source saw and does not hand on; what runs stays as it is."""

    provenance: Provenance
    reason: str  # bounded label for metrics: unsigned, bad-signature, not-fast-forward, ...
    detail: str  # for an operator: which commit, which key, what git said
