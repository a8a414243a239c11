"""What the subcommands share: their exit codes and HOST:PORT parsing."""

from __future__ import annotations

EXIT_OK = 0
EXIT_INVALID = 1  # validate: the file is invalid; plan: there are changes
EXIT_CHANGES = 1
EXIT_ERROR = 2  # cannot run: missing file, bad arguments, invalid input to plan


def parse_addr(text: str) -> tuple[str, int]:
    """`HOST:PORT` or `[IPV6]:PORT`."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ValueError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)
