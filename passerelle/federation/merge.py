"""Merging the released results of several sites, never un-suppressing anything.

Rules (docs/federation.md explains them with examples):

- A count cell is summed over the sites that released it. When some site suppressed it, the
  merged cell has no value, only bounds: at least the sum of the released values, at most that
  plus (min_cell - 1) for each site that suppressed it as below its threshold (its own policy's
  min_cell); a complementary ("secondary") suppression may hide any size, so the upper bound is
  then open (null). A suppressed cell is never reconstructed, neither from a total nor from
  the other sites.
- A row a site did not return counts as 0 at that site (engines return no row for an empty
  cell; the privacy layer flags cells rather than dropping rows).
- Rounded cells add at most rounding/2 each: stated as `rounding_error`.
- Noisy (DP) cells are summed; independent noise adds in variance, so the stated standard
  deviation of a merged cell is sqrt(sum of the sites' per-cell variances).
- Distributions are merged from sufficient statistics when every site released them:
  (n, sum, sum of squares), or (n, mean, sd) which determine them. Percentiles, min and max are
  not mergeable: they stay per site.
- An outcome's proportion is recomputed from the merged persons and outcome_persons when
  both are released; other statistics (rates, survival) stay per site. Kaplan-Meier tables
  are not merged: each site reports at-risk counts only at its own event times.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from passerelle.query.result import AggregateTable

SUPPRESSED = "suppressed"
ROUNDED = "rounded"
NOISY = "noisy"
SECONDARY = "secondary"  # complementary suppression (passerelle.privacy.rules)

# Tables whose rows cannot be summed across sites.
NOT_MERGED = {
    "survival": "not merged: a site reports at-risk counts only at its own event times, so "
    "Kaplan-Meier curves stay per site",
}

N_NAMES = ("n", "count", "persons")
SUM_NAMES = ("sum", "total")
SUMSQ_NAMES = ("sum_sq", "sum_squares", "sumsq", "sum_of_squares")
MEAN_NAMES = ("mean", "avg", "average")
SD_NAMES = ("sd", "stddev", "std")


@dataclass
class SiteTable:
    site: str
    table: AggregateTable
    min_cell: int
    rounding: int
    per_cell_sd: float | None = None  # DP noise sd per count cell, when noisy


@dataclass
class MergedTable:
    name: str
    analysis: str
    columns: list[dict[str, str]]
    rows: list[list[Any]] = field(default_factory=list)
    cells: list[dict[str, Any]] = field(default_factory=list)
    sites: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "analysis": self.analysis,
            "columns": self.columns,
            "rows": self.rows,
            "cells": self.cells,
            "sites": self.sites,
            "notes": self.notes,
        }


def _flags(t: AggregateTable, i: int, col: str) -> frozenset[str]:
    return t.flags.get((i, col), frozenset())


def _is_suppressed(t: AggregateTable, i: int, col: str, value: Any) -> bool:
    return SUPPRESSED in _flags(t, i, col) or not isinstance(value, (int, float))


def _suppressed_bound(flags: frozenset[str], min_cell: int) -> int | None:
    """The most a suppressed cell can hold: below the site's threshold for a primary
    suppression; unbounded (None) for a complementary one, which may be any size."""
    if SECONDARY in flags:
        return None
    for f in flags:
        if f.startswith("below:"):
            try:
                return max(int(f.split(":", 1)[1]) - 1, 0)
            except ValueError:
                break
    return max(min_cell - 1, 0)


def _key_sort(key: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple((v is None, str(type(v)), v) for v in key)


def _pick(names: tuple[str, ...], have: dict[str, int]) -> str | None:
    return next((n for n in names if n in have), None)


def merge_table(parts: list[SiteTable]) -> MergedTable:
    first = parts[0].table
    layout = [(c.name, c.kind) for c in first.columns]
    out = MergedTable(
        first.name,
        first.analysis,
        [{"name": c.name, "kind": c.kind, "type": c.type} for c in first.columns],
        sites=[p.site for p in parts],
    )
    differing = [p.site for p in parts if [(c.name, c.kind) for c in p.table.columns] != layout]
    if differing:
        out.notes.append(f"not merged: columns differ at {', '.join(differing)}")
        return out
    index = {name: j for j, (name, _) in enumerate(layout)}
    if first.analysis in NOT_MERGED:
        out.notes.append(NOT_MERGED[first.analysis])
        return out
    if first.analysis == "distribution" or _pick(SUMSQ_NAMES, index):
        return _merge_distribution(parts, out, index)
    merged = _merge_counts(parts, out, index)
    if first.analysis == "outcome":
        _proportions(merged, index)
    return merged


def _proportions(out: MergedTable, index: dict[str, int]) -> None:
    """An outcome's proportion = outcome_persons / persons, from the merged counts when both
    are known (never from bounds); other statistics of the table stay per site."""
    p, o, q = index.get("persons"), index.get("outcome_persons"), index.get("proportion")
    if p is None or o is None or q is None:
        return
    for r, row in enumerate(out.rows):
        if row[p] is not None and row[o] is not None and row[p] > 0:
            row[q] = row[o] / row[p]
            out.cells.append({"row": r, "column": "proportion", "value": row[q], "derived": True})
    out.notes.append("proportion recomputed from the merged counts where both are released")


def _rows_by_key(t: AggregateTable, dims: list[int]) -> dict[tuple[Any, ...], int]:
    return {tuple(row[j] for j in dims): i for i, row in enumerate(t.rows)}


def _merge_counts(parts: list[SiteTable], out: MergedTable, index: dict[str, int]) -> MergedTable:
    cols = [(c["name"], c["kind"]) for c in out.columns]
    dims = [index[n] for n, k in cols if k == "dimension"]
    by_site = [_rows_by_key(p.table, dims) for p in parts]
    keys = sorted({k for m in by_site for k in m}, key=_key_sort)
    additive = {"count", "person_time"}
    if any(k == "statistic" for _, k in cols):
        out.notes.append("statistic columns are not merged; see each site's result")
    for r, key in enumerate(keys):
        row: list[Any] = [None] * len(cols)
        for d, j in enumerate(dims):
            row[j] = key[d]
        for j, (name, kind) in enumerate(cols):
            if kind not in additive:
                continue
            released = 0.0
            suppressed_at: list[str] = []
            rounded_err = 0.0
            noise_var = 0.0
            noisy = False
            upper_extra: int | None = 0
            for p, rows in zip(parts, by_site, strict=True):
                i = rows.get(key)
                if i is None:
                    continue  # no row: an empty cell at that site
                value = p.table.rows[i][j]
                if _is_suppressed(p.table, i, name, value):
                    suppressed_at.append(p.site)
                    bound = _suppressed_bound(_flags(p.table, i, name), p.min_cell)
                    upper_extra = (
                        None if bound is None or upper_extra is None else upper_extra + bound
                    )
                    continue
                released += value
                flags = _flags(p.table, i, name)
                if ROUNDED in flags and p.rounding > 1:
                    rounded_err += p.rounding / 2
                if NOISY in flags:
                    noisy = True
                    noise_var += (p.per_cell_sd or 0.0) ** 2
            total: int | float = int(released) if float(released).is_integer() else released
            row[j] = None if suppressed_at else total
            if suppressed_at or rounded_err or noisy:
                cell: dict[str, Any] = {"row": r, "column": name, "value": row[j]}
                if suppressed_at:
                    at_most = None if upper_extra is None else total + upper_extra
                    cell.update(at_least=total, at_most=at_most, suppressed_at=suppressed_at)
                if rounded_err:
                    cell["rounding_error"] = rounded_err
                if noisy:
                    cell["noisy"] = True
                    cell["sd"] = math.sqrt(noise_var)
                out.cells.append(cell)
        out.rows.append(row)
    return out


def _site_stats(p: SiteTable, i: int, index: dict[str, int]) -> tuple[float, float, float] | None:
    """(n, sum, sum of squares) of one released row, or None when a site withheld them."""
    row, t = p.table.rows[i], p.table

    def get(names: tuple[str, ...]) -> float | None:
        name = _pick(names, index)
        if name is None:
            return None
        v = row[index[name]]
        return None if _is_suppressed(t, i, name, v) else float(v)

    n = get(N_NAMES)
    if n is None:
        return None
    s, ss = get(SUM_NAMES), get(SUMSQ_NAMES)
    if s is not None and ss is not None:
        return n, s, ss
    mean, sd = get(MEAN_NAMES), get(SD_NAMES)
    if mean is not None and sd is not None:
        return n, mean * n, (n - 1) * sd * sd + n * mean * mean
    return None


def _merge_distribution(
    parts: list[SiteTable], out: MergedTable, index: dict[str, int]
) -> MergedTable:
    dim_names = [c["name"] for c in out.columns if c["kind"] == "dimension"]
    dims = [index[n] for n in dim_names]
    out.columns = [
        *(c for c in out.columns if c["kind"] == "dimension"),
        {"name": "n", "kind": "count", "type": "integer"},
        {"name": "mean", "kind": "statistic", "type": "number"},
        {"name": "sd", "kind": "statistic", "type": "number"},
    ]
    out.notes.append("merged from sufficient statistics; percentiles, min and max stay per site")
    by_site = [_rows_by_key(p.table, dims) for p in parts]
    keys = sorted({k for m in by_site for k in m}, key=_key_sort)
    for r, key in enumerate(keys):
        n = s = ss = 0.0
        withheld = []
        for p, rows in zip(parts, by_site, strict=True):
            i = rows.get(key)
            if i is None:
                continue
            stats = _site_stats(p, i, index)
            if stats is None:
                withheld.append(p.site)
                continue
            n, s, ss = n + stats[0], s + stats[1], ss + stats[2]
        if withheld or n == 0:
            out.rows.append([*key, None, None, None])
            out.cells.append({"row": r, "column": "n", "value": None, "withheld_at": withheld})
            continue
        mean = s / n
        var = (ss - n * mean * mean) / (n - 1) if n > 1 else 0.0
        out.rows.append([*key, int(n) if n.is_integer() else n, mean, math.sqrt(max(var, 0.0))])
        if any(ROUNDED in f for p in parts for f in p.table.flags.values()):
            out.cells.append(
                {"row": r, "column": "n", "value": int(n), "note": "n from rounded site counts"}
            )
    return out


def merge_tables(
    sites: list[tuple[str, list[AggregateTable], int, int, float | None]],
) -> list[MergedTable]:
    """Merge per table name; `sites` holds (site, tables, min_cell, rounding, per_cell_sd)."""
    order: list[str] = []
    parts: dict[str, list[SiteTable]] = {}
    for site, tables, min_cell, rounding, sd in sites:
        for t in tables:
            if t.name not in parts:
                order.append(t.name)
                parts[t.name] = []
            parts[t.name].append(SiteTable(site, t, min_cell, rounding, sd))
    return [merge_table(parts[name]) for name in order]
