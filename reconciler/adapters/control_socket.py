"""The node's control socket: a unix socket in the state directory that only root opens.

Commands that change what a node takes (suspend, resume) never go over the HTTP
listener: they come over this socket, whose file is mode 0600 in a directory of its
own (mode 0700), and whose peer must be root (SO_PEERCRED) or the daemon's own user.
One JSON object per connection each way, a line each.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

MAX_REQUEST_BYTES = 4096
TIMEOUT_S = 5.0
SOCKET_NAME = "control.sock"

Handler = Callable[[dict[str, Any]], dict[str, Any]]


def socket_path(state_dir: Path) -> Path:
    return state_dir / "control" / SOCKET_NAME


class ControlError(Exception):
    """The control socket cannot be reached or answered nonsense."""


class ControlSocket:
    def __init__(self, path: Path, handler: Handler) -> None:
        self.path = path
        self.handler = handler
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.path.parent, 0o700)  # an existing directory may have other modes
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # left by a daemon that was killed
        self._server = await asyncio.start_unix_server(self._handle, path=str(self.path))
        os.chmod(self.path, 0o600)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            sock = writer.get_extra_info("socket")
            creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
            _pid, uid, _gid = struct.unpack("3i", creds)
            if uid not in (0, os.geteuid()):
                answer: dict[str, Any] = {"ok": False, "error": "only root may control the node"}
            else:
                line = await asyncio.wait_for(reader.readline(), TIMEOUT_S)
                try:
                    request = json.loads(line[:MAX_REQUEST_BYTES])
                    if not isinstance(request, dict):
                        raise ValueError("not an object")
                except ValueError as exc:
                    answer = {"ok": False, "error": f"bad request: {exc}"}
                else:
                    answer = self.handler(request)
            writer.write(json.dumps(answer).encode() + b"\n")
            await writer.drain()
        except (TimeoutError, ConnectionError, OSError):
            pass
        finally:
            writer.close()


def send_command(path: Path, request: dict[str, Any]) -> dict[str, Any]:
    """Send one command to a running node's control socket; its answer."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(TIMEOUT_S)
            sock.connect(str(path))
            sock.sendall(json.dumps(request).encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
    except OSError as exc:
        raise ControlError(f"{path}: {exc.strerror or exc}") from exc
    try:
        answer = json.loads(data)
    except ValueError as exc:
        raise ControlError(f"{path}: no answer") from exc
    if not isinstance(answer, dict):
        raise ControlError(f"{path}: bad answer")
    return answer
