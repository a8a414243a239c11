"""The git source's decisions, as playbooks: facts in, accept or refuse out."""

from __future__ import annotations

import pytest

from reconciler.revision.git_policy import (
    BAD_SIGNATURE,
    EXPIRED_SIGNATURE,
    NOT_FAST_FORWARD,
    PATH_MISSING,
    REVOKED_KEY,
    UNSIGNED,
    UNTRUSTED_SIGNER,
    Accept,
    GitOptions,
    HeadFacts,
    Refuse,
    SignatureCheck,
    VerifyMode,
    VerifyRange,
    commits_to_verify,
    evaluate,
    poll_delay_s,
    redacted_url,
    signature_refusal,
)

A, B, C = "a" * 40, "b" * 40, "c" * 40


def opts(mode: VerifyMode = VerifyMode.RANGE, **kw: object) -> GitOptions:
    return GitOptions(url="/srv/repo", verify=mode, **kw)  # type: ignore[arg-type]


def good(commit: str) -> SignatureCheck:
    return SignatureCheck(commit, "G", "ops@example.org", "SHA256:abc")


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        ("G", None),
        ("N", UNSIGNED),
        ("B", BAD_SIGNATURE),
        ("U", UNTRUSTED_SIGNER),  # an ssh key not in the allowed signers
        ("E", UNTRUSTED_SIGNER),  # an OpenPGP key not in the trusted keys
        ("X", EXPIRED_SIGNATURE),
        ("Y", EXPIRED_SIGNATURE),
        ("R", REVOKED_KEY),
        ("?", BAD_SIGNATURE),  # a letter git may add later is not good
    ],
)
def test_only_a_good_signature_passes(status: str, reason: str | None) -> None:
    assert signature_refusal(SignatureCheck(A, status)) == reason


def test_commits_to_verify_by_mode() -> None:
    assert commits_to_verify(VerifyMode.OFF, A, B) is None
    assert commits_to_verify(VerifyMode.HEAD, A, B) == VerifyRange(B)
    assert commits_to_verify(VerifyMode.RANGE, A, B) == VerifyRange(B, A)
    # First start: nothing accepted, so no range: the head alone.
    assert commits_to_verify(VerifyMode.RANGE, None, B) == VerifyRange(B)
    # The accepted commit itself (a restart): its own signature.
    assert commits_to_verify(VerifyMode.RANGE, B, B) == VerifyRange(B)


def test_accepts_a_fast_forward_signed_throughout() -> None:
    facts = HeadFacts(C, A, True, [good(C), good(B)], True)
    assert evaluate(opts(), facts) == Accept(C, True, "ops@example.org (SHA256:abc)")


def test_one_unsigned_commit_in_the_range_refuses_the_head() -> None:
    facts = HeadFacts(C, A, True, [good(C), SignatureCheck(B, "N")], True)
    decision = evaluate(opts(), facts)
    assert isinstance(decision, Refuse)
    assert (decision.head, decision.reason) == (C, UNSIGNED)
    assert B in decision.detail


def test_the_oldest_bad_commit_is_reported() -> None:
    facts = HeadFacts(
        C, A, True, [SignatureCheck(C, "E", "", "FPR"), SignatureCheck(B, "B", "x", "y")], True
    )
    decision = evaluate(opts(), facts)
    assert isinstance(decision, Refuse)
    assert decision.reason == BAD_SIGNATURE
    assert B in decision.detail


def test_no_signature_listed_is_never_valid() -> None:
    decision = evaluate(opts(VerifyMode.HEAD), HeadFacts(C, None, True, [], True))
    assert isinstance(decision, Refuse) and decision.reason == UNSIGNED


def test_not_fast_forward_is_refused_before_anything_else() -> None:
    facts = HeadFacts(B, C, False, [SignatureCheck(B, "N")], False)
    decision = evaluate(opts(), facts)
    assert isinstance(decision, Refuse) and decision.reason == NOT_FAST_FORWARD
    assert C in decision.detail


def test_not_fast_forward_when_allowed_still_needs_signatures() -> None:
    options = opts(allow_non_fast_forward=True)
    assert evaluate(options, HeadFacts(B, C, False, [good(B)], True)) == Accept(
        B, True, "ops@example.org (SHA256:abc)"
    )
    refused = evaluate(options, HeadFacts(B, C, False, [SignatureCheck(B, "N")], True))
    assert isinstance(refused, Refuse) and refused.reason == UNSIGNED


def test_missing_file_is_refused_after_the_signatures() -> None:
    decision = evaluate(opts(VerifyMode.HEAD), HeadFacts(B, A, True, [good(B)], False))
    assert isinstance(decision, Refuse) and decision.reason == PATH_MISSING
    unsigned = evaluate(
        opts(VerifyMode.HEAD), HeadFacts(B, A, True, [SignatureCheck(B, "N")], False)
    )
    assert isinstance(unsigned, Refuse) and unsigned.reason == UNSIGNED


def test_verification_off_ignores_signatures() -> None:
    facts = HeadFacts(B, A, True, [], True)
    assert evaluate(opts(VerifyMode.OFF), facts) == Accept(B, False, None)


def test_backoff_doubles_from_the_interval_up_to_the_cap() -> None:
    o = GitOptions(url="x", interval_s=2.0, max_backoff_s=20.0)
    assert [poll_delay_s(o, n) for n in range(7)] == [2.0, 2.0, 4.0, 8.0, 16.0, 20.0, 20.0]
    assert poll_delay_s(o, 10_000) == 20.0  # no overflow after days of failures


def test_backoff_cap_is_never_below_the_interval() -> None:
    o = GitOptions(url="x", interval_s=600.0, max_backoff_s=300.0)
    assert poll_delay_s(o, 3) == 600.0


def test_source_label() -> None:
    assert GitOptions(
        url="https://git.example.org/lb.git", branch="prod", path="c.yaml"
    ).source == ("git:https://git.example.org/lb.git#prod:c.yaml")


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://bot:s3cret@git.example.org/lb.git", "https://bot:***@git.example.org/lb.git"),
        ("https://bot@git.example.org/lb.git", "https://bot@git.example.org/lb.git"),
        ("ssh://git@git.example.org:2222/lb.git", "ssh://git@git.example.org:2222/lb.git"),
        ("git@git.example.org:lb.git", "git@git.example.org:lb.git"),
        ("/srv/git/lb.git", "/srv/git/lb.git"),
    ],
)
def test_a_password_in_the_url_is_not_shown(url: str, shown: str) -> None:
    assert redacted_url(url) == shown
    assert GitOptions(url=url).source == f"git:{shown}#main:cluster.yaml"
