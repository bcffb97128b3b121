"""A CDM store in one schema of a PostgreSQL database (psycopg 3, COPY for loads)."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from passerelle.cdm import duckcsv
from passerelle.cdm.csvfiles import CsvFile
from passerelle.cdm.model import Table
from passerelle.cdm.stores.base import QueryResult, RowError, Store, TableLoad
from passerelle.errors import StoreUnavailable

COPY_CHUNK = 1 << 20


class PostgresStore(Store):
    engine = "postgres"
    type_names = {
        "INTEGER": "INTEGER",
        "BIGINT": "BIGINT",
        "DOUBLE": "DOUBLE PRECISION",
        "DATE": "DATE",
        "TIMESTAMP": "TIMESTAMP",
        "VARCHAR": "TEXT",
    }

    _conn: psycopg.Connection | None = None

    @property
    def conn(self) -> psycopg.Connection:
        if self._conn is None:
            self.connect()
        assert self._conn is not None
        return self._conn

    @property
    def schema(self) -> str:
        return self.url.schema

    def connect(self) -> None:
        if self._conn is not None:
            return
        try:
            self._conn = psycopg.connect(self.url.postgres_conninfo(), autocommit=True)
        except psycopg.OperationalError as exc:
            reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else "unreachable"
            raise StoreUnavailable(
                f"cannot connect to PostgreSQL store {self.url.redacted()}: {reason}"
            ) from None
        self._conn.execute(
            sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.schema))
        )

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def column_type(self, logical: str, size: int | None) -> str:
        if logical == "VARCHAR" and size is not None:
            return f"VARCHAR({size})"
        return self.type_names[logical]

    def _t(self, table: str) -> sql.Composed:
        return sql.SQL("{}.{}").format(sql.Identifier(self.schema), sql.Identifier(table))

    def existing_tables(self) -> set[str]:
        rows = self.conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
            (self.schema,),
        ).fetchall()
        return {r[0] for r in rows}

    def create_table(self, table: Table, enforce_keys: bool = False) -> None:
        cols = [
            sql.SQL("{} {}{}").format(
                sql.Identifier(c.name),
                sql.SQL(self.column_type(c.type, c.size)),
                sql.SQL(" NOT NULL" if c.required else ""),
            )
            for c in table.columns
        ]
        if table.primary_key and enforce_keys:
            cols.append(
                sql.SQL("CONSTRAINT {} PRIMARY KEY ({})").format(
                    sql.Identifier(f"xpk_{table.name}"),
                    sql.SQL(", ").join(sql.Identifier(c) for c in table.primary_key),
                )
            )
        with self.conn.transaction():
            self.conn.execute(
                sql.SQL("CREATE TABLE {} ({})").format(
                    self._t(table.name), sql.SQL(", ").join(cols)
                )
            )
            if table.primary_key and not enforce_keys:
                self.conn.execute(
                    sql.SQL("CREATE INDEX {} ON {} ({})").format(
                        sql.Identifier(f"{self.schema}_xpk_{table.name}"),
                        self._t(table.name),
                        sql.SQL(", ").join(sql.Identifier(c) for c in table.primary_key),
                    )
                )
            for idx in table.indexes:
                if idx.column in table.primary_key:
                    continue
                self.conn.execute(
                    sql.SQL("CREATE INDEX {} ON {} ({})").format(
                        sql.Identifier(f"{self.schema}_{idx.name}"),
                        self._t(table.name),
                        sql.Identifier(idx.column),
                    )
                )

    def row_count(self, table: str) -> int:
        row = self.conn.execute(
            sql.SQL("SELECT count(*) FROM {}").format(self._t(table))
        ).fetchone()
        return int(row[0]) if row else 0

    def load_csv(self, plan: CsvFile, replace: bool) -> TableLoad:
        started = time.perf_counter()
        result = TableLoad.for_plan(plan)
        with tempfile.TemporaryDirectory(prefix="passerelle-copy-") as tmp:
            normalised = Path(tmp) / "rows.csv"
            written, rejected, errors = duckcsv.normalise_to_csv(plan, normalised)
            if rejected:
                return result.fail(errors, rejected)
            copy = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv)").format(
                self._t(plan.table.name),
                sql.SQL(", ").join(sql.Identifier(c.target) for c in plan.columns),
            )
            try:
                with self.conn.transaction(), self.conn.cursor() as cur:
                    if replace:
                        cur.execute(sql.SQL("TRUNCATE {}").format(self._t(plan.table.name)))
                    with cur.copy(copy) as cp, normalised.open("rb") as fh:
                        while chunk := fh.read(COPY_CHUNK):
                            cp.write(chunk)
                    result.rows = cur.rowcount if cur.rowcount >= 0 else written
                    cur.execute(sql.SQL("ANALYZE {}").format(self._t(plan.table.name)))
            except psycopg.Error as exc:
                return result.fail([_copy_error(plan, exc)])
        result.duplicate_keys = self.duplicate_keys(plan.table)
        result.seconds = time.perf_counter() - started
        return result

    def qualified(self, table: str) -> str:
        return f'"{self.schema}"."{table}"'

    def write_batches(self, batches: Mapping[str, Any], replace_keys: Mapping[str, str]) -> int:
        """One transaction: per table, COPY into a temporary table, DELETE the rows with the
        same keys, INSERT the copied rows."""
        written = 0
        with self.conn.transaction(), self.conn.cursor() as cur:
            for table, data in batches.items():
                if data.num_rows == 0:
                    continue
                tmp = sql.Identifier(f"_passerelle_batch_{table}")
                names = data.column_names
                cols = sql.SQL(", ").join(sql.Identifier(c) for c in names)
                cur.execute(
                    sql.SQL(
                        "CREATE TEMP TABLE {} ON COMMIT DROP AS SELECT {} FROM {} LIMIT 0"
                    ).format(tmp, cols, self._t(table))
                )
                with cur.copy(sql.SQL("COPY {} ({}) FROM STDIN").format(tmp, cols)) as cp:
                    for row in zip(*(data.column(c).to_pylist() for c in names), strict=True):
                        cp.write_row(row)
                key = replace_keys.get(table)
                if key:
                    k = sql.Identifier(key)
                    cur.execute(
                        sql.SQL("DELETE FROM {} t WHERE t.{} IN (SELECT {} FROM {})").format(
                            self._t(table), k, k, tmp
                        )
                    )
                cur.execute(
                    sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {}").format(
                        self._t(table), cols, cols, tmp
                    )
                )
                cur.execute(sql.SQL("DROP TABLE {}").format(tmp))
                written += data.num_rows
        return written

    def execute(self, sql_text: str) -> None:
        self.conn.execute(sql_text)  # type: ignore[arg-type]

    def analyze(self, table: str) -> None:
        # Autovacuum never analyses temporary tables: without this the planner guesses.
        self.conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(table)))

    def query(self, sql_text: str, params: Sequence[Any] = ()) -> QueryResult:
        with self.conn.cursor() as cur:
            cur.execute(sql_text, list(params) or None)  # type: ignore[arg-type]
            cols = tuple(d.name for d in cur.description or ())
            return QueryResult(cols, cur.fetchall() if cur.description else [])


def _copy_error(plan: CsvFile, exc: psycopg.Error) -> RowError:
    diag = exc.diag
    line = None
    ctx = diag.context or ""
    # COPY's context names the line of its input, which is the data line after the header.
    if "line" in ctx:
        try:
            line = int(ctx.split("line", 1)[1].split(",")[0].split(":")[0].strip()) + 1
        except ValueError:
            line = None
    column = diag.column_name
    if isinstance(exc, psycopg.errors.UniqueViolation):
        return RowError(
            plan.path.name, line, ", ".join(plan.table.primary_key), "duplicate primary key"
        )
    if isinstance(exc, psycopg.errors.NotNullViolation):
        return RowError(plan.path.name, line, column, "a required value is empty")
    return RowError(plan.path.name, line, column, f"refused by PostgreSQL ({diag.sqlstate})")
