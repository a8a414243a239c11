"""POST /hooks/refresh on the status listener: "look now", only when switched on."""

from __future__ import annotations

import asyncio

from prometheus_client.registry import CollectorRegistry

from reconciler.observability.http import StatusServer
from reconciler.observability.status import NodeStatus


class NoStatus:
    def status(self) -> NodeStatus:
        raise AssertionError("not asked")


async def _request(port: int, method: str, path: str) -> str:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n".encode())
    await writer.drain()
    answer = await reader.read()
    writer.close()
    return answer.decode().split("\r\n", 1)[0]


def test_the_hook_asks_for_a_look_when_switched_on() -> None:
    async def body() -> None:
        calls: list[None] = []
        on = StatusServer(NoStatus(), CollectorRegistry(), on_refresh=lambda: calls.append(None))
        off = StatusServer(NoStatus(), CollectorRegistry())
        port_on = await on.start("127.0.0.1", 0)
        port_off = await off.start("127.0.0.1", 0)
        try:
            assert await _request(port_on, "POST", "/hooks/refresh") == "HTTP/1.1 202 Accepted"
            assert len(calls) == 1
            assert await _request(port_on, "GET", "/hooks/refresh") == "HTTP/1.1 404 Not Found"
            assert await _request(port_on, "POST", "/status") == "HTTP/1.1 405 Method Not Allowed"
            assert (
                await _request(port_off, "POST", "/hooks/refresh")
                == "HTTP/1.1 405 Method Not Allowed"
            )
            assert len(calls) == 1
        finally:
            await on.close()
            await off.close()

    asyncio.run(body())
