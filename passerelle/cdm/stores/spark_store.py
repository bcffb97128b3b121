"""A CDM store as one Parquet table per CDM table in a warehouse folder, queried by Spark.

Nothing here collects table data to the driver: loads go file → Spark reader → Parquet, counts
come from Spark, and queries return only their (aggregate) results. Local mode by default;
`?master=` points at a cluster or a Spark Connect server.
"""

from __future__ import annotations

import shutil
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from passerelle.cdm import duckcsv
from passerelle.cdm.csvfiles import CsvFile
from passerelle.cdm.model import Table
from passerelle.cdm.schema import TABLES_BY_NAME
from passerelle.cdm.spark_session import get_spark
from passerelle.cdm.stores.base import QueryResult, RowError, Store, TableLoad
from passerelle.errors import StoreUnavailable

SPARK_TYPES = {
    "INTEGER": "int",
    "BIGINT": "bigint",
    "DOUBLE": "double",
    "DATE": "date",
    "TIMESTAMP": "timestamp",
    "VARCHAR": "string",
}
CORRUPT = "_corrupt_record"


def _arrow_types() -> dict:
    import pyarrow as pa

    return {
        "INTEGER": pa.int32(),
        "BIGINT": pa.int64(),
        "DOUBLE": pa.float64(),
        "DATE": pa.date32(),
        "TIMESTAMP": pa.timestamp("us", tz="UTC"),
        "VARCHAR": pa.string(),
    }


ARROW_TYPES = _arrow_types()


