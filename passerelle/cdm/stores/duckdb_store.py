"""The embedded CDM store: one DuckDB file."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import duckdb

from passerelle.cdm import duckcsv
from passerelle.cdm.csvfiles import CsvFile
from passerelle.cdm.model import Table
from passerelle.cdm.stores.base import QueryResult, RowError, Store, TableLoad
from passerelle.errors import StoreUnavailable


class DuckDBStore(Store):
    engine = "duckdb"
    type_names = dict(duckcsv.DUCKDB_TYPES)
    supports_indexes = False  # zone maps only; see create_table

    _con: duckdb.DuckDBPyConnection | None = None

    @property
    def con(self) -> duckdb.DuckDBPyConnection:
        if self._con is None:
            self.connect()
        assert self._con is not None
        return self._con

    def connect(self) -> None:
        if self._con is not None:
            return
        path = self.url.path
        config: dict[str, Any] = {}
        if self.settings.duckdb_threads:
            config["threads"] = self.settings.duckdb_threads
        if self.settings.duckdb_memory_limit:
            config["memory_limit"] = self.settings.duckdb_memory_limit
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        try:
            self._con = duckdb.connect(path, config=config)
        except duckdb.Error as exc:
            raise StoreUnavailable(f"cannot open DuckDB store {path}: {exc}") from None

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None

    def column_type(self, logical: str, size: int | None) -> str:
        return self.type_names[logical]

    def existing_tables(self) -> set[str]:
        rows = self.con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'"
        ).fetchall()
        return {r[0] for r in rows}

    def create_table(self, table: Table, enforce_keys: bool = False) -> None:
        cols = [
            f"{duckcsv.sql_ident(c.name)} {self.column_type(c.type, c.size)}"
            + (" NOT NULL" if c.required else "")
            for c in table.columns
        ]
        if table.primary_key and enforce_keys:
            cols.append(f"PRIMARY KEY ({', '.join(table.primary_key)})")
        self.con.execute(f"CREATE TABLE main.{table.name} ({', '.join(cols)})")
        # No secondary ART indexes: DuckDB keeps them in memory, cannot evict them while they
        # are written, and maintains them on every insert (a quarter of the FHIR ingest's CPU,
        # and its memory grew with the store); its planner uses them only for point look-ups,
        # while the CDM's workload is scans and hash joins that zone maps already serve.

    def init(self, tables: Sequence[Table] | None = None, enforce_keys: bool = False) -> list[str]:
        from passerelle.cdm.schema import TABLES

        self.con.execute("BEGIN TRANSACTION")
        try:
            created = super().init(tables or TABLES, enforce_keys=enforce_keys)
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        self.con.execute("COMMIT")
        return created

    def qualified(self, table: str) -> str:
        return f"main.{table}"

    def row_count(self, table: str) -> int:
        return int(self.con.execute(f"SELECT count(*) FROM main.{table}").fetchone()[0])  # type: ignore[index]

    def load_csv(self, plan: CsvFile, replace: bool) -> TableLoad:
        started = time.perf_counter()
        result = TableLoad.for_plan(plan)
        con = self.con
        rejects = duckcsv.new_rejects_name()
        con.execute("BEGIN TRANSACTION")
        try:
            if replace:
                con.execute(f"DELETE FROM main.{plan.table.name}")
            inserted = con.execute(
                f"INSERT INTO main.{plan.table.name} {duckcsv.read_csv_sql(plan, rejects)}"
            ).fetchone()
            total, errors = duckcsv.collect_rejects(con, plan, rejects)
        except duckdb.ConstraintException as exc:
            con.execute("ROLLBACK")
            return result.fail([_constraint_error(plan, exc)])
        except duckdb.Error as exc:
            con.execute("ROLLBACK")
            return result.fail([duckcsv.reader_failure(plan, exc)])
        if total:
            con.execute("ROLLBACK")
            return result.fail(errors, total)
        con.execute("COMMIT")
        result.rows = int(inserted[0]) if inserted else 0
        result.duplicate_keys = self.duplicate_keys(plan.table)
        result.seconds = time.perf_counter() - started
        return result

    def write_batches(self, batches: Mapping[str, Any], replace_keys: Mapping[str, str]) -> int:
        """One transaction: per table, DELETE the batch's keys, then INSERT from an Arrow scan."""
        con = self.con
        written = 0
        views = []
        con.execute("BEGIN TRANSACTION")
        try:
            for table, data in batches.items():
                if data.num_rows == 0:
                    continue
                view = f"_passerelle_batch_{table}"
                con.register(view, data)
                views.append(view)
                cols = ", ".join(duckcsv.sql_ident(c) for c in data.column_names)
                key = replace_keys.get(table)
                if key:
                    k = duckcsv.sql_ident(key)
                    con.execute(f"DELETE FROM main.{table} WHERE {k} IN (SELECT {k} FROM {view})")
                con.execute(f"INSERT INTO main.{table} ({cols}) SELECT {cols} FROM {view}")
                written += data.num_rows
        except BaseException:
            con.execute("ROLLBACK")
            raise
        else:
            con.execute("COMMIT")
        finally:
            for view in views:
                con.unregister(view)
        return written

    def query(self, sql: str, params: Sequence[Any] = ()) -> QueryResult:
        cur = self.con.execute(sql, list(params))
        cols = tuple(d[0] for d in cur.description or ())
        return QueryResult(cols, cur.fetchall())

    def query_arrow(self, sql: str) -> Any:
        return self.con.sql(sql).to_arrow_table()

    def execute(self, sql: str) -> None:
        self.con.execute(sql)


def _constraint_error(plan: CsvFile, exc: Exception) -> RowError:
    text = str(exc)
    if "NOT NULL" in text:
        col = text.split(".")[-1].strip().split()[0] if "." in text else None
        return RowError(plan.path.name, None, col, "a required value is empty")
    if "PRIMARY KEY" in text or "duplicate key" in text:
        return RowError(
            plan.path.name, None, ", ".join(plan.table.primary_key), "duplicate primary key"
        )
    return RowError(plan.path.name, None, None, "violates a table constraint")
