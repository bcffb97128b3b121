"""HTTP load from processes of its own, never threads of the measuring process.

`wrk` (Debian's package; `make install` tries to install it) when it is on the PATH: one C
process, keep-alive connections, a Lua script that cycles through the paths and counts the
answers that are not 2xx/3xx. Without it, a small asyncio client per process: raw HTTP/1.1
GETs on keep-alive connections (uvloop when installed), each connection a bounded number of
calls after a warm-up, all processes released together by a barrier.

Either way the result gives requests/s, p50 and p99 latency, the failures and the CPU time the
load generator itself used (so the CPU per request of the whole exchange can be told apart from
the machine's other load).
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Load:
    tool: str
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    failures: int
    client_cpu_s: float  # CPU time of the load generator's processes during the measured run

    @property
    def rate(self) -> float:
        return self.requests / self.seconds


def wrk_path() -> str | None:
    return shutil.which("wrk")


# -- wrk ---------------------------------------------------------------------------------------

_WRK_SCRIPT = """\
local paths = {%(paths)s}
%(headers)s
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", paths[(i %% #paths) + 1])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %%d %%d %%d %%d\\n", summary.requests, summary.duration,
    e.connect + e.read + e.write + e.status + e.timeout, latency:percentile(50)))
  io.write(string.format("P99 %%d\\n", latency:percentile(99)))
end
"""


def _lua_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _wrk(
    base: str, paths: list[str], headers: dict[str, str], connections: int, seconds: float
) -> Load:
    script = _WRK_SCRIPT % {
        "paths": ", ".join(_lua_string(p) for p in paths),
        "headers": "\n".join(
            f"wrk.headers[{_lua_string(k)}] = {_lua_string(v)}" for k, v in headers.items()
        ),
    }
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script)
    try:
        proc = subprocess.Popen(
            [
                "wrk",
                "-t1",
                f"-c{connections}",
                f"-d{max(1, round(seconds))}s",
                "--timeout",
                "10s",
                "-s",
                f.name,
                base,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        out, err = proc.communicate()
    finally:
        Path(f.name).unlink()
    result = re.search(r"^RESULT (\d+) (\d+) (\d+) (\d+)$", out, re.M)
    p99 = re.search(r"^P99 (\d+)$", out, re.M)
    if proc.returncode != 0 or result is None or p99 is None:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {err.strip() or out.strip()}")
    n, micros, failures, p50 = (int(x) for x in result.groups())
    return Load("wrk", n, micros / 1e6, p50 / 1000, int(p99.group(1)) / 1000, failures, 0.0)


def _wrk_with_cpu(
    base: str, paths: list[str], headers: dict[str, str], connections: int, seconds: float
) -> Load:
    """wrk, its CPU time taken from the kernel's accounting of the finished child."""
    before = os.times()
    load = _wrk(base, paths, headers, connections, seconds)
    after = os.times()
    cpu = (after.children_user - before.children_user) + (
        after.children_system - before.children_system
    )
    return Load(
        load.tool, load.requests, load.seconds, load.p50_ms, load.p99_ms, load.failures, cpu
    )


# -- the asyncio client ------------------------------------------------------------------------


async def _connection(
    host: str,
    port: int,
    requests: list[bytes],
    warmup: int,
    calls: int,
    ready: asyncio.Event,
    go: asyncio.Event,
    latencies: list[float],
    failures: list[int],
) -> None:
    reader, writer = await asyncio.open_connection(host, port)

    async def one(raw: bytes) -> bool:
        writer.write(raw)
        head = await reader.readuntil(b"\r\n\r\n")
        length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
        if length is None:
            raise RuntimeError("response without Content-Length")
        await reader.readexactly(int(length.group(1)))
        return head.startswith(b"HTTP/1.1 200")

    for i in range(warmup):
        await one(requests[i % len(requests)])
    ready.set()
    await go.wait()
    for i in range(calls):
        started = time.perf_counter()
        ok = await one(requests[i % len(requests)])
        latencies.append(time.perf_counter() - started)
        if not ok:
            failures.append(1)
    writer.close()


def _client_process(
    host: str,
    port: int,
    requests: list[bytes],
    connections: int,
    warmup: int,
    calls: int,
    barrier: mp.synchronize.Barrier,  # type: ignore[name-defined]
    results: mp.Queue,  # type: ignore[type-arg]
) -> None:
    async def main() -> None:
        latencies: list[float] = []
        failures: list[int] = []
        readies = [asyncio.Event() for _ in range(connections)]
        go = asyncio.Event()
        tasks = [
            asyncio.create_task(
                _connection(
                    host,
                    port,
                    requests[k:] + requests[:k],
                    warmup,
                    calls,
                    readies[k],
                    go,
                    latencies,
                    failures,
                )
            )
            for k in range(connections)
        ]
        for ready in readies:
            await ready.wait()
        await asyncio.get_running_loop().run_in_executor(None, barrier.wait)
        cpu = time.process_time()
        go.set()
        await asyncio.gather(*tasks)
        results.put((latencies, len(failures), time.process_time() - cpu))

    try:
        import uvloop
    except ImportError:
        asyncio.run(main())
    else:
        uvloop.run(main())


def _asyncio_load(
    host: str,
    port: int,
    paths: list[str],
    headers: dict[str, str],
    connections: int,
    calls_per_connection: int,
    warmup: int,
    processes: int,
    on_start: Callable[[], None],
) -> Load:
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    requests = [
        f"GET {p} HTTP/1.1\r\nHost: {host}:{port}\r\n{head}\r\n".encode("latin-1") for p in paths
    ]
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(processes + 1)
    results = ctx.Queue()
    per_process = [
        connections // processes + (k < connections % processes) for k in range(processes)
    ]
    procs = [
        ctx.Process(
            target=_client_process,
            args=(host, port, requests, n, warmup, calls_per_connection, barrier, results),
        )
        for n in per_process
    ]
    for p in procs:
        p.start()
    barrier.wait(timeout=120)
    on_start()
    started = time.perf_counter()
    gathered = [results.get(timeout=600) for _ in procs]
    seconds = time.perf_counter() - started
    for p in procs:
        p.join()
    latencies = [x for lat, _, _ in gathered for x in lat]
    q = statistics.quantiles(latencies, n=100)
    return Load(
        "asyncio client",
        len(latencies),
        seconds,
        q[49] * 1000,
        q[98] * 1000,
        sum(f for _, f, _ in gathered),
        sum(c for _, _, c in gathered),
    )


# -- either ------------------------------------------------------------------------------------


def load(
    host: str,
    port: int,
    paths: list[str],
    headers: dict[str, str],
    *,
    connections: int,
    seconds: float,
    calls_per_connection: int,
    warmup_calls: int,
    processes: int = 2,
    use_wrk: bool = True,
    on_start: Callable[[], None] = lambda: None,
) -> Load:
    """Warm up, call `on_start`, then load the server: wrk for `seconds`, else
    `calls_per_connection` calls on each connection."""
    if use_wrk and wrk_path():
        base = f"http://{host}:{port}"
        _wrk(base, paths, headers, connections, 1)  # warm-up: pools, caches, statements
        on_start()
        return _wrk_with_cpu(base, paths, headers, connections, seconds)
    return _asyncio_load(
        host,
        port,
        paths,
        headers,
        connections,
        calls_per_connection,
        warmup_calls,
        processes,
        on_start,
    )
