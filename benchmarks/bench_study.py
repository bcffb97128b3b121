"""The study engines on GiBleed replicated to about 1M persons: the issue's second spec
(celecoxib new users) compiled and run on DuckDB, PostgreSQL and Spark, each against a
hand-written SQL answering the same three questions on the same engine in the same run.

The replicated CDM is built once with SQL in DuckDB (copy k of every row has person ids
offset by k * 10,000 and event ids by k * 10^8), then exported to PostgreSQL (COPY) and to a
Spark Parquet warehouse, all cached under passerelle-data/bench/study/ (delete it to rebuild).
Env: PASSERELLE_BENCH_PERSONS (default 1,000,000), PASSERELLE_BENCH_POSTGRES_URL (or
PASSERELLE_TEST_POSTGRES_URL; without one the PostgreSQL rows are skipped), and
PASSERELLE_BENCH_ENGINES (default "duckdb,postgres,spark").
"""

from __future__ import annotations

import math
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from benchmarks.common import ROOT, SHARED_DATA, BenchRow, best_of

CACHE = ROOT / "passerelle-data" / "bench" / "study"
PERSONS = int(os.environ.get("PASSERELLE_BENCH_PERSONS", "1000000"))
GIBLEED = SHARED_DATA / "eunomia-gibleed" / "csv"
TABLES = (
    "person",
    "observation_period",
    "drug_exposure",
    "condition_occurrence",
    "concept_ancestor",
)
PERSON_OFFSET = 10_000  # GiBleed's person ids are below 5,344
ID_OFFSET = 100_000_000  # its event ids are below 10^8
ID_COLUMNS = {
    "observation_period": "observation_period_id",
    "drug_exposure": "drug_exposure_id",
    "condition_occurrence": "condition_occurrence_id",
}

# The hand-written answer: what an analyst would write for the second spec. `{add(d, n)}` and
# `{year(d)}` are the only per-engine parts.
HAND_COHORT = """
WITH celecoxib AS (
  SELECT descendant_concept_id AS concept_id FROM {concept_ancestor}
  WHERE ancestor_concept_id = 1118084 UNION SELECT 1118084
), gi_bleed AS (
  SELECT descendant_concept_id AS concept_id FROM {concept_ancestor}
  WHERE ancestor_concept_id = 192671 UNION SELECT 192671
), first_use AS (
  SELECT person_id, MIN(drug_exposure_start_date) AS index_date FROM {drug_exposure}
  WHERE drug_concept_id IN (SELECT concept_id FROM celecoxib) GROUP BY person_id
), cohort AS (
  SELECT f.person_id, f.index_date, p.gender_concept_id,
         {year_index} - p.year_of_birth AS age
  FROM first_use f JOIN {person} p ON p.person_id = f.person_id
  WHERE {year_index} - p.year_of_birth >= 18
    AND EXISTS (SELECT 1 FROM {observation_period} op WHERE op.person_id = f.person_id
                AND {op_start_plus_365} <= f.index_date
                AND op.observation_period_end_date >= f.index_date)
    AND NOT EXISTS (SELECT 1 FROM {condition_occurrence} co WHERE co.person_id = f.person_id
                AND co.condition_concept_id IN (SELECT concept_id FROM gi_bleed)
                AND co.condition_start_date < f.index_date)
)
"""
HAND_QUERIES = (
    "SELECT COUNT(*) AS persons FROM cohort",
    "SELECT gender_concept_id, CAST(FLOOR(age / 10.0) AS INT) * 10 AS age_band, COUNT(*) "
    "FROM cohort GROUP BY 1, 2",
    """, outcome AS (
  SELECT DISTINCT c.person_id FROM cohort c JOIN {condition_occurrence} co
    ON co.person_id = c.person_id
   AND co.condition_concept_id IN (SELECT concept_id FROM gi_bleed)
   AND co.condition_start_date >= {index_plus_1} AND co.condition_start_date <= {index_plus_365}
)
SELECT c.gender_concept_id, COUNT(*), COUNT(o.person_id),
       CAST(COUNT(o.person_id) AS DOUBLE PRECISION) / COUNT(*)
FROM cohort c LEFT JOIN outcome o ON o.person_id = c.person_id GROUP BY 1""",
)
DATE_SQL = {
    "duckdb": {"add": "{d} + {n}", "year": "year({d})"},
    "postgres": {"add": "{d} + {n}", "year": "CAST(EXTRACT(YEAR FROM {d}) AS INT)"},
    "spark": {"add": "date_add({d}, {n})", "year": "year({d})"},
}


