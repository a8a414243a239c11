"""Where lab tests put hook programs that the daemon runs as ``nobody``.

Hooks run as an unprivileged user by default and are refused when anyone but root (or
that user) could change the program or a directory above it. A lab's directory is
root's and 0700 (in sticky /tmp): :func:`hook_dirs` opens it for search only (0711, not
listing) and makes, inside it, a root-owned 0755 directory for the programs and a
world-writable (sticky) one where they may write what the test reads back. Both go with
the lab's directory.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["hook_dirs", "write_program"]


def hook_dirs(tmpdir: Path) -> tuple[Path, Path]:
    """``(bin, out)`` below `tmpdir`: programs in bin, their output in out."""
    tmpdir.chmod(0o711)
    programs = tmpdir / "hook-bin"
    out = tmpdir / "hook-out"
    for path, mode in ((programs, 0o755), (out, 0o1777)):
        path.mkdir(exist_ok=True)
        path.chmod(mode)  # not the umask's
    return programs, out


def write_program(path: Path, text: str, mode: int = 0o755) -> Path:
    """`text` as an executable file at `path` with exactly `mode`."""
    path.write_text(text)
    path.chmod(mode)
    return path
