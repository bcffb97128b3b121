"""StudyResult <-> JSON, keeping what `to_dict` leaves out: column kinds and types, cell flags."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from passerelle.query.result import AggregateTable, ResultColumn, StudyResult


def _cell(v: Any) -> Any:
    if isinstance(v, Decimal):
        return float(v)
    if isinstance(v, (dt.date, dt.datetime)):
        return v.isoformat()
    if isinstance(v, float) and v != v:  # NaN is not JSON
        return None
    return v


def table_to_wire(t: AggregateTable) -> dict[str, Any]:
    return {
        "name": t.name,
        "analysis": t.analysis,
        "columns": [{"name": c.name, "kind": c.kind, "type": c.type} for c in t.columns],
        "rows": [[_cell(v) for v in r] for r in t.rows],
        "flags": [[i, col, sorted(f)] for (i, col), f in sorted(t.flags.items()) if f],
    }


def result_to_wire(r: StudyResult) -> dict[str, Any]:
    return {
        "study": r.study,
        "engine": r.engine,
        "policy": r.policy,
        "tables": [table_to_wire(t) for t in r.tables],
    }


def table_from_wire(d: dict[str, Any]) -> AggregateTable:
    columns = tuple(
        ResultColumn(c["name"], c["kind"], c.get("type", "integer")) for c in d["columns"]
    )
    flags = {(int(i), str(col)): frozenset(f) for i, col, f in d.get("flags", [])}
    return AggregateTable(d["name"], d["analysis"], columns, [tuple(r) for r in d["rows"]], flags)


def result_from_wire(d: dict[str, Any]) -> StudyResult:
    return StudyResult(
        d["study"], d["engine"], [table_from_wire(t) for t in d["tables"]], policy=d.get("policy")
    )
