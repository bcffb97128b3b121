"""Issue 7 rows: federated overhead with 3 and 10 nodes on 127.0.0.1, and a study federated over
3 nodes against the same study on one store holding all the data.

Overhead = the hub's end-to-end time seen by its client minus the slowest node's own study time
(as each node reports it): signing, HTTP, the node's checks (signature, freshness, nonce,
approval), disclosure control, result signing, the hub's verification and merge. Nodes are
DuckDB stores, each a disjoint slice of GiBleed persons (vocabulary on every node), each its
own `passerelle serve --role node` process; the hub is a `passerelle serve --role hub` process.

Wall figures on a shared 2-core machine are noisy, so each row also states the CPU time the
server processes spent per federated study (from /proc: the hub's, and all nodes' together,
their studies included), and the load average while it ran.
"""

from __future__ import annotations

import asyncio
import gc
import os
import shutil
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from benchmarks.common import SHARED_DATA, BenchRow
from tests.federation.cluster import (
    Cluster,
    NodeSpec,
    load,
    split_by_person,
    start_cluster,
    write_node,
)

GIBLEED = SHARED_DATA / "eunomia-gibleed" / "csv"
ITERATIONS = int(os.environ.get("PASSERELLE_BENCH_FEDERATION_ITERATIONS", "200"))
POLICY = "policy: bench\nmin_cell: 11\nrounding: 5\n"
PROJECT = "p-bench"
STUDY = {
    "study": "gi-bleed",
    "cohort": {
        "entry": {"condition": {"concepts": [192671], "descendants": True}, "occurrence": "all"}
    },
    "analyses": [
        {"name": "entries", "count": "entries"},
        {"name": "persons", "count": "persons", "by": ["sex"]},
    ],
}


