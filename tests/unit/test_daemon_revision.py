"""A running node says what validate would warn about in the revision it applies."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import pytest

from reconciler.daemon import _revision_from
from reconciler.model.revision import Artifact, Provenance

ROOT = Path(__file__).resolve().parents[2]


def test_a_revision_with_warnings_is_applied_and_its_warnings_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    path = ROOT / "examples/warnings/equal-priorities.yaml"
    data = path.read_bytes()
    artifact = Artifact(data, hashlib.sha256(data).hexdigest(), Provenance(f"file:{path}"))
    node = "lb1"
    with caplog.at_level(logging.WARNING, "reconciler.daemon"):
        revision = _revision_from(artifact, node, lambda: None, frozenset())
    assert revision.config.node.name == node
    warned = [r.getMessage() for r in caplog.records]
    assert warned and all(": warning: " in w for w in warned), warned
    assert any("equal-priorities.yaml:" in w for w in warned)
