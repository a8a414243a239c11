"""Desired-state sources: a watched file (git-sync aware) and a polled git repository.

Each source yields `reconciler.model.revision.Artifact` (or `Refusal`) values; what to
apply of them is decided elsewhere, by a pure state machine.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from reconciler.model.revision import Artifact, Refusal


class Source(Protocol):
    def updates(self) -> AsyncIterator[Artifact | Refusal]:
        """The current revision first, then each new one (a changed digest or commit)."""
        ...

    def refresh(self) -> None:
        """Look now (SIGHUP, POST /hooks/refresh); a burst of calls gives one look."""
        ...
