"""What a polled git repository's new head means: pure decisions, no git, no clock.

The git source (`reconciler.source.git`) gathers the facts with the git command-line
tool (the fetched head, whether the last accepted commit is its ancestor, the signature
status of each commit git reports, whether the file exists) and this module decides:
hand the revision on, or refuse it with a bounded reason. It also holds the poll and
back-off arithmetic, so that both are tested as playbooks without a repository.

Signature status letters are git's `%G?` placeholder (git-log(1), "PRETTY FORMATS"):
G good, B bad, U good but unknown validity, X good but expired signature, Y good by an
expired key, R good by a revoked key, E cannot be checked (no such key), N no signature.
Only G passes: the verifying keyring holds the trusted keys alone (with `trust-model
always`, so an imported key is valid), and an ssh key that is not in the allowed signers
file is U. "No signature" is never valid.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from reconciler.model.revision import Refusal, VerifyMode

# Reasons a revision is refused: bounded labels for metrics and status.
UNSIGNED = "unsigned"
BAD_SIGNATURE = "bad-signature"
UNTRUSTED_SIGNER = "untrusted-signer"
EXPIRED_SIGNATURE = "expired-signature"
REVOKED_KEY = "revoked-key"
NOT_FAST_FORWARD = "not-fast-forward"
PATH_MISSING = "path-missing"

_REASON_BY_STATUS = {
    "N": UNSIGNED,
    "B": BAD_SIGNATURE,
    "U": UNTRUSTED_SIGNER,
    "E": UNTRUSTED_SIGNER,
    "X": EXPIRED_SIGNATURE,
    "Y": EXPIRED_SIGNATURE,
    "R": REVOKED_KEY,
}


DEFAULT_BRANCH = "main"
DEFAULT_PATH = "cluster.yaml"
DEFAULT_INTERVAL_S = 30.0
DEFAULT_MAX_BACKOFF_S = 300.0


@dataclass(frozen=True)
class GitOptions:
    """A polled repository, and how its commits are verified (node-local, never from
    the repository itself)."""

    url: str  # anything `git fetch` takes: https://, ssh://, file://, a local path
    branch: str = DEFAULT_BRANCH
    path: str = DEFAULT_PATH  # the desired-state file inside the repository
    interval_s: float = DEFAULT_INTERVAL_S  # between polls while fetches succeed
    verify: VerifyMode = VerifyMode.OFF
    allowed_signers: Path | None = None  # ssh signatures: git's gpg.ssh.allowedSignersFile
    trusted_keys: Path | None = None  # OpenPGP signatures: armored public keys
    allow_non_fast_forward: bool = False  # accept a head that does not descend from ours
    max_backoff_s: float = DEFAULT_MAX_BACKOFF_S  # longest wait after failed fetches

    @property
    def source(self) -> str:
        """The `Provenance.source` label: git:URL#BRANCH:PATH, without a password the URL
        may carry (it ends up in /status, logs and a metric label)."""
        return f"git:{redacted_url(self.url)}#{self.branch}:{self.path}"


def redacted_url(url: str) -> str:
    """`url` with the password of its user-info part replaced by ***."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    authority, slash, path = rest.partition("/")
    userinfo, at, host = authority.rpartition("@")
    if not at or ":" not in userinfo:
        return url
    user = userinfo.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}{slash}{path}"


@dataclass(frozen=True)
class SignatureCheck:
    """One commit's signature as git reports it (`%G?`, `%GS`, `%GF`)."""

    commit: str
    status: str  # one %G? letter
    signer: str = ""  # ssh: the allowed-signers principal; OpenPGP: the key's user id
    fingerprint: str = ""  # ssh: SHA256:...; OpenPGP: the primary key fingerprint

    @property
    def who(self) -> str:
        """Signer and key for status and provenance."""
        if self.signer and self.fingerprint:
            return f"{self.signer} ({self.fingerprint})"
        return self.signer or self.fingerprint


def signature_refusal(check: SignatureCheck) -> str | None:
    """None when the signature is good and made by an allowed signer, else the reason."""
    if check.status == "G":
        return None
    return _REASON_BY_STATUS.get(check.status, BAD_SIGNATURE)


