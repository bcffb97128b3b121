"""The hub's envelope client against real sockets on 127.0.0.1: keep-alive reuse and expiry,
connections the server closes, chunked and connection-delimited answers, and the two kinds of
failure (retryable or not)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from passerelle.federation import http
from passerelle.federation.http import ConnectFailed, Connections, TransportFailed
from tests.federation.cluster import free_port

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    return await reader.readexactly(length)


def answer(body: bytes, *extra: str, version: str = "HTTP/1.1") -> bytes:
    headers = "".join(f"{h}\r\n" for h in (f"content-length: {len(body)}", *extra))
    return f"{version} 200 OK\r\n{headers}\r\n".encode() + body


def echo(per_answer: Callable[[bytes], bytes] | None = None):
    """A keep-alive server answering each body with itself (or `per_answer(body)`)."""
    served = {"connections": 0}

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        served["connections"] += 1
        try:
            while True:
                try:
                    body = await read_request(reader)
                except asyncio.IncompleteReadError:
                    return
                writer.write(per_answer(body) if per_answer else answer(body))
                await writer.drain()
        finally:
            writer.close()

    return handle, served


def run(handler: Handler, scenario: Callable[[Connections, str], Awaitable[None]], **kw) -> None:
    async def go() -> None:
        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        conns = Connections(connect_timeout=2.0, **kw)
        try:
            await scenario(conns, f"http://127.0.0.1:{port}/node/v1/studies")
        finally:
            await conns.aclose()
            server.close()
            await server.wait_closed()

    asyncio.run(go())


def test_a_connection_is_reused_while_fresh_and_dropped_once_idle_too_long():
    handler, served = echo()

    async def reused(conns: Connections, url: str) -> None:
        assert (await conns.post(url, b'{"a":1}')).content == b'{"a":1}'
        assert (await conns.post(url, b'{"a":2}')).content == b'{"a":2}'
        assert conns.opened == 1 and conns.idle(url) == 1

    run(handler, reused, keepalive_expiry=30.0)
    assert served["connections"] == 1

    async def expired(conns: Connections, url: str) -> None:
        await conns.post(url, b"1")
        await asyncio.sleep(0.3)  # idle longer than the expiry below
        assert (await conns.post(url, b"2")).content == b"2"
        assert conns.opened == 2

    run(handler, expired, keepalive_expiry=0.2)
    assert served["connections"] == 3


def test_a_connection_the_server_closed_while_idle_is_never_written_to():
    closed = asyncio.Event()

    async def close_when_idle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        body = await read_request(reader)
        writer.write(answer(body))
        await writer.drain()
        if not closed.is_set():  # the first connection: closed by the server once idle
            writer.close()
            await writer.wait_closed()
            closed.set()
            return
        try:
            while True:
                writer.write(answer(await read_request(reader)))
                await writer.drain()
        except asyncio.IncompleteReadError:
            writer.close()

    async def scenario(conns: Connections, url: str) -> None:
        await conns.post(url, b"1")
        await closed.wait()  # the end of the connection is on its way to the client
        await asyncio.sleep(0.05)
        assert (await conns.post(url, b"2")).content == b"2"
        assert conns.opened == 2

    run(close_when_idle, scenario, keepalive_expiry=30.0)


def test_http_1_0_and_connection_close_answers_are_not_reused():
    for kind in ("1.0", "close"):

        def per_answer(body: bytes, kind: str = kind) -> bytes:
            if kind == "1.0":
                return answer(body, version="HTTP/1.0")
            return answer(body, "connection: close")

        handler, _ = echo(per_answer=per_answer)

        async def scenario(conns: Connections, url: str) -> None:
            assert (await conns.post(url, b"x")).content == b"x"
            assert conns.idle(url) == 0
            assert (await conns.post(url, b"y")).content == b"y"
            assert conns.opened == 2

        run(handler, scenario)


def test_chunked_and_connection_delimited_answers():
    async def chunked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
            b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nx-trailer: 1\r\n\r\n"
        )
        await writer.drain()
        await read_request(reader)  # the connection is kept: a second request on it
        writer.write(b"HTTP/1.0 403 Forbidden\r\n\r\nuntil the end")
        await writer.drain()
        writer.close()

    async def scenario(conns: Connections, url: str) -> None:
        assert (await conns.post(url, b"a")).content == b"hello world"
        second = await conns.post(url, b"b")
        assert (second.status_code, second.content) == (403, b"until the end")
        assert conns.opened == 1

    run(chunked, scenario)


def test_an_oversized_answer_is_refused(monkeypatch):
    monkeypatch.setattr(http, "MAX_RESPONSE_BYTES", 10)
    handler, _ = echo()

    async def scenario(conns: Connections, url: str) -> None:
        with pytest.raises(TransportFailed):
            await conns.post(url, b"x" * 11)
        assert conns.idle(url) == 0

    run(handler, scenario)


def test_no_listener_is_a_connect_failure_and_a_dropped_request_is_not():
    async def drop(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)  # received, then the connection dies without an answer
        writer.close()

    async def scenario(conns: Connections, url: str) -> None:
        with pytest.raises(ConnectFailed):  # retryable: nothing was sent
            await conns.post(f"http://127.0.0.1:{free_port()}/node/v1/studies", b"x")
        with pytest.raises(TransportFailed) as exc:  # not retryable: the node may hold it
            await conns.post(url, b"x")
        assert not isinstance(exc.value, ConnectFailed)

    run(drop, scenario)


def test_a_garbled_answer_is_a_transport_failure():
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"SSH-2.0-OpenSSH\r\n\r\n")
        await writer.drain()
        writer.close()

    async def scenario(conns: Connections, url: str) -> None:
        with pytest.raises(TransportFailed, match="not HTTP"):
            await conns.post(url, b"x")

    run(garbage, scenario)