def hand_written(engine: str, qualified: Any) -> list[str]:
    d = DATE_SQL[engine]
    names = {t: qualified(t) for t in TABLES}
    names.update(
        year_index=d["year"].format(d="f.index_date"),
        op_start_plus_365=d["add"].format(d="op.observation_period_start_date", n=365),
        index_plus_1=d["add"].format(d="c.index_date", n=1),
        index_plus_365=d["add"].format(d="c.index_date", n=365),
    )
    out = []
    for q in HAND_QUERIES:
        body = q.format(**names)
        if body.startswith(","):
            out.append(HAND_COHORT.format(**names).rstrip() + body)
        else:
            out.append(HAND_COHORT.format(**names) + body)
    if engine == "spark":
        out = [s.replace("DOUBLE PRECISION", "DOUBLE") for s in out]
    return out


# ---------------------------------------------------------------------------------------------
# Building the replicated CDM (cached)
# ---------------------------------------------------------------------------------------------


def copies() -> int:
    return math.ceil(PERSONS / 2694)


def build_duckdb() -> Path:
    """GiBleed x copies() in one DuckDB file, built with SQL."""
    import duckdb

    from passerelle.cdm.load import load_folder
    from passerelle.cdm.stores import open_store

    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"gibleed_x{copies()}.duckdb"
    if path.exists():
        return path
    base = CACHE / "gibleed.duckdb"
    if not base.exists():
        store = open_store(f"duckdb://{base}")
        try:
            if not load_folder(store, GIBLEED).ok:
                raise RuntimeError("GiBleed did not load")
        finally:
            store.close()
    building = path.with_suffix(".building")
    building.unlink(missing_ok=True)
    # CREATE TABLE AS keeps the store's column types and builds no index (DuckDB scans with
    # zone maps; maintaining ART indexes over 50M inserted rows would cost minutes).
    con = duckdb.connect(str(building))
    try:
        con.execute(f"ATTACH '{base}' AS src (READ_ONLY)")
        for t in TABLES:
            if t == "concept_ancestor":
                con.execute(f"CREATE TABLE main.{t} AS SELECT * FROM src.main.{t}")
                continue
            repl = [f"person_id + k * {PERSON_OFFSET} AS person_id"]
            if t in ID_COLUMNS:
                repl.append(f"{ID_COLUMNS[t]} + k * {ID_OFFSET} AS {ID_COLUMNS[t]}")
            con.execute(
                f"CREATE TABLE main.{t} AS SELECT * EXCLUDE (k) REPLACE ({', '.join(repl)}) "
                f"FROM src.main.{t}, (SELECT range AS k FROM range({copies()})) copies "
                "ORDER BY k, person_id"
            )
        con.execute("DETACH src")
        con.execute("CHECKPOINT")
    finally:
        con.close()
    building.rename(path)
    return path


def spark_warehouse(duck: Path) -> Path:
    import duckdb

    warehouse = CACHE / f"spark_x{copies()}"
    if (warehouse / "person" / "_SUCCESS").exists():
        return warehouse
    shutil.rmtree(warehouse, ignore_errors=True)
    con = duckdb.connect(str(duck), read_only=True)
    try:
        for t in TABLES:
            folder = warehouse / t
            folder.mkdir(parents=True)
            con.execute(
                f"COPY (SELECT * FROM main.{t}) TO '{folder}' "
                "(FORMAT parquet, PER_THREAD_OUTPUT true, OVERWRITE_OR_IGNORE true)"
            )
            (folder / "_SUCCESS").touch()
    finally:
        con.close()
    return warehouse


def postgres_url() -> str | None:
    base = os.environ.get("PASSERELLE_BENCH_POSTGRES_URL") or os.environ.get(
        "PASSERELLE_TEST_POSTGRES_URL"
    )
    if not base:
        return None
    sep = "&" if "?" in base else "?"
    return (
        f"{base.split('?')[0]}?schema=bench_study_x{copies()}"
        if "schema=" in base
        else (f"{base}{sep}schema=bench_study_x{copies()}")
    )


