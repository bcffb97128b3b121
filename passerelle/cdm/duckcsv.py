"""DuckDB's CSV reader as the parser and validator of OMOP CSV files.

The DuckDB store loads through it directly; the PostgreSQL store uses it to normalise a file
before COPY; the Spark store uses it to name the line and column of a row Spark rejected.
Rejected rows are reported by file, line, column and kind of problem, never by value.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import duckdb

from passerelle.cdm.csvfiles import CsvFile
from passerelle.cdm.stores.base import RowError

DUCKDB_TYPES = {
    "INTEGER": "INTEGER",
    "BIGINT": "BIGINT",
    "DOUBLE": "DOUBLE",
    "DATE": "DATE",
    "TIMESTAMP": "TIMESTAMP",
    "VARCHAR": "VARCHAR",
}
MAX_REPORTED_ERRORS = 20
_counter = itertools.count()


def sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def sql_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def read_csv_sql(plan: CsvFile, rejects: str) -> str:
    """`SELECT <target columns> FROM read_csv(...)` for one planned file."""
    columns = ", ".join(
        f"{sql_string(h)}: {sql_string(DUCKDB_TYPES[plan.source_type(h)])}" for h in plan.header
    )
    options = [
        sql_string(str(plan.path)),
        f"delim={sql_string(plan.delimiter)}",
        f"quote={sql_string(plan.quote)}",
        f"escape={sql_string(plan.quote)}",
        "header=true",
        "auto_detect=false",
        f"columns={{{columns}}}",
        *([f"dateformat={sql_string(plan.date_format)}"] if "%H" not in plan.date_format else []),
        "nullstr=''",
        "store_rejects=true",
        f"rejects_table={sql_string(rejects + '_errors')}",
        f"rejects_scan={sql_string(rejects + '_scans')}",
        "max_line_size=10000000",
    ]
    select = []
    for c in plan.columns:
        typ = DUCKDB_TYPES[plan.table.column(c.target).type]
        if c.source is not None:
            expr = sql_ident(c.source)
        elif c.row_number:
            expr = "row_number() OVER ()"
        elif c.constant is not None:
            expr = str(int(c.constant))
        else:
            expr = "NULL"
        select.append(f"CAST({expr} AS {typ}) AS {sql_ident(c.target)}")
    return f"SELECT {', '.join(select)} FROM read_csv({', '.join(options)})"


def new_rejects_name() -> str:
    return f"passerelle_rejects_{next(_counter)}"


def collect_rejects(
    con: duckdb.DuckDBPyConnection, plan: CsvFile, rejects: str
) -> tuple[int, list[RowError]]:
    exists = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = ?", [f"{rejects}_errors"]
    ).fetchone()
    if not exists or not exists[0]:
        return 0, []
    total = con.execute(f"SELECT count(*) FROM {rejects}_errors").fetchone()[0]  # type: ignore[index]
    rows = con.execute(
        f"SELECT line, column_name, error_type FROM {rejects}_errors "
        f"ORDER BY line LIMIT {MAX_REPORTED_ERRORS}"
    ).fetchall()
    errors = [
        RowError(
            plan.path.name, int(line) if line is not None else None, col, _problem(kind, plan, col)
        )
        for line, col, kind in rows
    ]
    return int(total), errors


def _problem(kind: str, plan: CsvFile, column: str | None) -> str:
    if kind == "CAST" and column is not None:
        return f"not a valid {plan.target_type(column)}"
    return {
        "MISSING COLUMNS": "too few fields",
        "TOO MANY COLUMNS": "too many fields",
        "UNQUOTED VALUE": "badly quoted field",
        "LINE SIZE OVER MAXIMUM": "line too long",
        "INVALID ENCODING": "not valid UTF-8",
    }.get(kind, kind.lower())


def reader_failure(plan: CsvFile, exc: Exception) -> RowError:
    """A CSV failure DuckDB raised instead of rejecting a row, without quoting the data."""
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    # DuckDB quotes offending values after the first sentence; keep only the kind of error.
    summary = first.split(":")[0][:120]
    return RowError(plan.path.name, None, None, f"unreadable: {summary}")


def diagnose(plan: CsvFile, limit: int = MAX_REPORTED_ERRORS) -> tuple[int, list[RowError]]:
    """Name the bad rows of a file (used when another engine's reader refused it)."""
    con = duckdb.connect()
    try:
        rejects = new_rejects_name()
        try:
            # Every column must be parsed for its rejects to be recorded: a count(*) would be
            # answered without converting a single value.
            con.execute(f"COPY ({read_csv_sql(plan, rejects)}) TO '/dev/null' (FORMAT csv)")
        except duckdb.Error as exc:
            return 1, [reader_failure(plan, exc)]
        total, errors = collect_rejects(con, plan, rejects)
        return total, errors[:limit]
    finally:
        con.close()


def normalise_to_csv(plan: CsvFile, out: Path) -> tuple[int, int, list[RowError]]:
    """Write the planned file as a typed, v5.4-shaped CSV (no header) for COPY.

    Returns (rows written, rejected rows, first errors)."""
    con = duckdb.connect()
    try:
        rejects = new_rejects_name()
        try:
            copied = con.execute(
                f"COPY ({read_csv_sql(plan, rejects)}) TO {sql_string(str(out))} "
                "(FORMAT csv, HEADER false, DELIMITER ',', QUOTE '\"', NULL '')"
            ).fetchone()
        except duckdb.Error as exc:
            return 0, 1, [reader_failure(plan, exc)]
        total, errors = collect_rejects(con, plan, rejects)
        written = int(copied[0]) if copied else 0
        return int(written), total, errors
    finally:
        con.close()
