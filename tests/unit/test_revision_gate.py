"""Playbooks for the revision gate: events in, exact attempts and status out."""

from __future__ import annotations

import hashlib

from reconciler.model.revision import Artifact, Provenance, Refusal
from reconciler.revision.gate import (
    Applied,
    ApplyFailed,
    ArtifactSeen,
    Attempt,
    RefusalSeen,
    Resume,
    RevisionGate,
    Suspend,
    Validated,
    ValidationFailed,
)

T = 1_700_000_000.0


def art(text: str, commit: str | None = None) -> Artifact:
    data = text.encode()
    return Artifact(
        data, hashlib.sha256(data).hexdigest(), Provenance("file:/c.yaml", commit=commit)
    )


A, B, C = art("a"), art("b"), art("c")


def running(a: Artifact = A) -> RevisionGate:
    """A gate whose first revision is applied."""
    g = RevisionGate()
    assert g.handle(ArtifactSeen(a), T) == [Attempt(a)]
    assert g.handle(Validated(a.digest), T) == []
    assert g.handle(Applied(a.digest), T) == []
    return g


def conditions(g: RevisionGate) -> dict[str, tuple[bool, str]]:
    return {c.type: (c.status, c.reason) for c in g.status().conditions}


def test_first_revision_is_attempted_then_ready() -> None:
    g = RevisionGate()
    assert conditions(g)["Ready"] == (False, "NotApplied")
    assert g.handle(ArtifactSeen(A), T) == [Attempt(A)]
    assert conditions(g)["Reconciling"] == (True, "Progressing")
    g.handle(Validated(A.digest), T + 1)
    assert g.handle(Applied(A.digest), T + 2) == []
    st = g.status()
    assert (
        st.applied is not None and st.applied.digest == A.digest and st.applied.at_unix_s == T + 2
    )
    assert st.verified is not None and st.verified.at_unix_s == T + 1
    assert st.attempted is not None and st.attempted.error is None
    assert conditions(g) == {
        "Ready": (True, "Applied"),
        "Reconciling": (False, "Idle"),
        "Stalled": (False, "NotStalled"),
    }
    assert (st.applies, st.failures) == (1, 0)


def test_the_running_bytes_are_not_applied_again_but_a_new_commit_is_recorded() -> None:
    g = running()
    same_bytes_new_commit = art("a", commit="c" * 40)
    assert g.handle(ArtifactSeen(same_bytes_new_commit), T) == []
    st = g.status()
    assert st.applied is not None and st.applied.commit == "c" * 40
    assert st.applies == 1


def test_a_burst_during_an_attempt_gives_one_more_attempt_with_the_newest() -> None:
    g = running()
    assert g.handle(ArtifactSeen(B), T) == [Attempt(B)]
    for a in (C, B, C, art("d"), C):
        assert g.handle(ArtifactSeen(a), T) == []
    assert g.status().pending == C.digest
    assert g.handle(Applied(B.digest), T) == [Attempt(C)]
    assert g.handle(Applied(C.digest), T) == []
    assert g.status().applies == 3


def test_the_in_flight_bytes_seen_again_are_not_queued() -> None:
    g = running()
    assert g.handle(ArtifactSeen(B), T) == [Attempt(B)]
    assert g.handle(ArtifactSeen(B), T) == []  # SIGHUP and the watcher at once
    assert g.status().pending is None
    assert g.handle(Applied(B.digest), T) == []


def test_invalid_bytes_change_nothing_and_are_not_retried_until_the_input_changes() -> None:
    g = running()
    assert g.handle(ArtifactSeen(B), T) == [Attempt(B)]
    assert g.handle(ValidationFailed(B.digest, "c.yaml:9:13: vid out of range"), T + 5) == []
    st = g.status()
    assert st.applied is not None and st.applied.digest == A.digest
    assert st.attempted is not None
    assert (st.attempted.digest, st.attempted.reason) == (B.digest, "invalid")
    assert st.attempted.error == "c.yaml:9:13: vid out of range"
    assert conditions(g)["Stalled"] == (True, "ValidationFailed")
    assert conditions(g)["Ready"] == (False, "ValidationFailed")
    assert st.refused == {"invalid": 1} and st.failures == 1
    assert g.handle(ArtifactSeen(B), T) == []  # the same bytes again: same verdict
    assert g.handle(ArtifactSeen(C), T) == [Attempt(C)]
    assert g.handle(Applied(C.digest), T) == []
    assert conditions(g)["Stalled"] == (False, "NotStalled")


def test_reverting_to_the_running_bytes_clears_stalled() -> None:
    g = running()
    g.handle(ArtifactSeen(B), T)
    g.handle(ValidationFailed(B.digest, "bad"), T)
    assert g.handle(ArtifactSeen(A), T) == []
    assert conditions(g)["Ready"] == (True, "Applied")


