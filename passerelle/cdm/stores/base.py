"""A CDM store: one class per engine, overriding small named methods.

Shared logic (what to create, what a load must check, how results are reported) lives here;
each engine says how it creates a table, counts rows and bulk-loads one planned CSV file.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar

from passerelle.cdm.csvfiles import CsvFile
from passerelle.cdm.model import Table
from passerelle.cdm.schema import TABLES
from passerelle.cdm.url import StoreURL
from passerelle.config import Settings, get_settings


@dataclass(frozen=True)
class RowError:
    """One malformed row: where it is and what is wrong, never its values."""

    file: str
    line: int | None
    column: str | None
    problem: str

    def __str__(self) -> str:
        where = self.file + (f":{self.line}" if self.line is not None else "")
        col = f" column {self.column}:" if self.column else ""
        return f"{where}:{col} {self.problem}"


@dataclass
class TableLoad:
    table: str
    file: str
    rows: int = 0
    errors: list[RowError] = field(default_factory=list)
    error_count: int = 0
    ignored_columns: tuple[str, ...] = ()
    # Rows whose primary-key value another row already has (kept, reported as a warning).
    duplicate_keys: int = 0
    cdm_version: str = "5.4"
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.errors and self.error_count == 0

    @classmethod
    def for_plan(cls, plan: CsvFile) -> TableLoad:
        """The result of loading one planned file, before anything is loaded."""
        return cls(
            plan.table.name,
            plan.path.name,
            ignored_columns=plan.ignored,
            cdm_version=plan.cdm_version,
        )

    def fail(self, errors: list[RowError], error_count: int | None = None) -> TableLoad:
        """Mark the load failed (nothing of the table committed) and return it."""
        self.errors = errors
        self.error_count = len(errors) if error_count is None else error_count
        return self


@dataclass(frozen=True)
class QueryResult:
    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]


class Store(ABC):
    """A CDM v5.4 store on one engine. Use as a context manager."""

    engine: ClassVar[str]
    # Logical type (tables.py) -> this engine's column type.
    type_names: ClassVar[dict[str, str]]
    # Whether init creates indexes (an index per primary key and the OHDSI list) on this engine;
    # primary keys become constraints with enforce_keys on every engine that has them.
    supports_indexes: ClassVar[bool] = True

    def __init__(self, url: StoreURL, settings: Settings | None = None) -> None:
        self.url = url
        self.settings = settings or get_settings()
        self._session_lock = threading.RLock()

    def __enter__(self) -> Store:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- connection --------------------------------------------------------------------------
    @abstractmethod
    def connect(self) -> None: ...

    @abstractmethod
    def close(self) -> None: ...

    # -- schema ------------------------------------------------------------------------------
    def column_type(self, logical: str, size: int | None) -> str:
        return self.type_names[logical]

    @abstractmethod
    def existing_tables(self) -> set[str]: ...

    @abstractmethod
    def create_table(self, table: Table, enforce_keys: bool = False) -> None:
        """Create one table. Primary keys are constraints only with `enforce_keys`; otherwise
        their columns are indexed and uniqueness is checked (and reported) after each load,
        because published OMOP exports break it (Eunomia GiBleed repeats 4,384
        drug_exposure_id values) and a load must not lose rows."""

    def init(self, tables: Sequence[Table] = TABLES, enforce_keys: bool = False) -> list[str]:
        """Create every CDM table that does not exist yet; return the names created."""
        have = self.existing_tables()
        created = []
        for table in tables:
            if table.name not in have:
                self.create_table(table, enforce_keys=enforce_keys)
                created.append(table.name)
        return created

    def duplicate_keys(self, table: Table) -> int:
        """Rows of `table` whose primary-key value is not unique."""
        if len(table.primary_key) != 1:
            return 0
        key = table.primary_key[0]
        result = self.query(
            f"SELECT count(*) - count(DISTINCT {key}) FROM {self.qualified(table.name)}"
        )
        return int(result.rows[0][0] or 0)

    def qualified(self, table: str) -> str:
        """The table's name as this engine's SQL refers to it."""
        return table

    # -- data --------------------------------------------------------------------------------
    @abstractmethod
    def row_count(self, table: str) -> int: ...

    def counts(self, tables: Sequence[Table] = TABLES) -> dict[str, int | None]:
        """Row count per CDM table; None for a table the store does not have."""
        have = self.existing_tables()
        return {t.name: (self.row_count(t.name) if t.name in have else None) for t in tables}

    @abstractmethod
    def load_csv(self, plan: CsvFile, replace: bool) -> TableLoad:
        """Bulk-load one planned file into its table, atomically: all rows or none."""

    @abstractmethod
    def query(self, sql: str, params: Sequence[Any] = ()) -> QueryResult:
        """Run one read-only SQL statement written in this engine's dialect."""

    def query_arrow(self, sql: str) -> Any:
        """Run one read-only statement; its rows as a pyarrow.Table (column types inferred
        from the values: callers cast to the schema they promise)."""
        import pyarrow as pa

        result = self.query(sql)
        columns = (
            list(zip(*result.rows, strict=True)) if result.rows else [()] * len(result.columns)
        )
        return pa.table(
            {n: pa.array(list(c)) for n, c in zip(result.columns, columns, strict=True)}
        )

    # -- sessions: statements sharing temporary tables ----------------------------------------
    @contextmanager
    def session(self) -> Iterator[Store]:
        """A unit of work whose statements all run on the same connection (DuckDB, PostgreSQL)
        or Spark session, so a temporary table one creates is seen by the next ones. Sessions
        of one store object are serialised (another thread waits); temporary tables are
        dropped by whoever created them, as the session ends."""
        with self._session_lock:
            self.connect()
            yield self

    def execute(self, sql: str) -> None:
        """Run one statement that returns no rows (a temporary table's CREATE or DROP)."""
        self.query(sql)

    def analyze(self, table: str) -> None:
        """Refresh the planner's statistics of a (temporary) table, where the engine has a
        planner that needs them (DuckDB and Spark keep statistics as they write)."""
        return None

    # -- row-level bulk writes (ingestion) ---------------------------------------------------
    def write_batches(self, batches: Mapping[str, Any], replace_keys: Mapping[str, str]) -> int:
        """Upsert Arrow tables by key, atomically; return the number of rows written.

        `batches` maps a CDM table name to a pyarrow.Table whose columns are a subset of that
        table's columns with its logical types; `replace_keys` maps a table name to the column
        identifying a row: stored rows whose key is in the batch are deleted, then the batch is
        inserted. DuckDB and PostgreSQL write every table of one call in one transaction;
        Spark swaps each table's Parquet folder atomically.
        """
        raise NotImplementedError(f"{self.engine} store cannot write row batches")
