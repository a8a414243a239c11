"""The git command-line tool: the only code that runs `git` (and `gpg` for its keyring).

Files are read by object (`git ls-tree` then `git cat-file blob`), never from a work
tree that could change underneath. git runs with a controlled environment: no user or
system configuration (GIT_CONFIG_GLOBAL=/dev/null, GIT_CONFIG_NOSYSTEM=1), no terminal
prompts, the C locale, and for signature checks a dedicated GNUPGHOME (holding only the
trusted OpenPGP keys) and an allowed-signers file for ssh signatures given with `-c`.

`resolve_commit` and `read_blob` are synchronous (the CLI's use); `GitMirror` is the
daemon's: a bare repository under the state directory, fetched into with asyncio
subprocesses so that a slow remote never blocks the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from reconciler.revision.git_policy import SignatureCheck, VerifyRange, redacted_url

GIT_TIMEOUT_S: Final = 30.0  # local commands: rev-parse, cat-file, log
FETCH_TIMEOUT_S: Final = 120.0  # a fetch over the network
FETCHED_REF: Final = "refs/reconciler/fetched"  # the remote branch's head as last fetched
ACCEPTED_REF: Final = "refs/reconciler/accepted"  # the last commit handed on
_PASSED_ENV: Final = (
    "PATH",
    "HOME",  # ssh's known_hosts and keys for ssh:// remotes
    "SSH_AUTH_SOCK",
    "GIT_SSH_COMMAND",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
)
_FIELD: Final = "\x1f"
_RECORD: Final = "\x1e"


class GitError(Exception):
    """git failed, timed out, or is not installed; the message says which command and why."""


def git_environment(
    gnupghome: Path | None = None, base: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment every git (and gpg) command runs with."""
    source = os.environ if base is None else base
    env = {k: source[k] for k in _PASSED_ENV if k in source}
    env.setdefault("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
    env.update(
        GIT_CONFIG_GLOBAL="/dev/null",
        GIT_CONFIG_NOSYSTEM="1",
        GIT_TERMINAL_PROMPT="0",
        GIT_ASKPASS="/bin/false",
        SSH_ASKPASS="/bin/false",
        LC_ALL="C",
    )
    if gnupghome is not None:
        env["GNUPGHOME"] = str(gnupghome)
    return env


def _command(argv: Sequence[str]) -> str:
    """`git fetch`, `gpg --import`: the program and what it was asked to do."""
    rest = list(argv[1:])
    while rest and rest[0] in ("--git-dir", "-C", "-c"):
        rest = rest[2:]
    return " ".join([argv[0], *rest[:1]])


def _explain(argv: Sequence[str], rc: int | None, stderr: bytes) -> str:
    words = _command(argv)
    lines = [ln for ln in stderr.decode(errors="replace").splitlines() if ln.strip()]
    said = "; ".join(lines[-3:]) or f"exit status {rc}"
    return f"{words}: {said}"


def _run(argv: Sequence[str], env: Mapping[str, str], timeout_s: float) -> tuple[int, bytes]:
    try:
        proc = subprocess.run(
            argv, env=dict(env), capture_output=True, timeout=timeout_s, check=False
        )
    except FileNotFoundError as exc:
        raise GitError(f"{argv[0]} is not installed: {exc}") from exc
    except subprocess.TimeoutExpired as exc:
        raise GitError(f"{_command(argv)}: timed out after {timeout_s:g} s") from exc
    if proc.returncode not in (0, 1):
        raise GitError(_explain(argv, proc.returncode, proc.stderr))
    return proc.returncode, proc.stdout


def _git_sync(repo: Path, *args: str) -> tuple[int, bytes]:
    return _run(["git", "-C", str(repo), *args], git_environment(), GIT_TIMEOUT_S)


def resolve_commit(repo: Path, rev: str) -> str:
    """The full commit id `rev` names in `repo` (a branch, tag, short id, HEAD~2...)."""
    try:
        rc, out = _git_sync(
            repo, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}"
        )
    except GitError as exc:  # not a repository, git missing
        raise GitError(f"{rev}: not a commit in {repo}: {exc}") from exc
    if rc != 0:
        raise GitError(f"{rev}: not a commit in {repo}: unknown revision")
    return out.decode().strip()


class NotAFile(GitError):
    """The path names a directory, a symbolic link or a submodule, not a file."""


_KINDS = {"040000": "directory", "120000": "symbolic link", "160000": "submodule"}


def _tree_entry(out: bytes, path: str, commit: str) -> str | None:
    """The blob id from `git ls-tree -z` output, None when there is no entry. A symbolic
    link is not followed: its target is not the file's contents."""
    entry = out.split(b"\0", 1)[0]
    if not entry:
        return None
    meta, _, _ = entry.partition(b"\t")
    mode, kind, oid = meta.decode().split()
    if kind != "blob" or mode not in ("100644", "100755"):
        raise NotAFile(f"{path} is a {_KINDS.get(mode, kind)}, not a file, at {commit}")
    return oid


