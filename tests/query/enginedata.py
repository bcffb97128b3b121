"""Fast loading of test data into every engine's store, for the engine tests.

- `load_rows`: small {table: [row dict]} data (spec cases, hypothesis data) into a store:
  DuckDB / PostgreSQL by INSERT (tables emptied first), Spark by writing one Parquet file per
  table with pyarrow (no Spark job).
- `gibleed_*`: GiBleed loaded once into DuckDB by `load_folder`, then exported: to Parquet
  for Spark (DuckDB's COPY, seconds instead of minutes of Spark CSV parsing) and to
  PostgreSQL by COPY.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from passerelle.cdm.schema import TABLES_BY_NAME
from passerelle.cdm.stores import Store, open_store
from passerelle.query import model as m

# Every table a study can read.
STUDY_TABLES = tuple(
    sorted(
        {d.table for d in m.DOMAINS.values()}
        | {m.PERSON_TABLE, m.OBSERVATION_PERIOD_TABLE, m.VISIT_TABLE, m.CONCEPT_ANCESTOR_TABLE}
    )
)


def _arrow_type(logical: str) -> Any:
    import pyarrow as pa

    return {
        "INTEGER": pa.int32(),
        "BIGINT": pa.int64(),
        "DOUBLE": pa.float64(),
        "DATE": pa.date32(),
        "TIMESTAMP": pa.timestamp("us"),
        "VARCHAR": pa.string(),
    }[logical]


def write_parquet_tables(warehouse: Path, data: Mapping[str, Sequence[Mapping[str, Any]]]) -> None:
    """One Parquet file per study table in a Spark store's warehouse layout."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    for name in STUDY_TABLES:
        table = TABLES_BY_NAME[name]
        rows = data.get(name, [])
        arrays = [
            pa.array([r.get(c.name) for r in rows], type=_arrow_type(c.type)) for c in table.columns
        ]
        folder = warehouse / name
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        pq.write_table(
            pa.Table.from_arrays(arrays, names=list(table.column_names)), folder / "part-0.parquet"
        )
        (folder / "_SUCCESS").touch()


class SmallData:
    """A store on one engine that test data is loaded into, again and again."""

    def __init__(self, engine: str, root: Path, postgres_url: str | None = None) -> None:
        self.engine = engine
        self.root = root
        self.store: Store | None = None
        self._filled: set[str] = set()
        if engine == "duckdb":
            self.store = open_store(f"duckdb://{root / 'small.duckdb'}")
            self.store.init([TABLES_BY_NAME[t] for t in STUDY_TABLES])
        elif engine == "postgres":
            assert postgres_url
            self.store = open_store(postgres_url)
            self.store.init([TABLES_BY_NAME[t] for t in STUDY_TABLES])

    def load(self, data: Mapping[str, Sequence[Mapping[str, Any]]]) -> Store:
        if self.engine == "spark":
            warehouse = self.root / f"wh-{uuid.uuid4().hex[:8]}"
            write_parquet_tables(warehouse, data)
            return open_store(f"spark://{warehouse}")
        assert self.store is not None
        for name in STUDY_TABLES:
            rows = data.get(name, [])
            if rows or name in self._filled:
                self._replace(name, rows)
            if rows:
                self._filled.add(name)
            else:
                self._filled.discard(name)
        return self.store

    def _replace(self, name: str, rows: Sequence[Mapping[str, Any]]) -> None:
        store = self.store
        table = TABLES_BY_NAME[name]
        cols = list(table.column_names)
        target = store.qualified(name)  # type: ignore[union-attr]
        if self.engine == "duckdb":
            con = store.con  # type: ignore[union-attr]
            con.execute(f"DELETE FROM {target}")
            if rows:
                marks = ", ".join("?" for _ in cols)
                con.executemany(
                    f"INSERT INTO {target} VALUES ({marks})",
                    [[r.get(c) for c in cols] for r in rows],
                )
        else:
            conn = store.conn  # type: ignore[union-attr]
            with conn.cursor() as cur:
                cur.execute(f"TRUNCATE {target}")
                if rows:
                    marks = ", ".join("%s" for _ in cols)
                    cur.executemany(
                        f"INSERT INTO {target} VALUES ({marks})",
                        [[r.get(c) for c in cols] for r in rows],
                    )

    def close(self) -> None:
        if self.store is not None:
            self.store.close()


def gibleed_duckdb(folder: Path, path: Path) -> Path:
    """GiBleed loaded into a DuckDB file by the project's loader."""
    from passerelle.cdm.load import load_folder

    store = open_store(f"duckdb://{path}")
    try:
        report = load_folder(store, folder)
        assert report.ok, report.to_dict()
    finally:
        store.close()
    return path


def export_duckdb_to_spark(
    duck: Path, warehouse: Path, tables: Sequence[str] = STUDY_TABLES
) -> str:
    import duckdb

    con = duckdb.connect(str(duck), read_only=True)
    try:
        for name in tables:
            folder = warehouse / name
            folder.mkdir(parents=True, exist_ok=True)
            con.execute(
                f"COPY (SELECT * FROM main.{name}) TO '{folder / 'part-0.parquet'}' (FORMAT parquet)"
            )
            (folder / "_SUCCESS").touch()
    finally:
        con.close()
    return f"spark://{warehouse}"


def export_duckdb_to_postgres(duck: Path, pg: Store, tables: Sequence[str] = STUDY_TABLES) -> None:
    import duckdb

    pg.init([TABLES_BY_NAME[t] for t in tables])
    con = duckdb.connect(str(duck), read_only=True)
    tmp = duck.parent / f"export-{uuid.uuid4().hex[:8]}.csv"
    try:
        for name in tables:
            cols = ", ".join(TABLES_BY_NAME[name].column_names)
            con.execute(
                f"COPY (SELECT {cols} FROM main.{name}) TO '{tmp}' (FORMAT csv, HEADER false)"
            )
            with pg.conn.cursor() as cur, tmp.open("rb") as fh:  # type: ignore[attr-defined]
                with cur.copy(f"COPY {pg.qualified(name)} ({cols}) FROM STDIN (FORMAT csv)") as cp:
                    while chunk := fh.read(1 << 20):
                        cp.write(chunk)
                cur.execute(f"ANALYZE {pg.qualified(name)}")
    finally:
        con.close()
        tmp.unlink(missing_ok=True)
