"""The node's HTTP endpoint: /metrics for Prometheus, /status as JSON for `reconciler status`.

A few lines of asyncio instead of prometheus_client's threaded server, so both
endpoints read the runtime's state on the event loop that owns it.

Clients never take what the daemon needs to fail over: at most ``MAX_CONNECTIONS``
are served at once; past that a client gets 503 (its request is read for at most
``REFUSE_WAIT_S`` first, so that the answer is not lost to a reset), and past twice
that it is closed at once, so a flood holds a bounded number of descriptors for a
bounded time. A request head is at most ``MAX_REQUEST_BYTES`` and must arrive within
``REQUEST_TIMEOUT_S``; an answer a client does not read within ``WRITE_TIMEOUT_S`` is
dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
from collections.abc import Callable
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import CollectorRegistry

from reconciler.observability.status import StatusSource

log = logging.getLogger("reconciler.http")

MAX_CONNECTIONS = 16
MAX_REQUEST_BYTES = 8192
REQUEST_TIMEOUT_S = 5.0
WRITE_TIMEOUT_S = 5.0
REFUSE_WAIT_S = 0.2


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
        self.active = 0  # connections being served
        self.refusing = 0  # connections being answered 503
        self.refused: dict[str, int] = {"busy": 0, "too_large": 0, "timeout": 0}

    async def start(self, host: str, port: int) -> int:
        self._server = await asyncio.start_server(
            self._handle, host, port, limit=MAX_REQUEST_BYTES, backlog=MAX_CONNECTIONS
        )
        return int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.active >= MAX_CONNECTIONS:
            await self._busy(reader, writer)
            return
        self.active += 1
        try:
            await self._serve(reader, writer)
        finally:
            self.active -= 1
            writer.close()

    async def _busy(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.refusing >= MAX_CONNECTIONS:
            self._count("busy")
            writer.close()
            return
        self.refusing += 1
        try:
            # Read the request first: closing a socket with unread data resets it, and
            # the client would see a reset instead of the 503.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), REFUSE_WAIT_S)
            self._refuse("busy", writer, "503 Service Unavailable", b"too many connections\n")
        finally:
            self.refusing -= 1

    def _count(self, why: str) -> None:
        if not self.refused[why]:
            log.warning("HTTP: refusing a client (%s); counted from now on, not logged", why)
        self.refused[why] += 1

    def _refuse(self, why: str, writer: asyncio.StreamWriter, status: str, body: bytes) -> None:
        self._count(why)
        # Best effort and never waited for: the socket buffer takes a short answer.
        writer.write(_response(status, "text/plain", body))
        writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), REQUEST_TIMEOUT_S)
        except TimeoutError:
            self.refused["timeout"] += 1
            return
        except (asyncio.LimitOverrunError, ValueError):
            self._refuse("too_large", writer, "431 Request Header Fields Too Large", b"")
            return
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        try:
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
        except ValueError:
            status, ctype, body = "400 Bad Request", "text/plain", b"not an HTTP request\n"
        writer.write(_response(status, ctype, body))
        try:
            await asyncio.wait_for(writer.drain(), WRITE_TIMEOUT_S)
        except TimeoutError:
            self.refused["timeout"] += 1
        except ConnectionError:
            pass


def _response(status: str, ctype: str, body: bytes) -> bytes:
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body