def _tree_path(path: str) -> str:
    return path.strip("/").removeprefix("./")


def read_blob(repo: Path, commit: str, path: str) -> bytes | None:
    """The bytes of `path` at `commit`, read by object; None when it does not exist there."""
    commit = resolve_commit(repo, commit)  # an unknown commit is an error, not a missing file
    rc, out = _git_sync(repo, "ls-tree", "-z", "--full-tree", commit, "--", _tree_path(path))
    if rc != 0:
        raise GitError(f"cannot list {path} at {commit} in {repo}")
    oid = _tree_entry(out, path, commit)
    if oid is None:
        return None
    rc, data = _git_sync(repo, "cat-file", "blob", oid)
    if rc != 0:
        raise GitError(f"cannot read {path} ({oid}) at {commit} in {repo}")
    return data


@dataclass(frozen=True)
class CommitInfo:
    commit: str
    author: str  # "Name <email>"
    committed_unix_s: float  # the committer date


def _worktree(workdir: Path, *args: str) -> tuple[int, bytes] | None:
    """git in someone else's work tree (a git-sync checkout, run as its own user): read
    only, so git's ownership check is lifted for this call; None when git cannot answer."""
    try:
        return _run(
            ["git", "-c", "safe.directory=*", "-C", str(workdir), *args],
            git_environment(),
            GIT_TIMEOUT_S,
        )
    except GitError:
        return None


def worktree_commit(workdir: Path, rev: str = "HEAD") -> CommitInfo | None:
    """Commit id, author and commit time of ``rev`` in the work tree ``workdir`` (for the
    watched-file source); None when it is not a work tree or the commit is unknown there."""
    done = _worktree(workdir, "log", "-1", f"--format=%H{_FIELD}%an <%ae>{_FIELD}%ct", rev, "--")
    if done is None or done[0] != 0 or not done[1].strip():
        return None
    commit, author, when = done[1].decode(errors="replace").strip().split(_FIELD)
    return CommitInfo(commit, author, float(when))


def committed_unchanged(workdir: Path, name: str) -> bool:
    """Whether the file ``name`` in ``workdir`` is tracked and equal to HEAD's copy (so
    HEAD's commit id names its bytes)."""
    status = _worktree(workdir, "status", "--porcelain", "--", name)
    tracked = _worktree(workdir, "ls-files", "--error-unmatch", "--", name)
    return status is not None and status == (0, b"") and tracked is not None and tracked[0] == 0


class GitMirror:
    """A bare repository under the state directory that one branch is fetched into.

    The fetched head and the last accepted commit are refs of the mirror, so the
    accepted commit stays readable (and is the base of ancestry and range checks) across
    restarts and force-pushes.
    """

    def __init__(
        self,
        directory: Path,
        *,
        gnupghome: Path | None = None,
        allowed_signers: Path | None = None,
    ) -> None:
        self.directory = directory
        self.gnupghome = gnupghome
        self.allowed_signers = allowed_signers
        self._env = git_environment(gnupghome)

    async def _git(
        self, *args: str, timeout_s: float = GIT_TIMEOUT_S, config: Sequence[str] = ()
    ) -> tuple[int, bytes]:
        argv = ["git", "--git-dir", str(self.directory)]
        for item in config:
            argv += ["-c", item]
        argv += args
        return await run_async(argv, self._env, timeout_s)

    async def ensure(self) -> None:
        """Create the bare repository when it is not there yet."""
        if (self.directory / "HEAD").exists():
            return
        self.directory.parent.mkdir(parents=True, exist_ok=True)
        await run_async(
            ["git", "init", "--bare", "--quiet", str(self.directory)], self._env, GIT_TIMEOUT_S
        )

    async def fetch(self, url: str, branch: str) -> str:
        """Fetch `branch` of `url` (forced: the remote may have been rewritten; whether
        that is accepted is decided later) and return its head commit."""
        rc, _ = await self._git(
            "fetch",
            "--quiet",
            "--no-tags",
            "--no-write-fetch-head",
            "--force",
            "--end-of-options",
            url,
            f"+refs/heads/{branch}:{FETCHED_REF}",
            timeout_s=FETCH_TIMEOUT_S,
            # Housekeeping in the fetch itself, not a detached gc that outlives it.
            config=("gc.autoDetach=false", "maintenance.autoDetach=false"),
        )
        if rc != 0:
            raise GitError(f"git fetch {redacted_url(url)} {branch}: failed")
        head = await self.ref(FETCHED_REF)
        if head is None:
            raise GitError(f"git fetch {redacted_url(url)} {branch}: no such branch")
        return head

    async def ref(self, name: str) -> str | None:
        rc, out = await self._git("rev-parse", "--verify", "--quiet", f"{name}^{{commit}}")
        return out.decode().strip() if rc == 0 else None

    async def set_ref(self, name: str, commit: str) -> None:
        rc, _ = await self._git("update-ref", name, commit)
        if rc != 0:
            raise GitError(f"git update-ref {name} {commit}: failed")

    async def descends(self, ancestor: str, head: str) -> bool:
        """Whether `ancestor` is `head` or one of its ancestors."""
        rc, _ = await self._git("merge-base", "--is-ancestor", ancestor, head)
        return rc == 0

    async def commit_info(self, commit: str) -> CommitInfo:
        rc, out = await self._git(
            "log", "-1", "--no-walk", f"--format=%H{_FIELD}%an <%ae>{_FIELD}%ct", commit
        )
        fields = out.decode(errors="replace").strip().split(_FIELD)
        if rc != 0 or len(fields) != 3:
            raise GitError(f"git log {commit}: unexpected output")
        return CommitInfo(fields[0], fields[1], float(fields[2]))

    async def signatures(self, commits: VerifyRange) -> list[SignatureCheck]:
        """The signature of every commit of the range, newest first, as git checks it."""
        revs = [f"{commits.base}..{commits.head}"] if commits.base else ["-1", commits.head]
        config = (
            []
            if self.allowed_signers is None
            else [f"gpg.ssh.allowedSignersFile={self.allowed_signers}"]
        )
        rc, out = await self._git(
            "log",
            f"--format=%H{_FIELD}%G?{_FIELD}%GS{_FIELD}%GF{_RECORD}",
            *revs,
            "--",
            config=config,
        )
        if rc != 0:
            raise GitError(f"git log {' '.join(revs)}: failed")
        checks = []
        for record in out.decode(errors="replace").split(_RECORD):
            fields = record.strip("\n").split(_FIELD)
            if len(fields) == 4:
                checks.append(SignatureCheck(*fields))
        return checks

    async def read_file(self, commit: str, path: str) -> bytes | None:
        """`read_blob` for the mirror, without blocking the loop; None also when the path
        is not a regular file (a directory, a symbolic link, a submodule)."""
        rc, out = await self._git("ls-tree", "-z", "--full-tree", commit, "--", _tree_path(path))
        if rc != 0:
            raise GitError(f"cannot list {path} at {commit}")
        try:
            oid = _tree_entry(out, path, commit)
        except NotAFile:
            return None
        if oid is None:
            return None
        rc, data = await self._git("cat-file", "blob", oid)
        if rc != 0:
            raise GitError(f"cannot read {path} ({oid}) at {commit}")
        return data


