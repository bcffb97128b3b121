"""The hub's HTTP/1.1 client for envelopes: keep-alive connections over asyncio streams.

A federated study is one small POST per node and one small JSON answer. httpx spends about a
millisecond of CPU on each (request and URL models, its connection pool's bookkeeping); here a
request is one write and an answer one header read and one body read, some 30 µs. The hub
sends its envelopes through this client and keeps httpx for health checks, for in-process
transports (the embedded node) and whenever a proxy is configured in the environment.

Failures are reported in two kinds, because the hub may resend an envelope only when the node
cannot have received it: `ConnectFailed` (the connection could not be opened, or the TLS
handshake failed) and `TransportFailed` (anything after the request may have been written).
An idle connection is dropped after `keepalive_expiry` seconds, well before any server's own
keep-alive timeout, and whenever the server has closed it: an envelope is never written onto
a socket the node is closing.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from passerelle.federation.errors import FederationError

# A node's answer is a few kilobytes of aggregates; a much larger one is refused unread.
MAX_RESPONSE_BYTES = 32_000_000
MAX_HEADER_BYTES = 64 * 1024


class ConnectFailed(FederationError):
    """No connection: the request was not sent, it may be retried."""

    code = "connect_failed"


class TransportFailed(FederationError):
    """The connection broke or the answer was not HTTP after the request may have been sent."""

    code = "transport_failed"


@dataclass(frozen=True)
class Answer:
    status_code: int
    content: bytes


@dataclass
class _Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    idle_since: float = 0.0

    def usable(self, now: float, expiry: float) -> bool:
        return (
            now - self.idle_since < expiry
            and not self.writer.is_closing()
            and not self.reader.at_eof()
            and not self.reader._buffer  # type: ignore[attr-defined]  # unsolicited bytes
        )

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()


Origin = tuple[str, str, int]


def _origin(url: str) -> tuple[Origin, str]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise ConnectFailed(f"not an http(s) URL: {url!r}")
    port = parts.port or (443 if scheme == "https" else 80)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return (scheme, parts.hostname, port), target


class Connections:
    """Keep-alive connections per origin, one request at a time on each."""

    def __init__(
        self,
        *,
        connect_timeout: float,
        keepalive_expiry: float = 2.0,
        max_idle_per_origin: int = 16,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.connect_timeout = connect_timeout
        self.keepalive_expiry = keepalive_expiry
        self.max_idle_per_origin = max_idle_per_origin
        self._ssl = ssl_context
        self._idle: dict[Origin, list[_Connection]] = {}
        self.opened = 0  # connections opened so far (observable by tests)

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            import httpx  # the same trust as httpx's default: certifi, or SSL_CERT_FILE/DIR

            self._ssl = httpx.create_ssl_context()
        return self._ssl

    def idle(self, origin_url: str) -> int:
        origin, _ = _origin(origin_url)
        return len(self._idle.get(origin, []))

    async def _connect(self, origin: Origin) -> _Connection:
        scheme, host, port = origin
        tls = self._ssl_context() if scheme == "https" else None
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(
                    host,
                    port,
                    ssl=tls,
                    server_hostname=host if tls else None,
                    limit=MAX_HEADER_BYTES,
                ),
                self.connect_timeout,
            )
        except (OSError, TimeoutError, ssl.SSLError) as exc:
            raise ConnectFailed(f"cannot connect to {host}:{port} ({type(exc).__name__})") from None
        self.opened += 1
        return _Connection(reader, writer)

    def _take(self, origin: Origin) -> _Connection | None:
        pool = self._idle.get(origin)
        now = time.monotonic()
        while pool:
            conn = pool.pop()
            if conn.usable(now, self.keepalive_expiry):
                return conn
            conn.close()
        return None

    def _give_back(self, origin: Origin, conn: _Connection) -> None:
        pool = self._idle.setdefault(origin, [])
        if len(pool) >= self.max_idle_per_origin:
            conn.close()
            return
        conn.idle_since = time.monotonic()
        pool.append(conn)

    async def post(self, url: str, body: bytes, content_type: str = "application/json") -> Answer:
        origin, target = _origin(url)
        conn = self._take(origin) or await self._connect(origin)
        _, host, port = origin
        head = (
            f"POST {target} HTTP/1.1\r\nhost: {host}:{port}\r\ncontent-type: {content_type}\r\n"
            f"content-length: {len(body)}\r\naccept: application/json\r\n\r\n"
        ).encode("latin-1")
        reusable = False
        try:
            conn.writer.write(head + body)
            await conn.writer.drain()
            answer, reusable = await _read_answer(conn.reader)
            return answer
        except (OSError, EOFError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
            raise TransportFailed(f"transport error ({type(exc).__name__})") from None
        except ValueError as exc:
            raise TransportFailed(f"the answer is not HTTP/1.1 ({exc})") from None
        finally:  # cancelled (the hub's deadline) or failed: the connection is never reused
            if reusable:
                self._give_back(origin, conn)
            else:
                conn.close()

    async def aclose(self) -> None:
        pools, self._idle = self._idle, {}
        for pool in pools.values():
            for conn in pool:
                conn.close()


async def _read_answer(reader: asyncio.StreamReader) -> tuple[Answer, bool]:
    """The status and body of one response; whether the connection may carry another."""
    try:
        raw = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            raise EOFError("connection closed before any answer") from None
        raise
    lines = raw[:-4].decode("latin-1").split("\r\n")
    version, _, rest = lines[0].partition(" ")
    if not version.startswith("HTTP/1.") or not rest[:3].isdigit():
        raise ValueError("bad status line")
    status = int(rest[:3])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep:
            raise ValueError("bad header line")
        headers[name.strip().lower()] = value.strip()
    keep = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return Answer(status, await _read_chunked(reader)), keep
    length = headers.get("content-length")
    if length is not None:
        if not length.isdigit():
            raise ValueError("bad content-length")
        if int(length) > MAX_RESPONSE_BYTES:
            raise ValueError(f"answer larger than {MAX_RESPONSE_BYTES} bytes")
        return Answer(status, await reader.readexactly(int(length))), keep
    if status in (204, 304):
        return Answer(status, b""), keep
    chunks: list[bytes] = []  # delimited by the end of the connection
    total = 0
    while chunk := await reader.read(65536):
        total += len(chunk)
        if total > MAX_RESPONSE_BYTES:
            raise ValueError(f"answer larger than {MAX_RESPONSE_BYTES} bytes")
        chunks.append(chunk)
    return Answer(status, b"".join(chunks)), False


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts: list[bytes] = []
    total = 0
    while True:
        size_line = await reader.readuntil(b"\r\n")
        size = int(size_line.split(b";", 1)[0].strip(), 16)
        if size == 0:
            while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers
                pass
            return b"".join(parts)
        total += size
        if total > MAX_RESPONSE_BYTES:
            raise ValueError(f"answer larger than {MAX_RESPONSE_BYTES} bytes")
        parts.append(await reader.readexactly(size))
        if await reader.readexactly(2) != b"\r\n":
            raise ValueError("bad chunk")
