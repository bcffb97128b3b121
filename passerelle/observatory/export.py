"""CSV export of the observatory's tables (UTF-8, comma-separated, a header row)."""

from __future__ import annotations

import csv
import io

from passerelle.observatory.stats import Table

# A cell a spreadsheet would read as a formula is prefixed with a quote (CSV injection).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(v: object) -> object:
    if isinstance(v, str) and v.startswith(FORMULA_START):
        return "'" + v
    return "" if v is None else v


def to_csv(table: Table) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(table.columns)
    for row in table.rows:
        w.writerow([_cell(v) for v in row])
    return buf.getvalue()