async def run_async(
    argv: Sequence[str], env: Mapping[str, str], timeout_s: float
) -> tuple[int, bytes]:
    """Run a command; its exit status (0 or 1, the answers git gives to questions) and
    its output. Any other status, a timeout or a missing program is a GitError."""
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            env=dict(env),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
    except FileNotFoundError as exc:
        raise GitError(f"{argv[0]} is not installed: {exc}") from exc
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout_s)
    except (TimeoutError, asyncio.CancelledError) as exc:
        # The whole group: git's own children (ssh, a credential helper) too.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()
        if isinstance(exc, asyncio.CancelledError):
            raise
        raise GitError(f"{_command(argv)}: timed out after {timeout_s:g} s") from exc
    rc = proc.returncode
    assert rc is not None
    if rc not in (0, 1):
        raise GitError(_explain(argv, rc, err))
    return rc, out


GPG_CONF: Final = (
    "# Written by reconciler: only the trusted keys are in this keyring.\n"
    "trust-model always\n"
    "no-autostart\n"
)


async def prepare_keyring(gnupghome: Path, trusted_keys: Path | None) -> int:
    """Make `gnupghome` a fresh keyring holding only the keys of `trusted_keys` (armored
    OpenPGP public keys); return how many keys it holds.

    Rebuilt at every start so that a key removed from the file is no longer trusted.
    `trust-model always`: a key is trusted because it is in the file, not through the
    web of trust. `no-autostart`: verifying needs no gpg-agent, so none is left behind.
    """
    if gnupghome.exists():
        shutil.rmtree(gnupghome)
    gnupghome.mkdir(mode=0o700, parents=True)
    (gnupghome / "gpg.conf").write_text(GPG_CONF)
    if trusted_keys is None:
        return 0
    env = git_environment(gnupghome)
    try:
        rc, _ = await run_async(
            ["gpg", "--batch", "--quiet", "--import", str(trusted_keys)], env, GIT_TIMEOUT_S
        )
    except GitError as exc:
        raise GitError(f"{trusted_keys}: cannot import OpenPGP keys: {exc}") from exc
    if rc != 0:
        raise GitError(f"{trusted_keys}: cannot import OpenPGP keys")
    _, listing = await run_async(
        ["gpg", "--batch", "--with-colons", "--list-keys"], env, GIT_TIMEOUT_S
    )
    keys = sum(1 for line in listing.decode().splitlines() if line.startswith("pub:"))
    if keys == 0:
        raise GitError(f"{trusted_keys}: no OpenPGP public key in it")
    return keys
