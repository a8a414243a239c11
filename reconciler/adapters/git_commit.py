"""Who committed the file a node reads: `git log` on a checkout, read-only.

Used by the watched-file source for a file in a git work tree or a git-sync worktree
(whose directory name is the commit). Nothing here writes to a repository.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

GIT_TIMEOUT_S = 5.0
_SEP = "\x1f"


@dataclass(frozen=True)
class CommitInfo:
    commit: str
    author: str  # "Name <email>"
    committed_unix_s: float


def _git(workdir: Path, *args: str) -> str | None:
    git = shutil.which("git")
    if git is None:
        return None
    try:
        done = subprocess.run(
            # The checkout may belong to another user (git-sync runs as its own): reading
            # its log is safe, so git's ownership check is lifted for this call only.
            [git, "-c", "safe.directory=*", "-C", str(workdir), *args],
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def commit_info(workdir: Path, rev: str = "HEAD") -> CommitInfo | None:
    """Commit id, author and commit time of ``rev`` in the work tree ``workdir``; None
    when it is not a work tree, git is missing or the commit is unknown there."""
    out = _git(workdir, "log", "-1", f"--format=%H{_SEP}%an <%ae>{_SEP}%ct", rev, "--")
    if not out:
        return None
    commit, author, when = out.strip().split(_SEP)
    return CommitInfo(commit, author, float(when))


def committed_unchanged(workdir: Path, name: str) -> bool:
    """Whether the file ``name`` in ``workdir`` is tracked and equal to HEAD's copy (so
    HEAD's commit id names its bytes)."""
    out = _git(workdir, "status", "--porcelain", "--", name)
    tracked = _git(workdir, "ls-files", "--error-unmatch", "--", name)
    return out == "" and tracked is not None
