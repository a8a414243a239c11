"""What one idempotent kernel write did."""

from __future__ import annotations

import enum


class WriteOutcome(enum.Enum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"  # already as wanted: EEXIST on add, ENOENT on delete
    DELETED = "deleted"
