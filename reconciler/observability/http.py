"""The node's HTTP endpoint: /metrics for Prometheus, /status as JSON for `reconciler status`.

A few lines of asyncio instead of prometheus_client's threaded server, so both
endpoints read the runtime's state on the event loop that owns it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Callable
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import CollectorRegistry

from reconciler.observability.status import StatusSource


def status_json(source: StatusSource) -> dict[str, Any]:
    doc = dataclasses.asdict(source.status())
    for inst in doc["instances"]:
        inst["transitions"] = [
            {"from": f, "to": t, "reason": r, "count": n}
            for (f, t, r), n in sorted(inst["transitions"].items())
        ]
    return doc


class StatusServer:
    """GET /metrics and /status; with ``on_refresh``, also POST /hooks/refresh (a webhook
    receiver, as Flux's: "look at the source now"; it carries no input and the answer
    says nothing about the node)."""

    def __init__(
        self,
        source: StatusSource,
        registry: CollectorRegistry,
        on_refresh: Callable[[], None] | None = None,
    ) -> None:
        self.source = source
        self.registry = registry
        self.on_refresh = on_refresh
        self._server: asyncio.Server | None = None

    async def start(self, host: str, port: int) -> int:
        self._server = await asyncio.start_server(self._handle, host, port)
        return int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            method, path, *_ = request.split(b"\r\n", 1)[0].decode("latin-1").split(" ")
            if (method, path.split("?")[0]) == ("POST", "/hooks/refresh") and self.on_refresh:
                self.on_refresh()
                status, ctype, body = "202 Accepted", "text/plain", b"refresh requested\n"
            elif method != "GET":
                status, ctype, body = "405 Method Not Allowed", "text/plain", b"GET only\n"
            elif path.split("?")[0] == "/metrics":
                status, ctype, body = "200 OK", CONTENT_TYPE_LATEST, generate_latest(self.registry)
            elif path.split("?")[0] == "/status":
                body = (json.dumps(status_json(self.source), indent=2) + "\n").encode()
                status, ctype = "200 OK", "application/json"
            else:
                status, ctype, body = "404 Not Found", "text/plain", b"/metrics or /status\n"
            head = (
                f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            )
            writer.write(head.encode() + body)
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, ValueError, ConnectionError):
            pass
        finally:
            writer.close()