@dataclass(frozen=True)
class VerifyRange:
    """The commits whose signatures must be checked: `base..head`, or `head` alone when
    `base` is None."""

    head: str
    base: str | None = None


def commits_to_verify(mode: VerifyMode, accepted: str | None, head: str) -> VerifyRange | None:
    """Which commits decide whether `head` may run; None when no signature is checked.

    Range mode checks every commit reachable from `head` and not from the last accepted
    commit (merges and the commits they bring in included), as `git log base..head`
    lists them. With nothing accepted yet (a node's first start) there is no range to
    check, so the head alone is checked: history before it is what the operator chose
    to trust by pointing the node at this branch.
    """
    if mode is VerifyMode.OFF:
        return None
    if mode is VerifyMode.HEAD or accepted is None or accepted == head:
        return VerifyRange(head)
    return VerifyRange(head, accepted)


@dataclass(frozen=True)
class Accept:
    """Hand the revision on."""

    head: str
    verified: bool  # signatures were checked and every one was good
    signer: str | None  # who signed the head, when verified


@dataclass(frozen=True)
class Refuse:
    """Do not hand the revision on; what runs stays."""

    head: str
    reason: str  # one of REFUSAL_REASONS
    detail: str


@dataclass(frozen=True)
class HeadFacts:
    """What git said about a fetched head."""

    head: str
    accepted: str | None  # the last commit handed on, if any
    descends: bool  # accepted is head or one of its ancestors (true when nothing accepted)
    signatures: Sequence[SignatureCheck]  # of commits_to_verify(...), newest first
    file_present: bool  # the desired-state path exists as a file at head


def evaluate(options: GitOptions, facts: HeadFacts) -> Accept | Refuse:
    """Accept or refuse a fetched head: history first, then signatures, then the file.

    A head that does not descend from the accepted commit is a rollback or a rewritten
    history (a force-push): refused unless explicitly allowed, so that whoever can push
    cannot put an older, once-valid revision back. Then, when verification is on, every
    commit git listed must carry a good signature by an allowed signer; the oldest bad
    one is reported. Then the file must exist at that commit.
    """
    head = facts.head
    if not facts.descends and not options.allow_non_fast_forward:
        return Refuse(
            head,
            NOT_FAST_FORWARD,
            f"{head} does not descend from the applied {facts.accepted} "
            "(history rewritten or rolled back)",
        )
    signer: str | None = None
    if options.verify is not VerifyMode.OFF:
        if not facts.signatures:
            return Refuse(head, UNSIGNED, f"no signature found for {head}")
        for check in reversed(facts.signatures):
            reason = signature_refusal(check)
            if reason is not None:
                who = f" by {check.who}" if check.who else ""
                return Refuse(
                    head, reason, f"commit {check.commit}: {reason}{who} (git %G? {check.status})"
                )
        signer = next((c.who for c in facts.signatures if c.commit == head), None)
    if not facts.file_present:
        return Refuse(head, PATH_MISSING, f"no file {options.path} at {head}")
    return Accept(head, options.verify is not VerifyMode.OFF, signer)


@dataclass(frozen=True)
class GitSourceStatus:
    """What a git source knows, for /status and metrics (kept by `source.git.GitSource`)."""

    source: str  # git:URL#BRANCH:PATH
    verify: str  # off, head, range
    head: str | None  # the branch head judged last (accepted or refused)
    accepted: str | None  # the last commit handed on as an Artifact
    last_refusal: Refusal | None
    last_error: str | None  # the last failed fetch (or git error); None once one succeeds
    consecutive_failures: int
    fetches_total: int
    fetch_failures_total: int
    last_fetch_unix_s: float | None  # the last successful fetch
    next_poll_delay_s: float


def poll_delay_s(options: GitOptions, consecutive_failures: int) -> float:
    """How long to wait before the next fetch.

    After a success: the poll interval. After n failed fetches in a row: the interval
    doubled n-1 times (no jitter: one node polls one repository), capped at
    `max_backoff_s` but never below the interval itself.
    """
    if consecutive_failures <= 0:
        return options.interval_s
    cap = max(options.interval_s, options.max_backoff_s)
    # Doubling is bounded before it is computed: 2**n of a large n is a huge float.
    doublings = min(consecutive_failures - 1, 64)
    return min(cap, options.interval_s * 2.0**doublings)
