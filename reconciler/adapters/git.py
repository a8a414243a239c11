"""Reading revisions from a git repository with the git command-line tool.

Only git's object database is read (`rev-parse`, `cat-file`): never a work
tree, so what is read is exactly what a commit holds.
"""

from __future__ import annotations

import subprocess
from pathlib import Path


class GitError(Exception):
    """git could not answer: not a repository, an unknown revision, git missing."""


def resolve_commit(repo: Path, rev: str) -> str:
    """The full id of the commit `rev` names in `repo` (a branch, tag, id, `HEAD~1`)."""
    args = [
        "git",
        "-C",
        str(repo),
        "rev-parse",
        "--verify",
        "--end-of-options",
        f"{rev}^{{commit}}",
    ]
    try:
        proc = subprocess.run(args, capture_output=True, check=False, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise GitError(f"git rev-parse: {exc}") from exc
    if proc.returncode != 0:
        why = proc.stderr.decode(errors="replace").strip().removeprefix("fatal: ")
        raise GitError(f"{rev}: not a commit in {repo}: {why or 'unknown revision'}")
    return proc.stdout.decode().strip()


def read_blob(repo: Path, commit: str, path: str) -> bytes | None:
    """The bytes of `path` (relative to the repository's top) at `commit`; None when the
    commit has no such file."""
    obj = f"{commit}:{path}"
    try:
        proc = subprocess.run(
            ["git", "-C", str(repo), "cat-file", "blob", obj],
            capture_output=True,
            check=False,
            timeout=60,
        )
        if proc.returncode == 0:
            return proc.stdout
        resolve_commit(repo, commit)  # an unknown commit is an error, not a missing file
        exists = subprocess.run(
            ["git", "-C", str(repo), "cat-file", "-e", obj],
            capture_output=True,
            check=False,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise GitError(f"git cat-file: {exc}") from exc
    if exists.returncode != 0:
        return None
    why = proc.stderr.decode(errors="replace").strip().removeprefix("fatal: ")
    raise GitError(f"{obj}: {why or 'not a file'}")  # there, but not a file (a directory)