def _percentile(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Measured:
    e2e: list[float]  # seconds, hub end-to-end as its client sees it
    overhead: list[float]  # seconds, end-to-end minus the slowest node's own study time
    hub_cpu: float  # seconds of hub CPU per federated study
    nodes_cpu: float  # seconds of CPU of all nodes together per federated study
    studies_cpu: float  # of which in the studies (each node's CPU while its study ran)
    load: float  # 1-minute load average at the end


def _cluster(work: Path, n: int) -> Cluster:
    parts = split_by_person(GIBLEED, work / "split", n)
    specs = []
    for k, folder in enumerate(parts):
        url = f"duckdb:///{work / f'node{k}.duckdb'}"
        load(url, folder)
        specs.append(NodeSpec(f"node{k}", url, POLICY, [(PROJECT, "research", "aggregates")]))
    return start_cluster(work / "cluster", specs, timeout=60.0)


def _measure(cluster: Cluster, iterations: int) -> Measured:
    hub = cluster.hub
    assert hub is not None
    pids = [p.proc.pid for p in cluster.nodes.values()]
    body = {"study": STUDY, "project_id": PROJECT, "purpose": "research"}
    e2e, overhead = [], []
    hub_cpu = nodes_cpu = studies_cpu = 0.0
    with httpx.Client(timeout=120) as client:
        for i in range(iterations + 5):
            if i == 5:  # after the warm-up
                hub_cpu = _cpu_seconds(hub.proc.pid)
                nodes_cpu = sum(_cpu_seconds(pid) for pid in pids)
            started = time.perf_counter()
            resp = client.post(cluster.hub.url + "/hub/v1/studies", json=body)
            elapsed = time.perf_counter() - started
            out = resp.json()
            if resp.status_code != 200 or out["partial"]:
                raise RuntimeError(f"federated study failed: {out.get('missing')}")
            if i < 5:
                continue  # warm-up: connections, caches
            slowest = max(s["study_seconds"] for s in out["sites"])
            e2e.append(elapsed)
            overhead.append(elapsed - slowest)
            studies_cpu += sum(s["study_cpu_seconds"] for s in out["sites"])
    return Measured(
        e2e,
        overhead,
        (_cpu_seconds(hub.proc.pid) - hub_cpu) / iterations,
        (sum(_cpu_seconds(pid) for pid in pids) - nodes_cpu) / iterations,
        studies_cpu / iterations,
        os.getloadavg()[0],
    )


@dataclass
class InProcess:
    asgi: float  # CPU seconds per request through the in-process ASGI client, outside the study
    handle: float  # CPU seconds per request of NodeService.handle alone, outside the study
    study: float  # CPU seconds per request in the study (as the node reports it)
    gc: float  # CPU seconds per request in the collector (gc.callbacks), over both loops


def _node_in_process(work: Path, store: Path, iterations: int) -> InProcess:
    """One node's hot endpoint in this process, as `passerelle serve` runs it (gc.freeze()
    after start-up): CPU per request through the ASGI app and in `handle` alone."""
    from passerelle.federation.config import NodeConfig
    from passerelle.federation.envelope import new_envelope, sign_envelope
    from passerelle.federation.keys import KeyPair
    from passerelle.federation.node import NodeService, create_node_app

    hub = KeyPair.generate("hub")
    work.mkdir(parents=True)
    spec = NodeSpec("node0", f"duckdb:///{store}", POLICY, [(PROJECT, "research", "aggregates")])
    config, _ = write_node(work, spec, hub)
    service = NodeService(NodeConfig.load(config))
    service.store()
    app = create_node_app(service)

    def bodies(n: int) -> list[dict]:
        return [
            sign_envelope(
                hub,
                new_envelope(
                    hub,
                    kind="study",
                    node="node0",
                    study=STUDY,
                    project_id=PROJECT,
                    purpose="research",
                ),
            )
            for _ in range(n)
        ]

    async def asgi(n: int) -> tuple[float, float]:
        signed, study = bodies(n), 0.0
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://node") as client:
            cpu = time.process_time()
            for body in signed:
                resp = await client.post("/node/v1/studies", json=body)
                if resp.status_code != 200:
                    raise RuntimeError(f"in-process study failed: {resp.status_code}")
                study += resp.json()["payload"]["study_cpu_seconds"]
            return time.process_time() - cpu, study

    def direct(n: int) -> tuple[float, float]:
        signed, study = bodies(n), 0.0
        cpu = time.process_time()
        for body in signed:
            study += service.handle(body, "study")["payload"]["study_cpu_seconds"]
        return time.process_time() - cpu, study

    collector = [0.0, 0.0]  # CPU seconds in the collector, start of the running collection

    def on_gc(phase: str, _info: dict) -> None:
        if phase == "start":
            collector[1] = time.process_time()
        else:
            collector[0] += time.process_time() - collector[1]

    try:
        asyncio.run(asgi(10))
        direct(10)
        gc.collect()
        gc.freeze()
        gc.callbacks.append(on_gc)
        asgi_cpu, asgi_study = asyncio.run(asgi(iterations))
        handle_cpu, handle_study = direct(iterations)
    finally:
        if on_gc in gc.callbacks:
            gc.callbacks.remove(on_gc)
        gc.unfreeze()
        service.close()
    return InProcess(
        (asgi_cpu - asgi_study) / iterations,
        (handle_cpu - handle_study) / iterations,
        (asgi_study + handle_study) / (2 * iterations),
        collector[0] / (2 * iterations),
    )


def _local_seconds(work: Path, iterations: int) -> tuple[float, float]:
    """The same study on one DuckDB store holding everyone, disclosure control included:
    (median wall seconds, CPU seconds per study of this process)."""
    from passerelle.cdm.stores import open_store
    from passerelle.federation.study import load_disclosure, study_language

    url = f"duckdb:///{work / 'union.duckdb'}"
    load(url, GIBLEED)
    lang, disclosure = study_language(), load_disclosure(None)
    model = lang.parse(STUDY)
    times = []
    cpu = 0.0
    with open_store(url) as store:
        for i in range(iterations + 5):
            if i == 5:
                cpu = time.process_time()
            started = time.perf_counter()
            disclosure.protect(lang.run(store, model), disclosure.policy)
            if i >= 5:
                times.append(time.perf_counter() - started)
        cpu = (time.process_time() - cpu) / iterations
    return statistics.median(times), cpu


def run() -> list[BenchRow]:
    work = Path(tempfile.mkdtemp(prefix="passerelle-bench-federation-"))
    rows: list[BenchRow] = []
    cores = os.cpu_count()
    try:
        three: Measured | None = None
        for n, iterations in ((3, ITERATIONS), (10, max(50, ITERATIONS // 2))):
            cluster = _cluster(work / f"n{n}", n)
            try:
                m = _measure(cluster, iterations)
            finally:
                cluster.stop()
            ms = [o * 1000 for o in m.overhead]
            note = (
                f"{iterations} studies; hub end-to-end minus slowest node's study time; "
                f"load average {m.load:.1f} on {cores} cores"
            )
            rows.append(
                BenchRow(
                    "federation",
                    f"overhead p50, {n} nodes",
                    _percentile(ms, 0.5),
                    "ms",
                    goal="p50 < 30 ms",
                    note=note,
                )
            )
            rows.append(
                BenchRow(
                    "federation", f"overhead p99, {n} nodes", _percentile(ms, 0.99), "ms", note=note
                )
            )
            rows.append(
                BenchRow(
                    "federation",
                    f"CPU per federated study, {n} nodes",
                    (m.hub_cpu + m.nodes_cpu) * 1000,
                    "ms",
                    note=(
                        f"hub {m.hub_cpu * 1000:.1f} ms ({m.hub_cpu * 1000 / n:.2f} per node) "
                        f"+ nodes {m.nodes_cpu * 1000:.1f} ms ({m.nodes_cpu * 1000 / n:.1f} "
                        "per node, its study included); /proc of the server processes"
                    ),
                )
            )
            outside = m.hub_cpu + m.nodes_cpu - m.studies_cpu
            rows.append(
                BenchRow(
                    "federation",
                    f"CPU outside the studies per federated study, {n} nodes",
                    outside * 1000,
                    "ms",
                    note=(
                        f"what the overhead spends: hub + nodes minus each node's CPU during its "
                        f"study; over {cores} cores at best {outside * 1000 / (cores or 1):.1f} ms "
                        "of the overhead"
                    ),
                )
            )
            if n == 3:
                three = m
        node = _node_in_process(work / "in-process", work / "n10" / "node0.duckdb", ITERATIONS)
        rows.append(
            BenchRow(
                "federation",
                "node CPU outside its study per request, in process",
                node.asgi * 1000,
                "ms",
                note=(
                    f"{ITERATIONS} requests through the ASGI app (in-process client, a tenth of "
                    f"GiBleed, gc.freeze() as in serve); handle() alone "
                    f"{node.handle * 1000:.2f} ms; study "
                    f"{node.study * 1000:.1f} ms; collector {node.gc * 1000:.2f} ms per request"
                ),
            )
        )
        assert three is not None
        local_wall, local_cpu = _local_seconds(work, min(ITERATIONS, 50))
        rows.append(
            BenchRow(
                "federation",
                "study federated over 3 nodes (median)",
                statistics.median(three.e2e) * 1000,
                "ms",
                baseline_name="same study, one store with all data",
                baseline=local_wall * 1000,
                note="GiBleed split by person; DuckDB nodes; disclosure control in both",
            )
        )
        rows.append(
            BenchRow(
                "federation",
                "CPU per study federated over 3 nodes",
                (three.hub_cpu + three.nodes_cpu) * 1000,
                "ms",
                baseline_name="same study, one store with all data",
                baseline=local_cpu * 1000,
                note="hub and nodes from /proc; the one store in the bench process",
            )
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return rows
