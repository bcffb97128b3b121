"""Issue 2 rows: GiBleed load time per engine, and our DuckDB load against a bare read_csv."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import uuid
from pathlib import Path

import duckdb

from benchmarks.common import SHARED_DATA, BenchRow
from passerelle.cdm.csvfiles import discover
from passerelle.cdm.load import load_folder
from passerelle.cdm.stores import open_store

GIBLEED = SHARED_DATA / "eunomia-gibleed" / "csv"
POSTGRES = os.environ.get(
    "PASSERELLE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


def _load_seconds(url: str) -> float:
    with open_store(url) as store:
        store.init()
        started = time.perf_counter()
        report = load_folder(store, GIBLEED, replace=True)
        elapsed = time.perf_counter() - started
    if not report.ok:
        raise RuntimeError(f"GiBleed load failed on {url}")
    return elapsed


def _bare_read_csv_seconds(path: Path) -> float:
    files, _ = discover(GIBLEED)
    con = duckdb.connect(str(path))
    started = time.perf_counter()
    for i, f in enumerate(files):
        con.execute(f"CREATE TABLE t{i} AS SELECT * FROM read_csv('{f}', header=true)")
    elapsed = time.perf_counter() - started
    con.close()
    return elapsed


def run() -> list[BenchRow]:
    if not GIBLEED.exists():
        return [BenchRow("cdm", "GiBleed load (skipped: ../shared/data absent)", 0, "s")]
    rows: list[BenchRow] = []
    tmp = Path(tempfile.mkdtemp(prefix="passerelle-bench-"))
    try:
        ours, bare = [], []
        for i in range(3):
            ours.append(_load_seconds(f"duckdb:///{tmp / f'ours{i}.duckdb'}"))
            bare.append(_bare_read_csv_seconds(tmp / f"bare{i}.duckdb"))
        rows.append(
            BenchRow(
                "cdm",
                "GiBleed load, DuckDB (best of 3)",
                min(ours),
                "s",
                "bare DuckDB read_csv of the same files",
                min(bare),
                "ratio <= 1.5",
            )
        )
        schema = f"bench_{uuid.uuid4().hex[:8]}"
        try:
            pg = _load_seconds(f"{POSTGRES}?schema={schema}")
            rows.append(
                BenchRow(
                    "cdm", "GiBleed load, PostgreSQL (COPY)", pg, "s", "our DuckDB load", min(ours)
                )
            )
        except Exception as exc:  # an absent server is a row, not a crash
            rows.append(BenchRow("cdm", "GiBleed load, PostgreSQL", 0, "s", note=f"skipped: {exc}"))
        finally:
            try:
                import psycopg

                from passerelle.cdm.url import parse_store_url

                with psycopg.connect(
                    parse_store_url(POSTGRES).postgres_conninfo(), autocommit=True
                ) as c:
                    c.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            except Exception:
                pass
        try:
            _load_seconds(f"spark:///{tmp / 'warm'}")  # the first load pays Spark's start-up
            spark = _load_seconds(f"spark:///{tmp / 'warehouse'}")
            rows.append(
                BenchRow(
                    "cdm",
                    "GiBleed load, Spark local[2] (warm)",
                    spark,
                    "s",
                    "our DuckDB load",
                    min(ours),
                )
            )
        except Exception as exc:
            rows.append(BenchRow("cdm", "GiBleed load, Spark", 0, "s", note=f"skipped: {exc}"))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return rows
