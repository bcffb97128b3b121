"""The study engines on GiBleed replicated to about 1M persons: the issue's second spec
(celecoxib new users) compiled and run on DuckDB, PostgreSQL and Spark, each against a
hand-written SQL answering the same three questions on the same engine in the same run.

The replicated CDM is built once with SQL in DuckDB (copy k of every row has person ids
offset by k * 10,000 and event ids by k * 10^8), then exported to PostgreSQL (only the columns
the statements read, COPY into UNLOGGED tables, indexes built after the load) and to a
Spark Parquet warehouse, all cached under passerelle-data/bench/study/ (delete it to rebuild).
Env: PASSERELLE_BENCH_PERSONS (default 1,000,000), PASSERELLE_BENCH_PG_PERSONS (PostgreSQL
loads only the first copies up to that many persons; default: all), PASSERELLE_BENCH_POSTGRES_URL (or
PASSERELLE_TEST_POSTGRES_URL; without one the PostgreSQL rows are skipped), and
PASSERELLE_BENCH_ENGINES (default "duckdb,postgres,spark").
"""

from __future__ import annotations

import math
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.common import ROOT, SHARED_DATA, BenchRow

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


def postgres_persons() -> int:
    """Persons loaded into PostgreSQL (PASSERELLE_BENCH_PG_PERSONS, default: PERSONS)."""
    return int(os.environ.get("PASSERELLE_BENCH_PG_PERSONS", str(PERSONS)))


def postgres_url(copies_: int) -> str | None:
    base = os.environ.get("PASSERELLE_BENCH_POSTGRES_URL") or os.environ.get(
        "PASSERELLE_TEST_POSTGRES_URL"
    )
    if not base:
        return None
    sep = "&" if "?" in base else "?"
    return (
        f"{base.split('?')[0]}?schema=bench_study_x{copies_}"
        if "schema=" in base
        else (f"{base}{sep}schema=bench_study_x{copies_}")
    )


def needed_columns(table: str, sql_texts: list[str]) -> list[str]:
    """The table's required columns and those the statements name: the only ones copied."""
    import re

    from passerelle.cdm.schema import TABLES_BY_NAME

    text = "\n".join(sql_texts)
    return [
        c.name
        for c in TABLES_BY_NAME[table].columns
        if c.required or re.search(rf"\b{c.name}\b", text)
    ]


def load_postgres(duck: Path, url: str, copies_: int, sql_texts: list[str]) -> Any:
    """The first `copies_` copies of the replicated CDM in a PostgreSQL schema, kept between
    runs. Per table: created UNLOGGED (a cache: no WAL), its indexes dropped, only the columns
    the statements read (and the required ones) exported by DuckDB to CSV and COPYed, two
    tables at a time on two connections, then the indexes rebuilt and the table ANALYZEd."""
    import concurrent.futures

    import duckdb
    import psycopg

    from passerelle.cdm.schema import TABLES_BY_NAME
    from passerelle.cdm.stores import open_store

    store = open_store(url)
    con = duckdb.connect(str(duck), read_only=True)
    limit = {t: "" for t in TABLES}
    for t in TABLES:
        if t != "concept_ancestor":
            limit[t] = f" WHERE person_id < {copies_ * PERSON_OFFSET}"
    try:
        want = {
            t: con.execute(f"SELECT count(*) FROM main.{t}{limit[t]}").fetchone()[0]  # type: ignore[index]
            for t in TABLES
        }
        have = store.counts([TABLES_BY_NAME[t] for t in TABLES])
        todo = [t for t in TABLES if have.get(t) != want[t]]
        if not todo:
            return store
        exports = {}
        for t in todo:
            cols = ", ".join(needed_columns(t, sql_texts))
            exports[t] = (cols, CACHE / f"pg-{t}.csv")
            con.execute(
                f"COPY (SELECT {cols} FROM main.{t}{limit[t]}) TO '{exports[t][1]}' "
                "(FORMAT csv, HEADER false)"
            )
    finally:
        con.close()
    conninfo = store.url.postgres_conninfo()

    indexes: dict[str, list[str]] = {}
    for table in todo:  # one connection: the store's
        target = store.qualified(table)
        store.execute(f"DROP TABLE IF EXISTS {target}")
        store.create_table(TABLES_BY_NAME[table])
        found = store.query(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = %s AND tablename = %s",
            (store.schema, table),  # type: ignore[attr-defined]
        ).rows
        indexes[table] = [ddl for _, ddl in found]
        for name, _ in found:
            store.execute(f'DROP INDEX "{store.schema}"."{name}"')  # type: ignore[attr-defined]
        store.execute(f"ALTER TABLE {target} SET UNLOGGED")

    def load(table: str) -> None:
        cols, csv = exports[table]
        target = store.qualified(table)
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute("SET maintenance_work_mem = '512MB'")
            with conn.cursor() as cur:
                copy = f"COPY {target} ({cols}) FROM STDIN (FORMAT csv)"
                with cur.copy(copy) as cp, csv.open("rb") as fh:
                    while chunk := fh.read(1 << 22):
                        cp.write(chunk)
            for ddl in indexes[table]:
                conn.execute(ddl)
            conn.execute(f"ANALYZE {target}")
        csv.unlink(missing_ok=True)

    # the two big tables first, on two connections
    order = sorted(todo, key=lambda t: -want[t])
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        for future in [pool.submit(load, t) for t in order]:
            future.result()
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


