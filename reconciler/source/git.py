"""A git repository polled by the node itself: fetch, verify, read the file by object.

Every `interval` (and at once on `refresh()`: SIGHUP, POST /hooks/refresh) the branch is
fetched into a bare mirror under the state directory. A new head is judged by
`reconciler.revision.git_policy.evaluate` from facts git gives (ancestry, `%G?` of each
commit that must be signed, whether the file exists) and handed on as an `Artifact`
(the blob's bytes, with commit, author, commit time and signer) or a `Refusal` (a
bounded reason and a detail for the operator). What runs is never touched here.

A failed fetch is not a revision: nothing is handed on, `status.last_error` says what
git said, and the next fetch waits twice as long each time up to a cap
(`git_policy.poll_delay_s`). The last accepted commit is a ref of the mirror: after a
restart it is the base of the fast-forward and range checks, and when the remote cannot
be reached or its head is refused at start, it is what is handed on first.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from reconciler.adapters.git import (
    ACCEPTED_REF,
    GitError,
    GitMirror,
    prepare_keyring,
)
from reconciler.model.revision import Artifact, Provenance, Refusal, Verification, VerifyMode
from reconciler.revision.git_policy import (
    Accept,
    GitOptions,
    GitSourceStatus,
    HeadFacts,
    commits_to_verify,
    evaluate,
    poll_delay_s,
)

log = logging.getLogger("reconciler.source.git")


class GitSource:
    """`reconciler.source.Source` over a polled git repository."""

    def __init__(
        self, options: GitOptions, state_dir: Path, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.options = options
        root = state_dir / "git"
        self._keyring = root / "gnupg"
        self._no_signers = root / "allowed_signers.none"
        self._mirror = GitMirror(
            root / "mirror.git",
            gnupghome=self._keyring,
            allowed_signers=options.allowed_signers or self._no_signers,
        )
        self._clock = clock
        self._wake = asyncio.Event()
        self._seen: str | None = None  # the head last judged
        self._accepted: str | None = None
        self._last_refusal: Refusal | None = None
        self._last_error: str | None = None
        self._failures = 0
        self._fetches = 0
        self._fetch_failures = 0
        self._last_fetch_unix_s: float | None = None
        self._rejudge = False

    def refresh(self) -> None:
        """Look now; a burst of calls before the look gives one look. A head that was
        refused is judged again (the allowed signers may have changed)."""
        self._rejudge = True
        self._wake.set()

    @property
    def status(self) -> GitSourceStatus:
        return GitSourceStatus(
            source=self.options.source,
            verify=self.options.verify.value,
            head=self._seen,
            accepted=self._accepted,
            last_refusal=self._last_refusal,
            last_error=self._last_error,
            consecutive_failures=self._failures,
            fetches_total=self._fetches,
            fetch_failures_total=self._fetch_failures,
            last_fetch_unix_s=self._last_fetch_unix_s,
            next_poll_delay_s=poll_delay_s(self.options, self._failures),
        )

    def status_now(self) -> GitSourceStatus:
        """`status`, as a callable for whoever reports it."""
        return self.status

    @property
    def last_error(self) -> str | None:
        return self._last_error

    async def prepare(self) -> None:
        """Create the mirror and the verifying keyring. A trusted-keys file that holds no
        key, or a missing git or gpg, is a GitError: the node does not start with a
        verification it cannot do."""
        await self._mirror.ensure()
        if self.options.allowed_signers is None:
            self._no_signers.touch()
        if self.options.verify is not VerifyMode.OFF or self.options.trusted_keys:
            keys = await prepare_keyring(self._keyring, self.options.trusted_keys)
            log.info("git source: %d trusted OpenPGP key(s) in %s", keys, self._keyring)
        self._accepted = await self._mirror.ref(ACCEPTED_REF)

    async def updates(self) -> AsyncIterator[Artifact | Refusal]:
        await self.prepare()
        restart_base = self._accepted
        handed_on = False
        while True:
            rejudge, self._rejudge = self._rejudge, False
            head = await self._fetch()
            try:
                if head is None:
                    if not handed_on and restart_base is not None:
                        # The remote cannot be reached at start: serve what was accepted.
                        handed_on = True
                        previous = await self._judge(restart_base, first_look=True)
                        if isinstance(previous, Artifact):
                            yield previous
                elif head != self._seen or (rejudge and self._accepted != head):
                    result = await self._judge(head)
                    if (
                        not handed_on
                        and isinstance(result, Refusal)
                        and restart_base is not None
                        and restart_base != head
                    ):
                        previous = await self._judge(restart_base, first_look=True)
                        if isinstance(previous, Artifact):
                            yield previous
                    handed_on = True
                    yield result
            except GitError as exc:
                self._fail(f"judging {head}: {exc}")
            await self._sleep(poll_delay_s(self.options, self._failures))

    async def _fetch(self) -> str | None:
        self._fetches += 1
        try:
            head = await self._mirror.fetch(self.options.url, self.options.branch)
        except GitError as exc:
            self._fetch_failures += 1
            self._fail(str(exc))
            return None
        if self._failures:
            log.info("git source: fetch works again after %d failure(s)", self._failures)
        self._failures = 0
        self._last_error = None
        self._last_fetch_unix_s = self._clock()
        return head

    def _fail(self, message: str) -> None:
        self._failures += 1
        self._last_error = message
        log.warning(
            "git source: %s (failure %d in a row; next try in %.3g s; what runs is unchanged)",
            message,
            self._failures,
            poll_delay_s(self.options, self._failures),
        )

    async def _sleep(self, delay_s: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), delay_s)
        self._wake.clear()

    async def _judge(self, head: str, *, first_look: bool = False) -> Artifact | Refusal:
        """Decide on `head` from git's facts. `first_look`: the commit accepted before a
        restart, judged on its own (its signature, its file) as nothing came before it."""
        opts = self.options
        base = None if first_look else self._accepted
        descends = base is None or await self._mirror.descends(base, head)
        # base..head: for a rewritten history (when allowed), every commit the accepted
        # one does not have. A refused rewrite needs no signature check.
        wanted = (
            commits_to_verify(opts.verify, base, head)
            if descends or opts.allow_non_fast_forward
            else None
        )
        signatures = await self._mirror.signatures(wanted) if wanted is not None else []
        data = await self._mirror.read_file(head, opts.path)
        decision = evaluate(
            opts,
            HeadFacts(
                head=head,
                accepted=base,
                descends=descends,
                signatures=signatures,
                file_present=data is not None,
            ),
        )
        info = await self._mirror.commit_info(head)
        if not first_look:
            self._seen = head
        if isinstance(decision, Accept):
            assert data is not None
            provenance = Provenance(
                source=opts.source,
                commit=head,
                author=info.author,
                committed_unix_s=info.committed_unix_s,
                signer=decision.signer,
            )
            await self._mirror.set_ref(ACCEPTED_REF, head)
            self._accepted = head
            log.info(
                "git source: %s by %s accepted (%s)",
                head[:12],
                info.author,
                f"signed by {decision.signer}" if decision.verified else "verification off",
            )
            return Artifact(
                data=data,
                digest=hashlib.sha256(data).hexdigest(),
                provenance=provenance,
                verification=(
                    Verification.VERIFIED if decision.verified else Verification.NOT_REQUIRED
                ),
            )
        refusal = Refusal(
            provenance=Provenance(
                source=opts.source,
                commit=head,
                author=info.author,
                committed_unix_s=info.committed_unix_s,
            ),
            reason=decision.reason,
            detail=decision.detail,
        )
        self._last_refusal = refusal
        log.warning("git source: %s refused: %s", head[:12], decision.detail)
        return refusal
