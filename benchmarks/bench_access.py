"""Single window under concurrent load: catalogue search and request listing against uvicorn
on 127.0.0.1, on SQLite and PostgreSQL (requests/s and p99 latency; bounded loops).

The server runs in its own processes (WORKERS uvicorn workers); the client is a pool of threads
with one httpx connection each, in this process, on the same machine. PostgreSQL rows need
PASSERELLE_TEST_POSTGRES_URL (a fresh schema is created and dropped).

Wall-clock figures depend on what else the machine runs, so each scenario also reports CPU
time per request, which does not: measured in this process through the ASGI app (no network,
no server; `time.process_time` around CPU_CALLS calls, next to the same client against a
one-line FastAPI endpoint, the floor), and the server processes' own CPU time during the load
(from /proc) divided by the calls served. The note gives the load average.
"""

from __future__ import annotations

import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import httpx

from benchmarks.common import BenchRow

THREADS = 8
CALLS_PER_THREAD = 150
WARMUP = 30
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


def _serve(url: str, data_dir: Path, port: int) -> subprocess.Popen:
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
            "passerelle.web.app:create_app",
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
            if (
                httpx.get(f"http://127.0.0.1:{port}/api/v1/audit/head", timeout=1).status_code
                == 200
            ):
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("uvicorn did not start")


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


def _floor_app() -> object:
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
    base: str, paths: list[str], headers: dict[str, str], server_pid: int
) -> tuple[float, float, float, float]:
    """(requests/s, p50 ms, p99 ms, server CPU ms per call) of THREADS x CALLS_PER_THREAD."""
    latencies: list[float] = []
    lock = threading.Lock()
    errors = []

    def worker(k: int) -> None:
        mine = []
        with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
            for i in range(WARMUP // THREADS + 1):
                client.get(paths[(k + i) % len(paths)])
            barrier.wait()
            for i in range(CALLS_PER_THREAD):
                started = time.perf_counter()
                resp = client.get(paths[(k * 7 + i) % len(paths)])
                mine.append(time.perf_counter() - started)
                if resp.status_code != 200:
                    errors.append(resp.status_code)
        with lock:
            latencies.extend(mine)

    barrier = threading.Barrier(THREADS + 1)
    threads = [threading.Thread(target=worker, args=(k,)) for k in range(THREADS)]
    for t in threads:
        t.start()
    barrier.wait()
    cpu_before = _cpu_seconds(server_pid)
    started = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    server_cpu = _cpu_seconds(server_pid) - cpu_before
    if errors:
        raise RuntimeError(f"{len(errors)} failed calls (first status {errors[0]})")
    q = statistics.quantiles(latencies, n=100)
    n = len(latencies)
    return n / wall, q[49] * 1000, q[98] * 1000, server_cpu / n * 1000


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


def _bench(backend: str, url: str, data_dir: Path) -> list[BenchRow]:
    token = _seed(url, data_dir)
    scenarios = (
        ("catalogue search", SEARCHES, {}),
        ("request listing", LISTINGS, {"Authorization": f"Bearer {token}"}),
    )
    floor = asyncio.run(_asgi_cpu(_floor_app(), ["/ping"], {}, CPU_CALLS))
    in_process = {name: _cpu_per_call(url, data_dir, paths, hd) for name, paths, hd in scenarios}
    port = _free_port()
    server = _serve(url, data_dir, port)
    rows = []
    try:
        base = f"http://127.0.0.1:{port}"
        for name, paths, headers in scenarios:
            rate, p50, p99, server_cpu = _load(base, paths, headers, server.pid)
            load = f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
            rows += [
                BenchRow(
                    "access",
                    f"{name} ({backend}) throughput",
                    rate,
                    "requests/s",
                    goal=GOAL,
                    note=f"{THREADS} threads x {CALLS_PER_THREAD}, p50 {p50:.1f} ms, "
                    f"{WORKERS} uvicorn workers; {load}",
                ),
                BenchRow(
                    "access",
                    f"{name} ({backend}) p99 latency",
                    p99,
                    "ms",
                    goal="p99 < 100 ms",
                    note=f"{N_DATASETS} datasets, {N_REQUESTS} requests; {load}",
                ),
                BenchRow(
                    "access",
                    f"{name} ({backend}) CPU per request, in-process",
                    in_process[name],
                    "ms",
                    baseline_name="one-line FastAPI endpoint, same client",
                    baseline=floor,
                    goal="< 4 ms (500 req/s on 2 cores)",
                    note=f"process_time over {CPU_CALLS} calls through httpx.ASGITransport; "
                    f"uvicorn server processes used {server_cpu:.2f} ms CPU per request "
                    f"under the load above; {load}",
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

    return admin, f"{normalize_url(admin)}?options={quote(f'-csearch_path={schema}')}", schema


def run() -> list[BenchRow]:
    rows: list[BenchRow] = []
    with tempfile.TemporaryDirectory(prefix="bench-access-") as tmp:
        data_dir = Path(tmp)
        rows += _bench("SQLite", f"sqlite:///{data_dir / 'passerelle.db'}", data_dir)
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
                rows += _bench("PostgreSQL", url, data_dir)
            finally:
                import psycopg

                with psycopg.connect(admin, autocommit=True) as conn:
                    conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    return rows


if __name__ == "__main__":
    for row in run():
        print(row)