CPU_NOTES = {
    "duckdb": "CPU of this process, DuckDB's threads included",
    "spark": "CPU of this process and the Spark JVM",
    "postgres": "CPU of this process and the connection's backend; parallel workers not "
    "counted (the engine sets enable_nestloop = off for its statements, the hand-written "
    "SQL runs with the defaults)",
}


def helper_pids(engine: str, store: Any) -> list[int]:
    """Processes doing the engine's work outside this one: the PostgreSQL backend of the
    store's connection, the Spark JVM (a child of this process); DuckDB runs in-process."""
    if engine == "postgres":
        return [int(store.query("SELECT pg_backend_pid()").rows[0][0])]
    if engine == "spark":
        me = str(os.getpid())
        pids = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[1] == me:
                pids.append(int(stat.parent.name))
        return pids
    return []


def cpu_seconds(pids: list[int]) -> float:
    """CPU time (user + system) of this process (all its threads) and of `pids`."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = time.process_time()
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def timed(fn: Any, pids: list[int], repeat: int) -> tuple[float, float]:
    """(best wall, best CPU) of `repeat` runs of fn(), in seconds."""
    walls, cpus = [], []
    for _ in range(repeat):
        cpu, wall = cpu_seconds(pids), time.perf_counter()
        fn()
        walls.append(time.perf_counter() - wall)
        cpus.append(cpu_seconds(pids) - cpu)
    return min(walls), min(cpus)


def same_answers(result: Any, answers: list[list[tuple[Any, ...]]]) -> bool:
    """The hand-written answers are the compiled study's three tables."""

    def rows(rs: Any) -> list[tuple[Any, ...]]:
        return sorted(
            (tuple(round(float(v), 9) if isinstance(v, float) else v for v in r) for r in rs),
            key=str,
        )

    tables = [result.table(n).rows for n in ("size", "by_sex_age", "gi_bleed_1y")]
    return all(rows(t) == rows(a) for t, a in zip(tables, answers, strict=True))


def compare(engine: str, store: Any, persons: int, repeat: int = 3) -> list[BenchRow]:
    from passerelle.query.engines import engine_for

    study = _spec()
    eng = engine_for(store)
    hand = hand_written(engine, store.qualified)
    result = eng.execute(study)  # warm-up, and the answer the hand-written SQL must give
    size = result.table("size").rows[0][0]
    answers = [store.query(sql).rows for sql in hand]
    agrees = same_answers(result, answers)
    pids = helper_pids(engine, store)
    compiled, compiled_cpu = timed(lambda: eng.execute(study), pids, repeat)
    handwritten, hand_cpu = timed(lambda: [store.query(sql) for sql in hand], pids, repeat)
    note = (
        f"{size:,} in the cohort; hand-written gives {'the same' if agrees else 'OTHER'} "
        f"answers; best of {repeat}"
    )
    label = f"celecoxib spec, {engine} ({persons:,} persons)"
    rows = [
        BenchRow(
            "study",
            label,
            compiled,
            "s",
            f"hand-written SQL on {engine}",
            handwritten,
            "ratio <= 1.2",
            note,
        ),
        BenchRow(
            "study",
            f"{label}, CPU",
            compiled_cpu,
            "s CPU",
            f"hand-written SQL on {engine}, CPU",
            hand_cpu,
            "ratio <= 1.2",
            CPU_NOTES[engine],
        ),
    ]
    if engine == "duckdb":
        rows.append(
            BenchRow(
                "study",
                "celecoxib spec on DuckDB, absolute",
                compiled,
                "s",
                goal="< 1 s on 2 cores",
                note=f"3 analyses, wall, best of {repeat}; CPU {compiled_cpu:.2f} s",
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
    from passerelle.query.engines import engine_class

    engines = os.environ.get("PASSERELLE_BENCH_ENGINES", "duckdb,spark,postgres").split(",")
    duck = build_duckdb()
    rows: list[BenchRow] = []
    if "duckdb" in engines:
        store = open_store(f"duckdb://{duck}")
        try:
            rows += _show(compare("duckdb", store, PERSONS))
        finally:
            store.close()
    if "spark" in engines:
        store = open_store(f"spark://{spark_warehouse(duck)}")
        try:
            rows += _show(compare("spark", store, PERSONS, repeat=2))
        finally:
            store.close()
    if "postgres" in engines:
        pg_copies = min(copies(), math.ceil(postgres_persons() / 2694))
        url = postgres_url(pg_copies)
        if url is None:
            rows.append(BenchRow("study", "celecoxib spec, postgres", 0.0, "s",
                                 note="skipped: no PASSERELLE_BENCH_POSTGRES_URL"))  # fmt: skip
        else:
            from passerelle.cdm.stores import store_class
            from passerelle.cdm.url import parse_store_url

            # The statements name the columns to load; table names do not matter here.
            pg = store_class(parse_store_url(url).scheme)(parse_store_url(url))
            texts = hand_written("postgres", pg.qualified)
            plan = engine_class("postgres")(pg).compiler().plan(_spec())
            texts += [t.create for t in plan.tables] + [sql for _, sql in plan.analyses]
            started = time.perf_counter()
            store = load_postgres(duck, url, pg_copies, texts)
            loaded = time.perf_counter() - started
            try:
                persons = store.row_count("person")
                pg_rows = _show(compare("postgres", store, persons, repeat=2))
                pg_rows[
                    0
                ].note += (
                    f"; UNLOGGED tables, only the columns read; load or cache check {loaded:.0f} s"
                )
                rows += pg_rows
            finally:
                store.close()
    return rows
