"""Single window under concurrent load: catalogue search and request listing against uvicorn
on 127.0.0.1, on SQLite and PostgreSQL (requests/s and p99 latency; bounded runs).

The server runs in its own processes (WORKERS uvicorn workers, uvloop and httptools when
installed); the load comes from processes of its own (benchmarks/loadgen.py: wrk when
installed, else an asyncio client in two processes; PASSERELLE_BENCH_LOADGEN=asyncio forces the
latter), with keep-alive connections and a warm-up. The same server stack and load generator
against a one-line endpoint give the baseline: what the machine gives right now. PostgreSQL rows
need PASSERELLE_TEST_POSTGRES_URL (a fresh schema is created and dropped).

Wall-clock figures depend on what else the machine runs, so each scenario also reports CPU
time per request, which does not: the CPU time of the uvicorn processes, of the load generator
and, for PostgreSQL on this machine, of the server's backends serving the benchmark's
connections (found by application_name), during the load (from /proc and the kernel's
accounting of child processes), divided by the calls served; and the CPU time in this process
through the ASGI app (no network, no server; `time.process_time` around CPU_CALLS calls, next
to the same client against a one-line FastAPI endpoint). The notes give the load average.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import httpx

from benchmarks import loadgen
from benchmarks.common import BenchRow

CONNECTIONS = 16
SECONDS = 10  # wrk's run
CALLS_PER_CONNECTION = 150  # the asyncio client's run, after WARMUP calls on each connection
WARMUP = 10
USE_WRK = os.environ.get("PASSERELLE_BENCH_LOADGEN", "wrk") == "wrk"  # "asyncio": no wrk
N_DATASETS = 200
N_REQUESTS = 300
WORKERS = 2
CPU_CALLS = 400
GOAL = ">= 500 req/s, p99 < 100 ms"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _seed(url: str, data_dir: Path) -> str:
    """Organisations, datasets and requests; returns an applicant's bearer token."""
    from passerelle.access.accounts import Accounts
    from passerelle.access.context import Context
    from passerelle.access.enums import OrgType, Role
    from passerelle.access.requests import Requests
    from passerelle.access.schemas import DecisionIn, OrgIn, RequestIn, UserIn
    from passerelle.catalog.schemas import DatasetIn
    from passerelle.catalog.service import Catalog
    from passerelle.config import Settings

    ctx = Context.from_settings(Settings(data_dir=data_dir, app_db_url=url))
    ctx.db.upgrade()
    acc, cat, req = Accounts(ctx), Catalog(ctx), Requests(ctx)
    hospitals = [
        acc.create_org(None, OrgIn(name=f"CHU {i}", type=OrgType.HOSPITAL)).id for i in range(5)
    ]
    lab = acc.create_org(None, OrgIn(name="Lab", type=OrgType.ACADEMIC_LAB)).id
    applicant = acc.create_user(
        None, lab, UserIn(email="a@lab.fr", name="A", roles=[Role.APPLICANT])
    )
    words = ["cardiologie", "oncologie", "diabète", "urgences", "pédiatrie", "AVC", "sepsis"]
    ids = []
    for i in range(N_DATASETS):
        ids.append(
            cat.create(
                None,
                DatasetIn(
                    title=f"Entrepôt {words[i % len(words)]} {i}",
                    description=f"Séjours et {words[(i + 3) % len(words)]} depuis 2015",
                    domains=["condition_occurrence", "drug_exposure", "measurement"][: 1 + i % 3],
                    keywords=[words[i % len(words)]],
                    contact_email="dpo@chu.fr",
                ),
                hospitals[i % len(hospitals)],
            ).id
        )
    for i in range(N_REQUESTS):
        r = req.create(
            None,
            RequestIn(
                title=f"Étude {i}",
                purpose=["research"],
                gdpr_art6="6.1.e",
                gdpr_art9="9.2.j",
                dataset_ids=[ids[i % N_DATASETS], ids[(i + 1) % N_DATASETS]],
            ),
            organisation_id=lab,
            created_by=applicant.id,
        )
        if i % 2:
            r = req.submit(None, r.id)
            if i % 4 == 1:
                req.decide(None, r.reviews[0].id, DecisionIn(status="approved"))
    with ctx.uow.write() as dal:
        token = acc._issue(dal, dal.get_user(applicant.id), "auth.login").token
    ctx.db.dispose()
    return token


def _serve(factory: str, url: str, data_dir: Path, port: int, ready: str) -> subprocess.Popen:
    env = {
        **os.environ,
        "PASSERELLE_APP_DB_URL": url,
        "PASSERELLE_DATA_DIR": str(data_dir),
        "PASSERELLE_LOG_LEVEL": "WARNING",
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            factory,
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
            "--workers",
            str(WORKERS),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}{ready}", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("uvicorn did not start")