class SparkStore(Store):
    engine = "spark"
    type_names = SPARK_TYPES
    # Parquet has neither primary keys nor indexes; Spark prunes by column statistics.
    supports_indexes = False

    spark: Any = None

    @property
    def warehouse(self) -> Path:
        return Path(self.url.path)

    def connect(self) -> None:
        if self.spark is not None:
            return
        master = self.url.param("master", self.settings.spark_master)
        self.spark = get_spark(master, self.settings)
        try:
            self.warehouse.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreUnavailable(f"cannot use warehouse folder {self.warehouse}: {exc}") from None
        self._registered: set[str] = set()

    def close(self) -> None:
        # The session is shared by the process (starting one takes seconds); views are cheap.
        self.spark = None

    def _path(self, table: str) -> Path:
        return self.warehouse / table

    def schema_of(self, table: Table) -> Any:
        from pyspark.sql.types import StructField, StructType, _parse_datatype_string

        return StructType(
            [
                StructField(c.name, _parse_datatype_string(SPARK_TYPES[c.type]), not c.required)
                for c in table.columns
            ]
        )

    def existing_tables(self) -> set[str]:
        if not self.warehouse.is_dir():
            return set()
        return {
            p.name
            for p in self.warehouse.iterdir()
            if p.is_dir() and p.name in TABLES_BY_NAME and (p / "_SUCCESS").exists()
        }

    def create_table(self, table: Table, enforce_keys: bool = False) -> None:
        # An empty table is one Parquet file with the schema; pyarrow writes it without a
        # Spark job (39 Spark jobs would cost a minute in local mode).
        import pyarrow as pa
        import pyarrow.parquet as pq

        path = self._path(table.name)
        staging = self.warehouse / f".{table.name}.loading-{uuid.uuid4().hex}"
        staging.mkdir(parents=True)
        schema = pa.schema(
            [pa.field(c.name, ARROW_TYPES[c.type], nullable=not c.required) for c in table.columns]
        )
        pq.write_table(schema.empty_table(), staging / "part-00000.parquet")
        (staging / "_SUCCESS").touch()
        if path.exists():
            shutil.rmtree(path)
        staging.rename(path)
        self._registered.discard(table.name)

    def row_count(self, table: str) -> int:
        self.connect()
        return int(self.spark.read.parquet(str(self._path(table))).count())

    def load_csv(self, plan: CsvFile, replace: bool) -> TableLoad:
        from pyspark.sql import functions as F
        from pyspark.sql.types import StringType, StructField, StructType

        self.connect()
        started = time.perf_counter()
        result = TableLoad.for_plan(plan)
        positional = [f"c{i}" for i in range(len(plan.header))]
        raw_schema = StructType(
            [StructField(n, StringType(), True) for n in positional]
            + [StructField(CORRUPT, StringType(), True)]
        )
        reader = self.spark.read.options(
            header="true",
            sep=plan.delimiter,
            mode="PERMISSIVE",
            columnNameOfCorruptRecord=CORRUPT,
            enforceSchema="true",
            multiLine="false",
        )
        if plan.quote:
            reader = reader.options(quote=plan.quote, escape=plan.quote)
        else:
            reader = reader.option("quote", "\u0000")
        raw = reader.schema(raw_schema).csv(str(plan.path))
        spark_date_format = (
            plan.date_format.replace("%Y", "yyyy").replace("%m", "MM").replace("%d", "dd")
        )
        pos = {h: positional[i] for i, h in enumerate(plan.header)}
        typed, checks = [], []
        for c in plan.columns:
            logical = plan.table.column(c.target).type
            if c.source is not None:
                src = F.col(pos[c.source])
                if logical == "DATE" and "%H" in plan.date_format:
                    value = F.to_date(F.to_timestamp(F.regexp_replace(src, "Z$", "")))
                elif logical == "DATE":
                    value = F.to_date(src, spark_date_format)
                elif logical == "TIMESTAMP":
                    value = F.to_timestamp(F.regexp_replace(src, "Z$", ""))
                else:
                    value = src.cast(SPARK_TYPES[logical])
                checks.append(F.sum(F.when(src.isNotNull() & value.isNull(), 1).otherwise(0)))
            elif c.row_number:
                value = F.monotonically_increasing_id() + 1
            elif c.constant is not None:
                value = F.lit(c.constant)
            else:
                value = F.lit(None)
            typed.append(value.cast(SPARK_TYPES[logical]).alias(c.target))
        frame = raw.select(*typed)
        # One pass over the file answers every question a load must ask before it commits:
        # rows, malformed rows, values that do not parse, empty required values, duplicate keys.
        required = [c.name for c in plan.table.columns if c.required]
        key = plan.table.primary_key
        stats = (
            raw.select(*raw.columns, *typed)
            .agg(
                F.count(F.lit(1)).alias("rows"),
                F.sum(F.when(F.col(CORRUPT).isNotNull(), 1).otherwise(0)).alias("corrupt"),
                *[chk.alias(f"bad_{i}") for i, chk in enumerate(checks)],
                *[
                    F.sum(F.when(F.col(name).isNull(), 1).otherwise(0)).alias(f"null_{name}")
                    for name in required
                ],
                *([F.countDistinct(F.col(key[0])).alias("distinct_key")] if len(key) == 1 else []),
            )
            .first()
        )
        values = stats.asDict()
        bad = int(values["corrupt"] or 0) + sum(
            int(values[f"bad_{i}"] or 0) for i in range(len(checks))
        )
        if bad:
            total, errors = duckcsv.diagnose(plan)
            return result.fail(
                errors or [RowError(plan.path.name, None, None, f"{bad} malformed row(s)")],
                max(bad, total),
            )
        for name in required:
            if values[f"null_{name}"]:
                return result.fail(
                    [RowError(plan.path.name, None, name, "a required value is empty")],
                    int(values[f"null_{name}"]),
                )
        staging = self.warehouse / f".{plan.table.name}.loading-{uuid.uuid4().hex}"
        frame.write.mode("error").parquet(str(staging))
        self._swap_in(plan.table.name, staging)
        result.rows = int(values["rows"])
        if len(key) == 1:
            result.duplicate_keys = result.rows - int(values["distinct_key"])
        result.seconds = time.perf_counter() - started
        return result

    def _swap_in(self, table: str, staging: Path) -> None:
        target = self._path(table)
        old = self.warehouse / f".{table}.old-{uuid.uuid4().hex}"
        if target.exists():
            target.rename(old)
        staging.rename(target)
        shutil.rmtree(old, ignore_errors=True)
        self._registered.discard(table)
        self.spark.catalog.dropTempView(table)

    def write_batches(self, batches: Mapping[str, Any], replace_keys: Mapping[str, str]) -> int:
        """Per table: the stored rows whose key is not in the batch, plus the batch, written to a
        staging folder that then replaces the table's folder (atomic per table)."""
        import pyarrow.parquet as pq

        self.connect()
        written = 0
        for table, data in batches.items():
            if data.num_rows == 0:
                continue
            spec = TABLES_BY_NAME[table]
            incoming = self.warehouse / f".{table}.incoming-{uuid.uuid4().hex}"
            incoming.mkdir()
            try:
                pq.write_table(data, str(incoming / "part-0.parquet"))
                new = self.spark.read.parquet(str(incoming))
                for col in spec.columns:
                    if col.name not in data.column_names:
                        new = new.withColumn(col.name, self._null(col.type))
                new = new.select(
                    *[new[c.name].cast(SPARK_TYPES[c.type]).alias(c.name) for c in spec.columns]
                )
                if table in self.existing_tables():
                    old = self.spark.read.parquet(str(self._path(table)))
                    key = replace_keys.get(table)
                    if key:
                        old = old.join(new.select(key), on=key, how="left_anti")
                    new = old.select(*spec.column_names).unionByName(new)
                staging = self.warehouse / f".{table}.loading-{uuid.uuid4().hex}"
                new.write.mode("error").parquet(str(staging))
            finally:
                shutil.rmtree(incoming, ignore_errors=True)
            self._swap_in(table, staging)
            written += data.num_rows
        return written

    @staticmethod
    def _null(logical: str) -> Any:
        from pyspark.sql import functions as F

        return F.lit(None).cast(SPARK_TYPES[logical])

    def register_views(self, tables: Sequence[str] | None = None) -> None:
        """Expose the warehouse's Parquet tables as temporary views named like the CDM tables."""
        self.connect()
        for name in tables or sorted(self.existing_tables()):
            if name not in self._registered:
                self.spark.read.parquet(str(self._path(name))).createOrReplaceTempView(name)
                self._registered.add(name)

    def execute(self, sql: str) -> None:
        self.register_views()
        self.spark.sql(sql)  # DDL and CACHE TABLE run eagerly

    def materialise(self, name: str, sql: str) -> None:
        """The rows of query `sql`, computed now and kept by the executors (a local
        checkpoint), as the session's temporary view `name` (``DROP VIEW`` ends it)."""
        self.register_views()
        self.spark.sql(sql).localCheckpoint(eager=True).createOrReplaceTempView(name)

    def query_arrow(self, sql: str) -> Any:
        self.register_views()
        return self.spark.sql(sql).toArrow()

    def query(self, sql: str, params: Sequence[Any] = ()) -> QueryResult:
        self.register_views()
        df = self.spark.sql(sql, args=list(params)) if params else self.spark.sql(sql)
        rows = [tuple(r) for r in df.collect()]
        return QueryResult(tuple(df.columns), rows)
