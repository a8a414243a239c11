"""The HTTP listener's limits: a client never takes what the daemon needs (issue: 1500
idle connections took every descriptor; an oversized request logged a traceback)."""

from __future__ import annotations

import asyncio
import logging

import pytest
from prometheus_client.registry import CollectorRegistry

from reconciler.observability import http
from reconciler.observability.http import MAX_CONNECTIONS, StatusServer
from reconciler.observability.status import NodeStatus


class Source:
    def status(self) -> NodeStatus:
        return NodeStatus("n", "c", "f", "abc", 0.0, 0.0, 0, 0, None, (), ())


async def _get(port: int, request: bytes = b"GET /status HTTP/1.1\r\n\r\n") -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    data = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    return data


async def _idle(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port)


def test_past_the_cap_a_client_gets_503_and_the_served_ones_still_work(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario() -> None:
        server = StatusServer(Source(), CollectorRegistry())
        port = await server.start("127.0.0.1", 0)
        idle = [await _idle(port) for _ in range(MAX_CONNECTIONS)]
        await asyncio.sleep(0.1)
        assert server.active == MAX_CONNECTIONS
        extra = [await _get(port) for _ in range(20)]
        assert all(r.startswith(b"HTTP/1.1 503 ") for r in extra)
        assert server.refused["busy"] == 20
        for _, w in idle:
            w.close()
        await asyncio.sleep(0.1)
        assert server.active == 0
        ok = await _get(port)
        assert ok.startswith(b"HTTP/1.1 200 OK") and b'"node": "n"' in ok
        await server.close()

    with caplog.at_level(logging.WARNING, "reconciler.http"):
        asyncio.run(scenario())
    assert len([r for r in caplog.records if "refusing" in r.message]) == 1  # once, not 20


def test_an_oversized_request_is_431_without_a_traceback(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> bytes:
        server = StatusServer(Source(), CollectorRegistry())
        port = await server.start("127.0.0.1", 0)
        answer = await _get(port, b"GET /status HTTP/1.1\r\nX: " + b"a" * 20000 + b"\r\n\r\n")
        await server.close()
        return answer

    with caplog.at_level(logging.DEBUG):
        answer = asyncio.run(scenario())
    assert answer.startswith(b"HTTP/1.1 431 ")
    assert not [r for r in caplog.records if r.exc_info]


def test_a_client_that_sends_nothing_is_dropped_after_the_request_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(http, "REQUEST_TIMEOUT_S", 0.2)

    async def scenario() -> None:
        server = StatusServer(Source(), CollectorRegistry())
        port = await server.start("127.0.0.1", 0)
        reader, writer = await _idle(port)
        assert await asyncio.wait_for(reader.read(), 2) == b""  # closed by the server
        assert server.active == 0 and server.refused["timeout"] == 1
        writer.close()
        await server.close()

    asyncio.run(scenario())


def test_garbage_is_400() -> None:
    async def scenario() -> bytes:
        server = StatusServer(Source(), CollectorRegistry())
        port = await server.start("127.0.0.1", 0)
        answer = await _get(port, b"\x00\x01\r\n\r\n")
        await server.close()
        return answer

    assert asyncio.run(scenario()).startswith(b"HTTP/1.1 400 ")