def _proc_cpu(pid: int) -> float | None:
    """User + system CPU seconds of one process (Linux /proc), None if it is not visible."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


DbCpu = Callable[[], dict[int, float]]  # the database server's processes serving us: CPU seconds


def _no_db_process() -> dict[int, float]:
    return {}  # SQLite runs inside the uvicorn processes


def _postgres_backends(admin: str, application_name: str) -> DbCpu:
    """The PostgreSQL backends of this benchmark's connections (by application_name), when the
    server runs on this machine (their /proc entries are visible)."""
    import psycopg

    def cpu() -> dict[int, float]:
        with psycopg.connect(admin, autocommit=True) as conn:
            pids = conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE application_name = %s",
                (application_name,),
            ).fetchall()
        found = {pid: _proc_cpu(pid) for (pid,) in pids}
        return {pid: c for pid, c in found.items() if c is not None}

    return cpu


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its children still running (Linux /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    pids = [pid]
    while pids:
        current = pids.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
        pids += [int(c) for c in children]
    return total


async def _asgi_cpu(app: object, paths: list[str], headers: dict[str, str], calls: int) -> float:
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(
        transport=transport, base_url="http://bench", headers=headers
    ) as client:
        for path in paths * 3:  # warm-up: caches, connection pool, compiled statements
            resp = await client.get(path)
            if resp.status_code != 200:
                raise RuntimeError(f"{path}: status {resp.status_code}")
        started = time.process_time()
        for i in range(calls):
            await client.get(paths[i % len(paths)])
        return (time.process_time() - started) / calls * 1000


def served_app() -> object:
    """The app as `passerelle serve` runs it: built, then the collector's generations frozen
    (passerelle/federation/server.py), so each request's allocations do not re-scan it."""
    import gc

    from passerelle.web.app import create_app

    app = create_app()
    gc.collect()
    gc.freeze()
    return app


def floor_app() -> object:
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/ping")
    async def ping() -> dict[str, bool]:
        return {"ok": True}

    return app


def _cpu_per_call(url: str, data_dir: Path, paths: list[str], headers: dict[str, str]) -> float:
    """CPU ms per call in this process: httpx client + ASGI app + database driver."""
    from passerelle.config import Settings
    from passerelle.web.app import create_app

    app = create_app(Settings(data_dir=data_dir, app_db_url=url), migrate=False)
    try:
        return asyncio.run(_asgi_cpu(app, paths, headers, CPU_CALLS))
    finally:
        app.state.services.ctx.db.dispose()


def _load(
    port: int, paths: list[str], headers: dict[str, str], server_pid: int, db_cpu: DbCpu
) -> tuple[loadgen.Load, float, float]:
    """The load generator's figures, and the CPU seconds the server processes and the database
    server's processes used during the load."""
    cpu_before = [0.0]
    db_before: dict[int, float] = {}

    def start() -> None:
        db_before.update(db_cpu())
        cpu_before[0] = _cpu_seconds(server_pid)

    result = loadgen.load(
        "127.0.0.1",
        port,
        paths,
        headers,
        connections=CONNECTIONS,
        seconds=SECONDS,
        calls_per_connection=CALLS_PER_CONNECTION,
        warmup_calls=WARMUP,
        use_wrk=USE_WRK,
        on_start=start,
    )
    server_cpu = _cpu_seconds(server_pid) - cpu_before[0]
    db_used = sum(c - db_before.get(pid, 0.0) for pid, c in db_cpu().items())
    if result.failures:
        raise RuntimeError(f"{result.failures} failed calls under load")
    return result, server_cpu, db_used


SEARCHES = [
    "/api/v1/datasets?q=oncologie",
    "/api/v1/datasets?q=sejours%20diabete&limit=10",
    "/api/v1/datasets?domain=measurement",
    "/api/v1/datasets?producer_type=hospital&period_from=2016-01-01",
    "/api/v1/datasets?q=urgences&offset=10",
]
LISTINGS = [
    "/api/v1/requests?limit=20",
    "/api/v1/requests?status=active&limit=20",
    "/api/v1/requests?offset=40&limit=20",
    "/api/v1/requests?status=submitted",
]


def _stack() -> str:
    """What uvicorn's "auto" picks: uvloop and httptools when installed."""
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    return f"{WORKERS} uvicorn workers ({loop}, {http})"


def _loaded(
    port: int, server_pid: int, paths: list[str], hd: dict[str, str], db_cpu: DbCpu
) -> tuple[loadgen.Load, float, float, str]:
    """Load figures, server and database CPU seconds, and the note shared by the rows."""
    result, server_cpu, db_used = _load(port, paths, hd, server_pid, db_cpu)
    how = (
        f"wrk, {CONNECTIONS} connections, {result.seconds:.0f} s"
        if result.tool == "wrk"
        else f"{result.tool}, 2 processes, {CONNECTIONS} connections x {CALLS_PER_CONNECTION}"
    )
    note = f"{how}; {_stack()}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    return result, server_cpu, db_used, note