def load_postgres(duck: Path, url: str) -> Any:
    """The replicated CDM in a PostgreSQL schema (loaded once: kept between runs)."""
    import duckdb

    from passerelle.cdm.schema import TABLES_BY_NAME
    from passerelle.cdm.stores import open_store

    store = open_store(url)
    con = duckdb.connect(str(duck), read_only=True)
    try:
        want = {t: con.execute(f"SELECT count(*) FROM main.{t}").fetchone()[0] for t in TABLES}
        have = store.counts([TABLES_BY_NAME[t] for t in TABLES])
        if have == want:
            return store
        store.init([TABLES_BY_NAME[t] for t in TABLES])
        tmp = CACHE / "pg-export.csv"
        for t in TABLES:
            if have.get(t) == want[t]:
                continue
            cols = ", ".join(TABLES_BY_NAME[t].column_names)
            con.execute(f"COPY (SELECT {cols} FROM main.{t}) TO '{tmp}' (FORMAT csv, HEADER false)")
            with store.conn.cursor() as cur:  # type: ignore[attr-defined]
                cur.execute(f"TRUNCATE {store.qualified(t)}")
                copy = f"COPY {store.qualified(t)} ({cols}) FROM STDIN (FORMAT csv)"
                with cur.copy(copy) as cp, tmp.open("rb") as fh:
                    while chunk := fh.read(1 << 22):
                        cp.write(chunk)
                cur.execute(f"ANALYZE {store.qualified(t)}")
            tmp.unlink(missing_ok=True)
    finally:
        con.close()
    return store


# ---------------------------------------------------------------------------------------------
# Measuring
# ---------------------------------------------------------------------------------------------


def _spec() -> Any:
    from passerelle.query.parse import parse_study

    here = Path(__file__).resolve().parent.parent / "tests" / "query"
    sys.path.insert(0, str(here))
    try:
        from issue_specs import CELECOXIB  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(here))
    return parse_study(CELECOXIB)


def compare(engine: str, store: Any, repeat: int = 3) -> list[BenchRow]:
    from passerelle.query.engines import engine_for

    study = _spec()
    eng = engine_for(store)
    hand = hand_written(engine, store.qualified)
    result = eng.execute(study)  # warm-up, and the answer the hand-written SQL must give
    size = result.table("size").rows[0][0]
    answers = [store.query(sql).rows for sql in hand]
    agrees = answers[0][0][0] == size
    compiled = best_of(lambda: eng.execute(study), repeat)
    handwritten = best_of(lambda: [store.query(sql) for sql in hand], repeat)
    note = f"{size:,} persons; hand-written gives {'the same' if agrees else 'ANOTHER'} count"
    rows = [
        BenchRow(
            "study",
            f"celecoxib spec, {engine} ({PERSONS:,} persons)",
            compiled,
            "s",
            f"hand-written SQL on {engine}",
            handwritten,
            "ratio <= 1.2",
            note,
        )
    ]
    if engine == "duckdb":
        rows.append(
            BenchRow(
                "study",
                "celecoxib spec on DuckDB, absolute",
                compiled,
                "s",
                goal="< 1 s on 2 cores",
                note="3 analyses, best of 3",
            )
        )
    return rows


def _show(rows: list[BenchRow]) -> list[BenchRow]:
    for r in rows:
        ratio = "" if r.ratio is None else f" ratio {r.ratio:.2f}x"
        print(f"  {r.name}: {r.value:.3f} {r.unit} vs {r.baseline}{ratio} ({r.note})", flush=True)
    return rows


def run() -> list[BenchRow]:
    from passerelle.cdm.stores import open_store

    engines = os.environ.get("PASSERELLE_BENCH_ENGINES", "duckdb,spark,postgres").split(",")
    duck = build_duckdb()
    rows: list[BenchRow] = []
    if "duckdb" in engines:
        store = open_store(f"duckdb://{duck}")
        try:
            rows += _show(compare("duckdb", store))
        finally:
            store.close()
    if "spark" in engines:
        store = open_store(f"spark://{spark_warehouse(duck)}")
        try:
            rows += _show(compare("spark", store, repeat=2))
        finally:
            store.close()
    if "postgres" in engines:
        url = postgres_url()
        if url is None:
            rows.append(BenchRow("study", "celecoxib spec, postgres", 0.0, "s",
                                 note="skipped: no PASSERELLE_BENCH_POSTGRES_URL"))  # fmt: skip
        else:
            store = load_postgres(duck, url)
            try:
                rows += _show(compare("postgres", store))
            finally:
                store.close()
    return rows
