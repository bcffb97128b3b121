"""Issue 7 rows: federated overhead with 3 and 10 nodes on 127.0.0.1, and a study federated over
3 nodes against the same study on one store holding all the data.

Overhead = the hub's end-to-end time seen by its client minus the slowest node's own study time
(as each node reports it): signing, HTTP, the node's checks (signature, freshness, nonce,
approval), disclosure control, result signing, the hub's verification and merge. Nodes are
DuckDB stores, each a disjoint slice of GiBleed persons (vocabulary on every node), each its
own `passerelle serve --role node` process; the hub is a `passerelle serve --role hub` process.
"""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from benchmarks.common import SHARED_DATA, BenchRow
from tests.federation.cluster import Cluster, NodeSpec, load, split_by_person, start_cluster

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


def _cluster(work: Path, n: int) -> Cluster:
    parts = split_by_person(GIBLEED, work / "split", n)
    specs = []
    for k, folder in enumerate(parts):
        url = f"duckdb:///{work / f'node{k}.duckdb'}"
        load(url, folder)
        specs.append(NodeSpec(f"node{k}", url, POLICY, [(PROJECT, "research", "aggregates")]))
    return start_cluster(work / "cluster", specs, timeout=60.0)


def _measure(cluster: Cluster, iterations: int) -> tuple[list[float], list[float]]:
    """(end-to-end seconds, overhead seconds) per federated study."""
    assert cluster.hub is not None
    body = {"study": STUDY, "project_id": PROJECT, "purpose": "research"}
    e2e, overhead = [], []
    with httpx.Client(timeout=120) as client:
        for i in range(iterations + 5):
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
    return e2e, overhead


def _local_seconds(work: Path, iterations: int) -> float:
    """The same study on one DuckDB store holding everyone, disclosure control included."""
    from passerelle.cdm.stores import open_store
    from passerelle.federation.study import load_disclosure, study_language

    url = f"duckdb:///{work / 'union.duckdb'}"
    load(url, GIBLEED)
    lang, disclosure = study_language(), load_disclosure(None)
    model = lang.parse(STUDY)
    times = []
    with open_store(url) as store:
        for i in range(iterations + 5):
            started = time.perf_counter()
            disclosure.protect(lang.run(store, model), disclosure.policy)
            if i >= 5:
                times.append(time.perf_counter() - started)
    return statistics.median(times)


def run() -> list[BenchRow]:
    work = Path(tempfile.mkdtemp(prefix="passerelle-bench-federation-"))
    rows: list[BenchRow] = []
    try:
        federated_p50 = 0.0
        for n, iterations in ((3, ITERATIONS), (10, max(50, ITERATIONS // 2))):
            cluster = _cluster(work / f"n{n}", n)
            try:
                e2e, overhead = _measure(cluster, iterations)
            finally:
                cluster.stop()
            ms = [o * 1000 for o in overhead]
            load = os.getloadavg()[0]
            note = (
                f"{iterations} studies; hub end-to-end minus slowest node's study time; "
                f"load average {load:.1f} on {os.cpu_count()} cores"
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
            if n == 3:
                federated_p50 = statistics.median(e2e)
        local = _local_seconds(work, min(ITERATIONS, 50))
        rows.append(
            BenchRow(
                "federation",
                "study federated over 3 nodes (median)",
                federated_p50 * 1000,
                "ms",
                baseline_name="same study, one store with all data",
                baseline=local * 1000,
                note="GiBleed split by person; DuckDB nodes; disclosure control in both",
            )
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return rows