def test_an_apply_failure_is_retried_when_the_bytes_are_handed_on_again() -> None:
    g = running()
    g.handle(ArtifactSeen(B), T)
    g.handle(Validated(B.digest), T)
    assert g.handle(ApplyFailed(B.digest, "web: interface eth9 does not exist"), T) == []
    st = g.status()
    assert st.verified is not None and st.verified.digest == B.digest
    assert st.applied is not None and st.applied.digest == A.digest
    assert conditions(g)["Stalled"] == (True, "ApplyFailed")
    assert g.handle(ArtifactSeen(B), T) == [Attempt(B)]  # SIGHUP: look (and try) again


def test_a_failure_behind_which_a_newer_revision_waits_goes_on_with_it() -> None:
    g = running()
    g.handle(ArtifactSeen(B), T)
    g.handle(ArtifactSeen(C), T)
    assert g.handle(ValidationFailed(B.digest, "bad"), T) == [Attempt(C)]
    assert conditions(g)["Reconciling"] == (True, "Progressing")
    assert conditions(g)["Stalled"][0] is False


def test_stale_reports_are_ignored() -> None:
    g = running()
    assert g.handle(Applied(B.digest), T) == []
    assert g.handle(ValidationFailed(B.digest, "x"), T) == []
    assert g.status().applies == 1 and g.status().failures == 0


def test_a_refusal_changes_nothing_and_says_why() -> None:
    g = running()
    refusal = Refusal(Provenance("git:x", commit="d" * 40), "unsigned", "commit dddd unsigned")
    assert g.handle(RefusalSeen(refusal), T) == []
    st = g.status()
    assert st.applied is not None and st.applied.digest == A.digest
    assert st.refused == {"unsigned": 1}
    assert st.last_refusal == "unsigned: commit dddd unsigned"
    assert conditions(g)["Stalled"] == (True, "Refused")
    assert g.handle(ArtifactSeen(B), T) == [Attempt(B)]
    g.handle(Applied(B.digest), T)
    assert conditions(g)["Ready"] == (True, "Applied")


def test_a_suspended_node_holds_the_newest_revision_until_resumed() -> None:
    g = running()
    assert g.handle(Suspend(), T) == []
    assert g.handle(ArtifactSeen(B), T) == []
    assert g.handle(ArtifactSeen(C), T) == []
    st = g.status()
    assert st.suspended and st.pending == C.digest
    assert conditions(g)["Reconciling"] == (False, "Suspended")
    assert conditions(g)["Ready"] == (True, "Suspended")
    assert g.handle(Resume(), T) == [Attempt(C)]
    assert g.handle(Applied(C.digest), T) == []
    assert not g.status().suspended


def test_resume_without_news_attempts_nothing() -> None:
    g = running()
    g.handle(Suspend(), T)
    assert g.handle(Resume(), T) == []


def test_suspend_during_an_attempt_lets_it_finish_and_holds_the_next() -> None:
    g = running()
    g.handle(ArtifactSeen(B), T)
    g.handle(Suspend(), T)
    g.handle(ArtifactSeen(C), T)
    assert g.handle(Applied(B.digest), T) == []
    assert g.status().pending == C.digest
    assert g.handle(Resume(), T) == [Attempt(C)]


def test_suspended_instances_are_named_in_the_attempt_and_take_the_revision_on_resume() -> None:
    g = running()
    g.handle(Suspend("web"), T)
    assert g.handle(ArtifactSeen(B), T) == [Attempt(B, frozenset({"web"}))]
    g.handle(Applied(B.digest), T)
    assert g.status().suspended_instances == ("web",)
    assert conditions(g)["Ready"] == (True, "Suspended")
    # web was held back when B was applied: on resume it takes B
    assert g.handle(Resume("web"), T) == [Attempt(B)]
    g.handle(Applied(B.digest), T)
    assert g.handle(ArtifactSeen(B), T) == []
    assert conditions(g)["Ready"] == (True, "Applied")


def test_a_suspended_node_seeing_its_running_bytes_again_has_nothing_waiting() -> None:
    g = running()
    g.handle(Suspend(), T)
    assert g.handle(ArtifactSeen(A), T) == []  # SIGHUP while suspended
    assert g.status().pending is None
    assert conditions(g)["Reconciling"] == (False, "Idle")
    g.handle(ArtifactSeen(B), T)
    g.handle(ArtifactSeen(A), T)  # reverted before resume: nothing to do
    assert g.status().pending is None
    assert g.handle(Resume(), T) == []


def test_invalid_bytes_seen_while_suspended_do_not_wait() -> None:
    g = running()
    g.handle(ArtifactSeen(B), T)
    g.handle(ValidationFailed(B.digest, "bad"), T)
    g.handle(Suspend(), T)
    assert g.handle(ArtifactSeen(B), T) == []
    assert g.status().pending is None