def _bench(backend: str, url: str, data_dir: Path, db_cpu: DbCpu) -> list[BenchRow]:
    token = _seed(url, data_dir)
    scenarios = (
        ("catalogue search", SEARCHES, {}),
        ("request listing", LISTINGS, {"Authorization": f"Bearer {token}"}),
    )
    floor = asyncio.run(_asgi_cpu(floor_app(), ["/ping"], {}, CPU_CALLS))
    in_process = {name: _cpu_per_call(url, data_dir, paths, hd) for name, paths, hd in scenarios}
    rows = []
    # The same server stack and load generator against a one-line endpoint: what this machine
    # gives right now, whatever else it runs.
    port = _free_port()
    server = _serve("benchmarks.bench_access:floor_app", url, data_dir, port, "/ping")
    try:
        ping, ping_cpu, _, _ = _loaded(port, server.pid, ["/ping"], {}, _no_db_process)
    finally:
        server.terminate()
        server.wait(timeout=30)
    port = _free_port()
    server = _serve("benchmarks.bench_access:served_app", url, data_dir, port, "/api/v1/audit/head")
    try:
        for name, paths, headers in scenarios:
            result, server_cpu, db_used, note = _loaded(port, server.pid, paths, headers, db_cpu)
            server_ms = server_cpu / result.requests * 1000
            client_ms = result.client_cpu_s / result.requests * 1000
            db_ms = db_used / result.requests * 1000
            db_note = (
                f" + PostgreSQL backends {db_ms:.2f} ms" if db_cpu is not _no_db_process else ""
            )
            total_ms = server_ms + client_ms + db_ms
            rows += [
                BenchRow(
                    "access",
                    f"{name} ({backend}) throughput",
                    result.rate,
                    "requests/s",
                    baseline_name="one-line endpoint, same server and load",
                    baseline=ping.rate,
                    goal=GOAL,
                    note=f"p50 {result.p50_ms:.1f} ms; {note}",
                ),
                BenchRow(
                    "access",
                    f"{name} ({backend}) p99 latency",
                    result.p99_ms,
                    "ms",
                    baseline_name="one-line endpoint, same server and load",
                    baseline=ping.p99_ms,
                    goal="p99 < 100 ms",
                    note=f"{N_DATASETS} datasets, {N_REQUESTS} requests; {note}",
                ),
                BenchRow(
                    "access",
                    f"{name} ({backend}) CPU per request under load, server + client + db",
                    total_ms,
                    "ms",
                    baseline_name="one-line endpoint, same server and load",
                    baseline=(ping_cpu + ping.client_cpu_s) / ping.requests * 1000,
                    goal="< 4 ms (500 req/s on 2 cores)",
                    note=f"uvicorn processes {server_ms:.2f} ms + load generator "
                    f"{client_ms:.2f} ms{db_note}: 2 idle cores would serve about "
                    f"{2000 / total_ms:.0f} requests/s; {note}",
                ),
                BenchRow(
                    "access",
                    f"{name} ({backend}) CPU per request, in-process",
                    in_process[name],
                    "ms",
                    baseline_name="one-line FastAPI endpoint, same client",
                    baseline=floor,
                    note=f"process_time over {CPU_CALLS} calls through httpx.ASGITransport "
                    f"(app, database driver and the client)",
                ),
            ]
    finally:
        server.terminate()
        server.wait(timeout=30)
    return rows


def _postgres() -> tuple[str, str, str] | None:
    base = os.environ.get("PASSERELLE_TEST_POSTGRES_URL", "")
    if not base:
        return None
    import psycopg

    admin = base.split("?")[0]
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    try:
        with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
    except psycopg.OperationalError:
        return None
    from passerelle.access.db import normalize_url

    # application_name: how the benchmark finds its own backends' processes (their CPU time)
    options = f"options={quote(f'-csearch_path={schema}')}&application_name={schema}"
    return admin, f"{normalize_url(admin)}?{options}", schema


def run() -> list[BenchRow]:
    rows: list[BenchRow] = []
    with tempfile.TemporaryDirectory(prefix="bench-access-") as tmp:
        data_dir = Path(tmp)
        rows += _bench(
            "SQLite", f"sqlite:///{data_dir / 'passerelle.db'}", data_dir, _no_db_process
        )
        pg = _postgres()
        if pg is None:
            rows.append(
                BenchRow(
                    "access",
                    "PostgreSQL rows skipped",
                    0,
                    "",
                    note=("set PASSERELLE_TEST_POSTGRES_URL to a reachable server"),
                )
            )
        else:
            admin, url, schema = pg
            try:
                rows += _bench("PostgreSQL", url, data_dir, _postgres_backends(admin, schema))
            finally:
                import psycopg

                with psycopg.connect(admin, autocommit=True) as conn:
                    conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    return rows


if __name__ == "__main__":
    for row in run():
        print(row)
