"""The polled git source against real repositories and real keys made by the tests.

No root and no network: the "remote" is a repository in the test's directory, fetched by
path; ssh keys come from ssh-keygen, OpenPGP keys from gpg in a keyring of the test's.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path

import pytest

from reconciler.adapters import git as git_adapter
from reconciler.adapters.git import GitError, GitMirror, read_blob, resolve_commit
from reconciler.model.revision import Artifact, Refusal, Verification, VerifyMode
from reconciler.revision.git_policy import GitOptions
from reconciler.source.git import GitSource
from reconciler.testing.gitrepo import GpgKey, Signers, SshKey, WorkRepo

pytestmark = pytest.mark.skipif(
    not all(shutil.which(t) for t in ("git", "gpg", "ssh-keygen", "gpgconf")),
    reason="needs git, gpg and ssh-keygen",
)

FILE = "cluster.yaml"
STEP_S = 10.0  # longest wait for one update


@pytest.fixture
def signers(tmp_path: Path) -> Iterator[Signers]:
    s = Signers(tmp_path / "keys")
    yield s
    s.close()


@pytest.fixture
def repo(tmp_path: Path, signers: Signers) -> WorkRepo:
    return WorkRepo(tmp_path / "remote", signers)


@pytest.fixture
def alice(signers: Signers) -> SshKey:
    return signers.ssh("alice")


@pytest.fixture
def mallory(signers: Signers) -> SshKey:
    return signers.ssh("mallory")


def allowed(tmp_path: Path, *keys: SshKey) -> Path:
    path = tmp_path / "node" / "allowed_signers"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(k.allowed_signers_line() for k in keys))
    return path


def trusted(tmp_path: Path, *keys: GpgKey) -> Path:
    path = tmp_path / "node" / "trusted.asc"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(k.armored for k in keys))
    return path


class Follower:
    """Runs a GitSource's updates() in a task and hands over what it yields."""

    def __init__(self, source: GitSource) -> None:
        self.source = source
        self.queue: asyncio.Queue[Artifact | Refusal] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Follower:
        async def pump() -> None:
            async for item in self.source.updates():
                await self.queue.put(item)

        self._task = asyncio.create_task(pump())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await self._task

    async def next(self) -> Artifact | Refusal:
        return await asyncio.wait_for(self.queue.get(), STEP_S)

    async def quiet_for(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        assert self.queue.empty(), f"unexpected update: {self.queue.get_nowait()}"


def source(tmp_path: Path, repo: WorkRepo, **kw: object) -> GitSource:
    options = GitOptions(url=repo.url, path=FILE, interval_s=0.1, **kw)  # type: ignore[arg-type]
    return GitSource(options, tmp_path / "state")


def run(main: Callable[[], Coroutine[object, object, None]]) -> None:
    asyncio.run(main())


# --- the adapter's two read functions ---------------------------------------------------


def test_resolve_commit_and_read_blob(repo: WorkRepo) -> None:
    first = repo.commit({FILE: "a: 1\n", "dir/other.yaml": "b\n"}, "one")
    second = repo.commit({FILE: None}, "two")
    assert resolve_commit(repo.path, "main") == second
    assert resolve_commit(repo.path, "HEAD~1") == first
    assert resolve_commit(repo.path, first[:10]) == first
    assert read_blob(repo.path, first, FILE) == b"a: 1\n"
    assert read_blob(repo.path, first, "./dir/other.yaml") == b"b\n"
    assert read_blob(repo.path, second, FILE) is None
    assert read_blob(repo.path, first, "nope.yaml") is None
    with pytest.raises(GitError, match="dir is a directory, not a file"):
        read_blob(repo.path, first, "dir")
    (repo.path / "link.yaml").symlink_to("dir/other.yaml")
    repo.git("add", "link.yaml")
    repo.git("commit", "--quiet", "-m", "a link")
    with pytest.raises(GitError, match=r"link\.yaml is a symbolic link, not a file"):
        read_blob(repo.path, repo.head(), "link.yaml")
    with pytest.raises(GitError, match="not a commit"):
        resolve_commit(repo.path, "no-such-branch")
    with pytest.raises(GitError, match="not a commit"):
        resolve_commit(repo.path.parent / "not-a-repo", "HEAD")
    with pytest.raises(GitError, match="not a commit"):
        read_blob(repo.path, "0" * 40, FILE)


# --- verification ------------------------------------------------------------------------


def test_head_mode_ssh_good_then_unknown_signer_refused(
    tmp_path: Path, repo: WorkRepo, alice: SshKey, mallory: SshKey
) -> None:
    first = repo.commit({FILE: "v: 1\n"}, "one", sign=alice)
    src = source(tmp_path, repo, verify=VerifyMode.HEAD, allowed_signers=allowed(tmp_path, alice))

    async def main() -> None:
        async with Follower(src) as f:
            art = await f.next()
            assert isinstance(art, Artifact)
            assert art.data == b"v: 1\n"
            assert art.verification is Verification.VERIFIED
            assert art.provenance.commit == first
            assert art.provenance.author == "Test Author <author@example.org>"
            assert art.provenance.committed_unix_s is not None
            assert art.provenance.signer is not None
            assert art.provenance.signer.startswith("alice@example.org (SHA256:")
            assert art.provenance.source == f"git:{repo.url}#main:{FILE}"

            bad = repo.commit({FILE: "v: 2\n"}, "two", sign=mallory)
            ref = await f.next()
            assert isinstance(ref, Refusal)
            assert (ref.reason, ref.provenance.commit) == ("untrusted-signer", bad)
            assert src.status.accepted == first
            assert src.status.last_refusal == ref
            await f.quiet_for(0.5)  # a refused head is judged once, not at every poll

    run(main)


def test_head_mode_gpg_good_unsigned_and_unknown_key(
    tmp_path: Path, repo: WorkRepo, signers: Signers
) -> None:
    ops = signers.gpg("ops")
    stranger = signers.gpg("stranger")
    repo.commit({FILE: "v: 1\n"}, "one", sign=ops)
    src = source(tmp_path, repo, verify=VerifyMode.HEAD, trusted_keys=trusted(tmp_path, ops))

    async def main() -> None:
        async with Follower(src) as f:
            art = await f.next()
            assert isinstance(art, Artifact) and art.verification is Verification.VERIFIED
            assert art.provenance.signer == f"{ops.uid} ({ops.fingerprint})"

            repo.commit({FILE: "v: 2\n"}, "unsigned")
            ref = await f.next()
            assert isinstance(ref, Refusal) and ref.reason == "unsigned"

            repo.commit({FILE: "v: 3\n"}, "by a key the node does not trust", sign=stranger)
            ref = await f.next()
            assert isinstance(ref, Refusal) and ref.reason == "untrusted-signer"

            # Head mode: a good head after them is enough.
            good = repo.commit({FILE: "v: 4\n"}, "signed again", sign=ops)
            art = await f.next()
            assert isinstance(art, Artifact) and art.provenance.commit == good
            assert art.data == b"v: 4\n"
        assert not list((tmp_path / "state").rglob("S.gpg-agent*")), "no agent left behind"

    run(main)


def test_range_mode_refuses_an_unsigned_commit_under_a_signed_head(
    tmp_path: Path, repo: WorkRepo, alice: SshKey
) -> None:
    repo.commit({FILE: "v: 1\n"}, "one", sign=alice)
    src = source(tmp_path, repo, verify=VerifyMode.RANGE, allowed_signers=allowed(tmp_path, alice))

    async def main() -> None:
        async with Follower(src) as f:
            first = await f.next()
            assert isinstance(first, Artifact)
            # Two signed commits arrive in one fetch: both are checked.
            repo.commit({FILE: "v: 2\n"}, "two", sign=alice)
            three = repo.commit({FILE: "v: 3\n"}, "three", sign=alice)
            src.refresh()
            art = await f.next()
            assert isinstance(art, Artifact) and art.provenance.commit == three

            sneaked = repo.commit({"notes.txt": "x\n"}, "unsigned, in the middle")
            top = repo.commit({FILE: "v: 4\n"}, "signed head", sign=alice)
            src.refresh()
            ref = await f.next()
            assert isinstance(ref, Refusal)
            assert ref.reason == "unsigned"
            assert ref.provenance.commit == top
            assert sneaked in ref.detail
            assert src.status.accepted == three

            # The recovery: put the branch back on the accepted commit, then sign on.
            repo.reset_hard(three)
            repo.commit({FILE: "v: 5\n"}, "five", sign=alice)
            art = await f.next()
            assert isinstance(art, Artifact) and art.data == b"v: 5\n"

    run(main)


def test_bad_signature_refused(tmp_path: Path, repo: WorkRepo, alice: SshKey) -> None:
    repo.commit({FILE: "v: 1\n"}, "one", sign=alice)
    forged = repo.tamper_head()  # alice's signature over other contents
    src = source(tmp_path, repo, verify=VerifyMode.HEAD, allowed_signers=allowed(tmp_path, alice))

    async def main() -> None:
        async with Follower(src) as f:
            ref = await f.next()
            assert isinstance(ref, Refusal)
            assert (ref.reason, ref.provenance.commit) == ("bad-signature", forged)
            assert src.status.accepted is None
            fixed = repo.commit({FILE: "v: 2\n"}, "two", sign=alice)
            art = await f.next()
            assert isinstance(art, Artifact) and art.provenance.commit == fixed

    run(main)


def test_force_push_refused_unless_allowed(tmp_path: Path, repo: WorkRepo) -> None:
    one = repo.commit({FILE: "v: 1\n"}, "one")
    two = repo.commit({FILE: "v: 2\n"}, "two")
    src = source(tmp_path, repo)

    async def main() -> None:
        async with Follower(src) as f:
            art = await f.next()
            assert isinstance(art, Artifact) and art.provenance.commit == two
            # A rollback to an older, once-valid commit.
            repo.reset_hard(one)
            ref = await f.next()
            assert isinstance(ref, Refusal) and ref.reason == "not-fast-forward"
            # A rewritten history on top of it.
            other = repo.commit({FILE: "v: 2b\n"}, "rewritten")
            ref = await f.next()
            assert isinstance(ref, Refusal) and ref.reason == "not-fast-forward"
            assert ref.provenance.commit == other
            assert src.status.accepted == two

    run(main)

    allowing = GitSource(
        GitOptions(url=repo.url, path=FILE, interval_s=0.1, allow_non_fast_forward=True),
        tmp_path / "state2",
    )

    async def allowed_main() -> None:
        async with Follower(allowing) as f:
            art = await f.next()
            assert isinstance(art, Artifact)
            repo.reset_hard(one)
            back = await f.next()
            assert isinstance(back, Artifact) and back.provenance.commit == one

    run(allowed_main)


def test_path_missing_refused(tmp_path: Path, repo: WorkRepo) -> None:
    repo.commit({FILE: "v: 1\n"}, "one")
    src = source(tmp_path, repo)

    async def main() -> None:
        async with Follower(src) as f:
            assert isinstance(await f.next(), Artifact)
            gone = repo.commit({FILE: None, "moved.yaml": "v: 1\n"}, "moved away")
            ref = await f.next()
            assert isinstance(ref, Refusal)
            assert (ref.reason, ref.provenance.commit) == ("path-missing", gone)
            # A directory of that name is not the file either.
            tree = repo.commit({f"{FILE}/x.yaml": "v: 1\n"}, "a directory")
            ref = await f.next()
            assert isinstance(ref, Refusal)
            assert (ref.reason, ref.provenance.commit) == ("path-missing", tree)

    run(main)


def test_fetch_errors_back_off_and_keep_serving(tmp_path: Path, repo: WorkRepo) -> None:
    one = repo.commit({FILE: "v: 1\n"}, "one")
    src = GitSource(
        GitOptions(url=repo.url, path=FILE, interval_s=0.1, max_backoff_s=0.4),
        tmp_path / "state",
    )
    hidden = repo.path.with_name("hidden")

    async def main() -> None:
        async with Follower(src) as f:
            art = await f.next()
            assert isinstance(art, Artifact) and art.provenance.commit == one
            repo.path.rename(hidden)  # the remote is gone
            await asyncio.sleep(1.5)
            st = src.status
            assert st.last_error is not None and "fetch" in st.last_error
            # 0.1 + 0.1 + 0.2 + 0.4 + 0.4 ... in 1.5 s: a handful, not fifteen.
            assert 3 <= st.fetch_failures_total <= 7, st
            assert st.next_poll_delay_s == 0.4
            assert st.accepted == one
            assert f.queue.empty(), "a failed fetch is not a revision"
            hidden.rename(repo.path)
            src.refresh()  # look now, whatever the back-off
            await asyncio.sleep(0.5)
            assert src.status.last_error is None
            assert src.status.consecutive_failures == 0
            two = repo.commit({FILE: "v: 2\n"}, "two")
            art = await f.next()
            assert isinstance(art, Artifact) and art.provenance.commit == two

    run(main)


def test_restart_serves_the_accepted_commit_when_the_head_is_refused(
    tmp_path: Path, repo: WorkRepo, alice: SshKey
) -> None:
    good = repo.commit({FILE: "v: 1\n"}, "one", sign=alice)
    signers_file = allowed(tmp_path, alice)

    async def first_run() -> None:
        src = source(tmp_path, repo, verify=VerifyMode.RANGE, allowed_signers=signers_file)
        async with Follower(src) as f:
            assert isinstance(await f.next(), Artifact)

    run(first_run)
    # While the node is down: an unsigned commit lands.
    bad = repo.commit({FILE: "v: 2\n"}, "unsigned")

    async def second_run() -> None:
        src = source(tmp_path, repo, verify=VerifyMode.RANGE, allowed_signers=signers_file)
        async with Follower(src) as f:
            art = await f.next()
            assert isinstance(art, Artifact) and art.provenance.commit == good
            ref = await f.next()
            assert isinstance(ref, Refusal) and ref.provenance.commit == bad

    run(second_run)
    # The remote is unreachable at the next start: the accepted commit still runs.
    repo.path.rename(repo.path.with_name("gone"))

    async def third_run() -> None:
        src = source(tmp_path, repo, verify=VerifyMode.RANGE, allowed_signers=signers_file)
        async with Follower(src) as f:
            art = await f.next()
            assert isinstance(art, Artifact) and art.provenance.commit == good
            assert src.status.last_error is not None

    run(third_run)


def test_trusted_keys_file_without_a_key_stops_the_source(tmp_path: Path, repo: WorkRepo) -> None:
    repo.commit({FILE: "v: 1\n"}, "one")
    empty = tmp_path / "empty.asc"
    empty.write_text("not a key\n")
    src = source(tmp_path, repo, verify=VerifyMode.HEAD, trusted_keys=empty)

    async def main() -> None:
        with pytest.raises(GitError, match=r"empty\.asc"):
            await src.prepare()

    run(main)


def test_a_hanging_fetch_times_out_and_leaves_no_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(git_adapter, "FETCH_TIMEOUT_S", 0.5)
    # An ssh "connection" that never answers ('#' comments out the host and command).
    marker = "31.4159"
    monkeypatch.setenv("GIT_SSH_COMMAND", f"sleep {marker} #")
    mirror = GitMirror(tmp_path / "mirror.git")

    async def main() -> None:
        await mirror.ensure()
        t0 = time.monotonic()
        with pytest.raises(GitError, match=r"git fetch: timed out after 0\.5 s"):
            await mirror.fetch("ssh://git.example.org/lb.git", "main")
        assert time.monotonic() - t0 < 5

    run(main)

    def left() -> list[Path]:
        return [p for p in Path("/proc").glob("[0-9]*/cmdline") if marker.encode() in _read(p)]

    deadline = time.monotonic() + 3.0  # SIGKILLed processes take a moment to be gone
    while left() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not left(), "the ssh stand-in outlived the fetch"


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""
