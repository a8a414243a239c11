"""The control socket: only root opens it, one JSON command each way."""

from __future__ import annotations

import asyncio
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from reconciler.adapters.control_socket import (
    ControlError,
    ControlSocket,
    send_command,
    socket_path,
)


def echo(request: dict[str, Any]) -> dict[str, Any]:
    return {"ok": True, "got": request}


def test_commands_round_trip_and_the_socket_is_root_only(tmp_path: Path) -> None:
    path = socket_path(tmp_path / "state")

    async def body() -> None:
        server = ControlSocket(path, echo)
        await server.start()
        try:
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
            assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
            answer = await asyncio.to_thread(send_command, path, {"command": "suspend"})
            assert answer == {"ok": True, "got": {"command": "suspend"}}
            if os.geteuid() == 0:
                # Another user cannot even open it.
                code = (
                    "import os\n"
                    "from pathlib import Path\n"
                    "from reconciler.adapters.control_socket import send_command, ControlError\n"
                    "os.setgid(65534)\n"
                    "os.setuid(65534)\n"
                    "try:\n"
                    f"    send_command(Path({str(path)!r}), {{'command': 'resume'}})\n"
                    "except ControlError as e:\n"
                    "    print('refused', e)\n"
                )
                out = await asyncio.to_thread(
                    subprocess.run,
                    [sys.executable, "-c", code],
                    capture_output=True,
                    text=True,
                    check=False,
                    env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])},
                )
                assert out.stdout.startswith("refused"), out.stdout + out.stderr
                assert "Permission denied" in out.stdout
        finally:
            await server.close()
        assert not path.exists()

    asyncio.run(body())


def test_no_node_is_a_control_error(tmp_path: Path) -> None:
    with pytest.raises(ControlError, match="No such file"):
        send_command(socket_path(tmp_path), {"command": "suspend"})
