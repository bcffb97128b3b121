"""FHIR ingest: resources/s into DuckDB on a corpus of ≥1M resources replicated from the
shared SMART bundles (every UUID rewritten per copy), against (a) a bare orjson parse of the
same files and (b) fhir.resources (pydantic) validation of a sample, extrapolated per
resource; and peak memory (ru_maxrss of a child process) at 1M and 2M resources.

The corpus is generated once under passerelle-data/bench/fhir/ (uncompressed JSON).
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

from benchmarks.common import ROOT, SHARED_DATA, BenchRow

BUNDLES = SHARED_DATA / "synthea-fhir-r4-smart" / "bundles"
CORPUS = ROOT / "passerelle-data" / "bench" / "fhir"
UUID = re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
TARGETS = (1_000_000, 2_000_000)
# One process: measured here, two workers spend about twice the CPU of one (pickling Arrow
# batches to the parent), so on 2 cores they do not finish sooner.
WORKERS = int(os.environ.get("PASSERELLE_BENCH_WORKERS", "1"))


def _sources() -> list[tuple[str, bytes, int]]:
    out = []
    for p in sorted(BUNDLES.glob("*.json.gz")):
        if "Information" in p.name:  # hospital / practitioner directories, not patients
            continue
        with gzip.open(p) as fh:
            raw = fh.read()
        out.append((p.name[: -len(".json.gz")], _segments(raw), len(orjson.loads(raw)["entry"])))
    return out


def _segments(raw: bytes) -> list[bytes]:
    """`raw` cut around the last 6 hex digits of every UUID: a copy is `tag.join(segments)`,
    every UUID getting the copy's 6-digit tag (unique per copy and per UUID, since random
    UUIDs differ in their first 30 characters)."""
    out, prev = [], 0
    for m in UUID.finditer(raw):
        out.append(raw[prev : m.end() - 6])
        prev = m.end()
    out.append(raw[prev:])
    return out


def ensure_corpus() -> tuple[list[Path], int]:
    """Copy folders copy-NNN, enough for the largest target; (folders, resources per copy)."""
    sources = _sources()
    per_copy = sum(n for _, _, n in sources)
    copies = -(-max(TARGETS) // per_copy)
    CORPUS.mkdir(parents=True, exist_ok=True)
    folders = []
    for k in range(copies):
        folder = CORPUS / f"copy-{k:03d}"
        done = folder / ".done"
        if not done.exists():
            folder.mkdir(exist_ok=True)
            tag = f"{k:06x}".encode()
            for name, segments, _ in sources:
                (folder / f"{name}.json").write_bytes(tag.join(segments))
            done.write_text(str(per_copy))
        folders.append(folder)
    return folders, per_copy


def folders_for(target: int, folders: list[Path], per_copy: int) -> list[Path]:
    return folders[: -(-target // per_copy)]


def bare_parse(folders: list[Path]) -> tuple[float, int]:
    n = 0
    started = time.perf_counter()
    for folder in folders:
        for p in sorted(folder.glob("*.json")):
            with p.open("rb") as fh:
                n += len(orjson.loads(fh.read())["entry"])
    return time.perf_counter() - started, n


def fhir_resources_rate(sample_files: int = 3) -> tuple[float, int]:
    """Resources/s of fhir.resources (R4B models) validation, measured after a warm-up."""
    from fhir.resources.R4B import get_fhir_model_class

    files = sorted(BUNDLES.glob("*.json.gz"))[:sample_files]
    resources = []
    for f in files:
        with gzip.open(f) as fh:
            resources.extend(e["resource"] for e in orjson.loads(fh.read())["entry"])
    for r in resources[:200]:  # warm-up: pydantic builds its validators on first use
        with contextlib.suppress(Exception):
            get_fhir_model_class(r["resourceType"]).model_validate(r)
    started = time.perf_counter()
    for r in resources:
        with contextlib.suppress(Exception):
            get_fhir_model_class(r["resourceType"]).model_validate(r)
    return len(resources) / (time.perf_counter() - started), len(resources)


CHILD = """
import json, resource, sys, time
from pathlib import Path
from passerelle.config import Settings
from passerelle.ingest.service import ingest_fhir
folders = [Path(p) for p in json.loads(sys.argv[1])]
store, data, workers = sys.argv[2], Path(sys.argv[3]), int(sys.argv[4])
t = time.perf_counter()
r = ingest_fhir(folders, store, "bench", data / "q.ndjson", batch_size=50_000,
                settings=Settings(data_dir=data), workers=workers)
secs = time.perf_counter() - t
peak = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
           resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
print(json.dumps({"seconds": secs, "resources": r.resources, "quarantined": r.quarantine_total,
                  "peak_kib": peak}))
"""


def ingest_child(folders: list[Path], workers: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="passerelle-bench-") as tmp:
        store = f"duckdb:///{Path(tmp) / 'cdm.duckdb'}"
        out = subprocess.run(
            [
                sys.executable,
                "-c",
                CHILD,
                json.dumps([str(f) for f in folders]),
                store,
                tmp,
                str(workers),
            ],
            check=True,
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _say(text: str) -> None:
    print(f"[bench_ingest] {text}", file=sys.stderr, flush=True)


def run() -> list[BenchRow]:
    folders, per_copy = ensure_corpus()
    one = folders_for(TARGETS[0], folders, per_copy)
    two = folders_for(TARGETS[1], folders, per_copy)
    parse_s, n1 = bare_parse(one)
    _say(f"bare orjson parse: {n1:,} resources in {parse_s:.1f} s")
    fr_rate, sample = fhir_resources_rate()
    _say(f"fhir.resources: {fr_rate:,.0f} resources/s on {sample:,}")
    first = ingest_child(one, WORKERS)
    _say(f"ingest 1M: {first}")
    second = ingest_child(two, WORKERS)
    _say(f"ingest 2M: {second}")
    ingest_rate = first["resources"] / first["seconds"]
    parse_rate = n1 / parse_s
    note = f"{first['resources']:,} resources, {WORKERS} workers, into DuckDB"
    return [
        BenchRow(
            "ingest",
            "FHIR bundles → CDM (DuckDB)",
            ingest_rate,
            "resources/s",
            "bare orjson parse of the same files",
            parse_rate,
            "ratio >= 0.5",
            note,
        ),
        BenchRow(
            "ingest",
            "FHIR bundles → CDM (DuckDB)",
            ingest_rate,
            "resources/s",
            f"fhir.resources validation ({sample:,}-resource sample)",
            fr_rate,
            "ratio >= 10",
            "fhir.resources R4B models, after a warm-up",
        ),
        BenchRow(
            "ingest",
            "peak memory at 2M resources",
            second["peak_kib"] / 1024,
            "MiB",
            "peak memory at 1M resources",
            first["peak_kib"] / 1024,
            "ratio <= 1.2",
            f"{second['resources']:,} vs {first['resources']:,} resources; ru_maxrss of the "
            "child process and its workers",
        ),
    ]
