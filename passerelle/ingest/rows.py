"""Rows on their way to the store: one buffer per CDM table, keyed by the row's id (the last
version of a row in a batch wins), turned into Arrow tables typed by the CDM declaration."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from passerelle.cdm.schema import TABLES_BY_NAME

ARROW_TYPES = {
    "INTEGER": pa.int32(),
    "BIGINT": pa.int64(),
    "DOUBLE": pa.float64(),
    "DATE": pa.date32(),
    "TIMESTAMP": pa.timestamp("us"),
    "VARCHAR": pa.string(),
}

# The column identifying a row of each table the ingest writes (death has no declared key).
ROW_KEYS = {
    name: (t.primary_key[0] if t.primary_key else "person_id")
    for name, t in TABLES_BY_NAME.items()
    if not t.vocabulary
}


def arrow_schema(table: str) -> pa.Schema:
    return pa.schema(
        [
            pa.field(c.name, ARROW_TYPES[c.type], nullable=not c.required)
            for c in TABLES_BY_NAME[table].columns
        ]
    )


_SCHEMAS: dict[str, pa.Schema] = {}
_SIZES: dict[str, list[tuple[str, int]]] = {
    name: [(c.name, c.size) for c in t.columns if c.type == "VARCHAR" and c.size]
    for name, t in TABLES_BY_NAME.items()
}


def to_arrow(table: str, rows: list[dict[str, Any]]) -> pa.Table:
    """Arrow table of the columns that at least one row sets (the stores fill the others
    with NULL), typed by the CDM declaration; text longer than its column is cut."""
    schema = _SCHEMAS.get(table)
    if schema is None:
        schema = _SCHEMAS[table] = arrow_schema(table)
    present = set().union(*rows) if rows else set()
    fields = [f for f in schema if f.name in present]
    # One conversion of the dicts as a struct array, done by Arrow in C++ (an absent key is
    # NULL, a key outside the schema is ignored), instead of a Python list per column.
    data = pa.Table.from_struct_array(pa.array(rows, type=pa.struct(fields)))
    for col, size in _SIZES[table]:
        if col in present:
            values = data.column(col)
            longest = pc.max(pc.utf8_length(values)).as_py()
            if longest is not None and longest > size:
                cut = pc.utf8_slice_codeunits(values, 0, size)  # code points, as str[:size]
                data = data.set_column(data.schema.get_field_index(col), data.field(col), cut)
    return data


class Batch:
    """Rows of every table for one atomic commit."""

    def __init__(self) -> None:
        self.tables: dict[str, dict[int, dict[str, Any]]] = {}
        self.resources = 0

    def add(self, table: str, row: dict[str, Any]) -> None:
        self.tables.setdefault(table, {})[row[ROW_KEYS[table]]] = row

    def __len__(self) -> int:
        return sum(len(v) for v in self.tables.values())

    def to_arrow(self) -> dict[str, pa.Table]:
        return {t: to_arrow(t, list(rows.values())) for t, rows in self.tables.items() if rows}

    def counts(self) -> Counter:
        return Counter({t: len(rows) for t, rows in self.tables.items()})
