"""Real git repositories and real signing keys for tests.

`Signers` makes ssh (ed25519, `ssh-keygen`) and OpenPGP (`gpg --quick-gen-key`, no
passphrase) keys in a directory of the test's; `WorkRepo` is a repository the test
commits to (signed with either kind, or not at all) and that a node fetches from by
path. Everything lives under the directory given; `Signers.close()` stops the
gpg-agent its signing keyring started.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


def _env(gnupghome: Path | None = None) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/root"),
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "GIT_CONFIG_NOSYSTEM": "1",
        "LC_ALL": "C",
        "GIT_AUTHOR_NAME": "Test Author",
        "GIT_AUTHOR_EMAIL": "author@example.org",
        "GIT_COMMITTER_NAME": "Test Committer",
        "GIT_COMMITTER_EMAIL": "committer@example.org",
    }
    if gnupghome is not None:
        env["GNUPGHOME"] = str(gnupghome)
    return env


def _run(
    argv: list[str], *, cwd: Path | None = None, env: Mapping[str, str], stdin: bytes = b""
) -> str:
    proc = subprocess.run(
        argv, cwd=cwd, env=dict(env), input=stdin, capture_output=True, check=False, timeout=60
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {proc.stderr.decode(errors='replace')}")
    return proc.stdout.decode()


@dataclass(frozen=True)
class SshKey:
    private: Path
    public: Path
    principal: str  # the allowed-signers principal, an email

    def allowed_signers_line(self) -> str:
        return f"{self.principal} {self.public.read_text().strip()}\n"


@dataclass(frozen=True)
class GpgKey:
    fingerprint: str
    uid: str
    armored: str  # the public key, ASCII-armored


class Signers:
    """Signing keys made by the test."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.gnupghome = directory / "gnupg"
        self.gnupghome.mkdir(mode=0o700, exist_ok=True)
        self._gpg_used = False

    def ssh(self, name: str) -> SshKey:
        private = self.directory / f"{name}_ed25519"
        _run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(private)],
            env=_env(),
        )
        return SshKey(private, private.with_suffix(".pub"), f"{name}@example.org")

    def gpg(self, name: str) -> GpgKey:
        self._gpg_used = True
        uid = f"{name} <{name}@example.org>"
        env = _env(self.gnupghome)
        _run(
            ["gpg", "--batch", "--quiet", "--pinentry-mode", "loopback", "--passphrase", "",
             "--quick-gen-key", uid, "ed25519", "sign", "never"],
            env=env,
        )  # fmt: skip
        listing = _run(["gpg", "--batch", "--with-colons", "--list-keys", uid], env=env)
        fpr = next(ln.split(":")[9] for ln in listing.splitlines() if ln.startswith("fpr:"))
        armored = _run(["gpg", "--batch", "--armor", "--export", fpr], env=env)
        return GpgKey(fpr, uid, armored)

    def close(self) -> None:
        """Stop the gpg-agent that signing started (its sockets are in the keyring)."""
        if self._gpg_used:
            subprocess.run(
                ["gpgconf", "--kill", "all"],
                env=_env(self.gnupghome),
                capture_output=True,
                check=False,
                timeout=30,
            )


class WorkRepo:
    """A repository with a work tree that tests commit to; nodes fetch it by path."""

    def __init__(self, path: Path, signers: Signers, branch: str = "main") -> None:
        self.path = path
        self.branch = branch
        self.signers = signers
        path.mkdir(parents=True, exist_ok=True)
        self.git("init", "--quiet", "-b", branch)

    @property
    def url(self) -> str:
        return str(self.path)

    def git(self, *args: str) -> str:
        return _run(["git", *args], cwd=self.path, env=_env(self.signers.gnupghome))

    def head(self) -> str:
        return self.git("rev-parse", "HEAD").strip()

    def commit(
        self,
        files: Mapping[str, str | bytes | None],
        message: str,
        sign: SshKey | GpgKey | None = None,
    ) -> str:
        """Write (or delete, for None) `files` and commit them; the new commit id."""
        for name, content in files.items():
            target = self.path / name
            if content is None:
                self.git("rm", "--quiet", "--", name)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, str):
                target.write_text(content)
            else:
                target.write_bytes(content)
            self.git("add", "--", name)
        args = ["commit", "--quiet", "--allow-empty", "-m", message]
        if isinstance(sign, SshKey):
            args = ["-c", "gpg.format=ssh", "-c", f"user.signingkey={sign.public}", *args, "-S"]
        elif isinstance(sign, GpgKey):
            args = ["-c", f"user.signingkey={sign.fingerprint}", *args, "-S"]
        self.git(*args)
        return self.head()

    def reset_hard(self, commit: str) -> None:
        """Move the branch back (what a force-push does to the remote)."""
        self.git("reset", "--quiet", "--hard", commit)

    def tamper_head(self) -> str:
        """Replace the head by a copy whose message is changed but whose signature is
        kept: a commit with a bad signature. The new commit id."""
        raw = self.git("cat-file", "commit", "HEAD")
        forged = raw.replace("\n\n", "\n\ntampered: ", 1) if "gpgsig" in raw else raw + "x"
        new = _run(
            ["git", "hash-object", "-t", "commit", "-w", "--stdin"],
            cwd=self.path,
            env=_env(),
            stdin=forged.encode(),
        ).strip()
        self.git("update-ref", f"refs/heads/{self.branch}", new)
        self.git("reset", "--quiet", "--hard", new)
        return new
