"""Disclosure control of a study result, applied inside the node before anything leaves.

`protect(result, policy)` returns a new StudyResult whose cells are safe to release:

1. primary suppression: counts 1 .. min_cell-1 are withheld;
2. complementary suppression, to a fixpoint, over *lines* (cells that add up to a known total):
   - within a table, for each count column and each dimension, the cells that differ only in
     that dimension (their total is assumed published: it almost always is, by another
     analysis of the same cohort);
   - across the analyses of the study, a table whose dimensions are a subset of another's with
     a count column of the same name is a margin of it (`persons` overall vs `persons` by sex);
   - sequences (attrition, survival): a step whose difference from the last released step is
     1 .. min_cell-1 is withheld, so consecutive rows cannot be subtracted;
3. statistics: every statistic and person-time of a row with a withheld count is withheld;
   distributions need n >= distribution.min_n, a percentile needs that many persons on each
   side, exact min/max need `allow_min_max`, means and sums obey the (n, k) dominance rule;
   released statistics keep `statistic_digits` significant digits;
4. rounding: released counts go to the nearest multiple of `rounding`, and a released total
   whose cells are all released is recomputed as the sum of its rounded cells.

Representation of a withheld cell: the value is None, and its flags hold "suppressed" plus
"primary" with "below:<min_cell>" (displayed "<11") or "secondary" (displayed "*"). Every
released count carries "rounded" (when the base is > 1); DP releases carry "noisy".
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from passerelle.privacy import rules
from passerelle.privacy.policy import NO_POLICY_LABEL, Policy
from passerelle.query.result import AggregateTable, StudyResult

Cell = tuple[int, int, str]  # (table index, row index, column name)

SEQUENCE_ANALYSES = frozenset({"attrition", "survival"})
#: The dimensions that order a sequence (the others group it) and its cumulative counts.
SEQUENCE_DIMENSIONS = frozenset({"step", "criterion", "time_days"})
CUMULATIVE_COLUMNS = frozenset({"persons", "at_risk"})
#: (whole, part) count columns of one row: whole - part is an implicit cell.
NESTED_COUNTS = (("persons", "outcome_persons"),)
#: Statistics recomputed from the released counts: name -> (numerator, denominator, factor).
DERIVED_STATISTICS = {"proportion": ("outcome_persons", "persons", 1.0)}
SECONDARY_DISPLAY = "*"


@dataclass
class _Line:
    cells: list[Cell]
    total: Cell | None  # None: the total is implied (assumed derivable), not a cell


@dataclass
class _State:
    tables: list[AggregateTable]
    values: list[list[list[Any]]]  # mutable copies of the rows
    flags: dict[Cell, set[str]] = field(default_factory=lambda: defaultdict(set))

    def col(self, ti: int, name: str) -> int:
        return self.tables[ti].column_names.index(name)

    def value(self, cell: Cell) -> Any:
        ti, ri, name = cell
        return self.values[ti][ri][self.col(ti, name)]

    def set(self, cell: Cell, value: Any) -> None:
        ti, ri, name = cell
        self.values[ti][ri][self.col(ti, name)] = value

    def suppressed(self, cell: Cell) -> bool:
        return rules.SUPPRESSED in self.flags.get(cell, ())

    def suppress(self, cell: Cell, *reason: str) -> bool:
        if self.suppressed(cell):
            return False
        self.flags[cell].update((rules.SUPPRESSED, *reason))
        return True


def _columns(table: AggregateTable, kind: str) -> list[str]:
    return [c.name for c in table.columns if c.kind == kind]


def _dims(table: AggregateTable) -> list[str]:
    return _columns(table, "dimension")


def _count_cells(state: _State) -> Iterable[Cell]:
    for ti, table in enumerate(state.tables):
        for name in _columns(table, "count"):
            for ri in range(len(table.rows)):
                yield (ti, ri, name)


def _lines(state: _State) -> list[_Line]:
    lines: list[_Line] = []
    tables = state.tables
    for ti, table in enumerate(tables):
        if table.analysis in SEQUENCE_ANALYSES:
            continue
        dims = _dims(table)
        for name in _columns(table, "count"):
            for d in dims:
                others = [state.col(ti, o) for o in dims if o != d]
                groups: dict[tuple, list[Cell]] = defaultdict(list)
                for ri, row in enumerate(state.values[ti]):
                    groups[tuple(row[i] for i in others)].append((ti, ri, name))
                lines.extend(_Line(cells, None) for cells in groups.values())
    # Margins across the analyses of the study.
    for bi, margin in enumerate(tables):
        if margin.analysis in SEQUENCE_ANALYSES:
            continue
        bdims = set(_dims(margin))
        for ai, fine in enumerate(tables):
            if ai == bi or fine.analysis in SEQUENCE_ANALYSES:
                continue
            adims = _dims(fine)
            if not bdims < set(adims):
                continue
            key_cols = sorted(bdims)
            for name in set(_columns(margin, "count")) & set(_columns(fine, "count")):
                by_key: dict[tuple, list[Cell]] = defaultdict(list)
                for ri, row in enumerate(state.values[ai]):
                    by_key[tuple(row[state.col(ai, k)] for k in key_cols)].append((ai, ri, name))
                for ri, row in enumerate(state.values[bi]):
                    key = tuple(row[state.col(bi, k)] for k in key_cols)
                    lines.append(_Line(by_key.get(key, []), (bi, ri, name)))
    return lines


def _smallest_released(state: _State, cells: list[Cell]) -> Cell | None:
    candidates = [
        c for c in cells if not state.suppressed(c) and isinstance(state.value(c), int | float)
    ]
    positive = [c for c in candidates if state.value(c) > 0]
    if not positive:
        return None
    return min(positive, key=lambda c: (state.value(c), c))


def _complementary(state: _State, lines: list[_Line], min_cell: int) -> None:
    changed = True
    while changed:
        changed = False
        for line in lines:
            hidden = sum(state.suppressed(c) for c in line.cells)
            total_hidden = line.total is not None and state.suppressed(line.total)
            if not total_hidden and hidden == 1:
                partner = _smallest_released(state, line.cells)
                if partner is None and line.total is not None:
                    partner = line.total
                if partner is not None:
                    changed |= state.suppress(partner, rules.SECONDARY)
            elif total_hidden and hidden == 0 and line.cells:
                partner = _smallest_released(state, line.cells)
                if partner is not None:
                    changed |= state.suppress(partner, rules.SECONDARY)
        changed |= _sequences(state, min_cell)
        changed |= _nested(state, min_cell)


def _sequences(state: _State, min_cell: int) -> bool:
    """Cumulative columns of attrition/survival tables, step by step within each group."""
    changed = False
    for ti, table in enumerate(state.tables):
        if table.analysis not in SEQUENCE_ANALYSES:
            continue
        dims = _dims(table)
        order = [state.col(ti, d) for d in dims if d in SEQUENCE_DIMENSIONS]
        group = [state.col(ti, d) for d in dims if d not in SEQUENCE_DIMENSIONS]
        groups: dict[tuple, list[int]] = defaultdict(list)
        for ri, row in enumerate(state.values[ti]):
            groups[tuple(row[i] for i in group)].append(ri)
        for rows in groups.values():
            rows.sort(key=lambda ri: tuple(_sortable(state.values[ti][ri][i]) for i in order))
            for name in _columns(table, "count"):
                if name not in CUMULATIVE_COLUMNS:
                    continue
                last: Any = None
                for ri in rows:
                    cell = (ti, ri, name)
                    value = state.value(cell)
                    if state.suppressed(cell) or value is None:
                        continue
                    if last is not None and rules.below_threshold(abs(last - value), min_cell):
                        changed |= state.suppress(cell, rules.SECONDARY)
                        continue
                    last = value
    return changed


def _sortable(v: Any) -> tuple[bool, Any]:
    return (v is None, v if isinstance(v, int | float) else str(v))


def _nested(state: _State, min_cell: int) -> bool:
    """Outcome tables: persons without the outcome (persons - outcome_persons) is a cell too."""
    changed = False
    for ti, table in enumerate(state.tables):
        names = table.column_names
        for whole, part in NESTED_COUNTS:
            if whole not in names or part not in names:
                continue
            for ri in range(len(table.rows)):
                w, p = (ti, ri, whole), (ti, ri, part)
                if state.suppressed(w) or state.suppressed(p):
                    continue
                wv, pv = state.value(w), state.value(p)
                numbers = isinstance(wv, int | float) and isinstance(pv, int | float)
                if numbers and rules.below_threshold(wv - pv, min_cell):
                    changed |= state.suppress(p, rules.SECONDARY)
    return changed


def _statistics(state: _State, policy: Policy, dp: bool) -> None:
    for ti, table in enumerate(state.tables):
        counts = _columns(table, "count")
        stats = _columns(table, "statistic") + _columns(table, "person_time")
        for ri, row in enumerate(state.values[ti]):
            row_hidden = any(state.suppressed((ti, ri, c)) for c in counts)
            n = _distribution_n(state, ti, ri, counts)
            raw = {c: row[state.col(ti, c)] for c in stats}
            for name in stats:
                cell = (ti, ri, name)
                if dp:
                    state.suppress(cell, rules.SECONDARY, "dp_counts_only")
                elif row_hidden or not _distribution_ok(table, name, n, raw, policy):
                    state.suppress(cell, rules.SECONDARY)
            for name in stats:
                cell = (ti, ri, name)
                if state.suppressed(cell):
                    state.set(cell, None)
                    continue
                value = state.value(cell)
                limited = rules.limit_digits(value, policy.statistic_digits)
                if limited != value:
                    state.set(cell, limited)
                    state.flags[cell].add(rules.LIMITED)


def _distribution_n(state: _State, ti: int, ri: int, counts: list[str]) -> int | None:
    for name in ("n", "persons", "count", *counts):
        if name in counts:
            value = state.value((ti, ri, name))
            return None if value is None else int(value)
    return None


def _distribution_ok(
    table: AggregateTable, name: str, n: int | None, raw: dict[str, Any], policy: Policy
) -> bool:
    if table.analysis != "distribution":
        return True
    dist = policy.distribution
    if not rules.distribution_releasable(n, dist.min_n):
        return False
    assert n is not None
    if rules.is_extreme(name):
        return dist.allow_min_max
    q = rules.percentile_of(name)
    if q is not None:
        return rules.percentile_releasable(n, q, dist.percentile_min_each_side)
    lowered = name.lower()
    if lowered in rules.MEAN_NAMES or lowered in rules.SUM_NAMES:
        mean = raw.get("mean", raw.get("avg"))
        if mean is None and lowered in rules.SUM_NAMES and raw.get(name) is not None:
            mean = raw[name] / n if n else None
        maximum = raw.get("max", raw.get("maximum"))
        if mean is not None and maximum is not None:
            dom = policy.dominance
            if rules.dominance_violated_bound(n, mean, maximum, dom.n, dom.k):
                return False
    return True


def _round_and_recompute(state: _State, lines: list[_Line], policy: Policy) -> None:
    base = policy.rounding
    for cell in _count_cells(state):
        value = state.value(cell)
        if state.suppressed(cell):
            if rules.SECONDARY not in state.flags[cell]:
                state.flags[cell].update((rules.PRIMARY, f"below:{policy.min_cell}"))
            state.set(cell, None)
        elif isinstance(value, int | float) and base > 1:
            state.set(cell, rules.round_to_base(int(value), base))
            state.flags[cell].add(rules.ROUNDED)
    # Totals recomputed from their rounded cells: nearest complete line, finest totals first.
    best: dict[Cell, _Line] = {}
    for line in lines:
        if line.total is None or not line.cells or state.suppressed(line.total):
            continue
        if any(state.suppressed(c) or state.value(c) is None for c in line.cells):
            continue
        current = best.get(line.total)
        if current is None or _dim_count(state, line.cells[0]) < _dim_count(
            state, current.cells[0]
        ):
            best[line.total] = line
    for total in sorted(best, key=lambda c: -_dim_count(state, c)):
        cells = best[total].cells
        state.set(total, sum(int(state.value(c)) for c in cells))
        state.flags[total].update((rules.ROUNDED, rules.RECOMPUTED))
    _derived(state, policy)


def _derived(state: _State, policy: Policy) -> None:
    """Proportions recomputed from the released (rounded) counts, so they give none back."""
    for ti, table in enumerate(state.tables):
        names = table.column_names
        for stat, (num, den, factor) in DERIVED_STATISTICS.items():
            if stat not in names or num not in names or den not in names:
                continue
            for ri in range(len(table.rows)):
                cell = (ti, ri, stat)
                if state.suppressed(cell):
                    continue
                n, d = state.value((ti, ri, num)), state.value((ti, ri, den))
                value = None if n is None or not d else factor * n / d
                state.set(cell, rules.limit_digits(value, policy.statistic_digits))
                state.flags[cell].add(rules.RECOMPUTED)


def _dim_count(state: _State, cell: Cell) -> int:
    return len(_dims(state.tables[cell[0]]))


#: A source of calibrated noise for DP mode: (true count, sensitivity) -> noisy count.
NoiseFn = Callable[[int, int], int]


def protect(
    result: StudyResult,
    policy: Policy | None,
    *,
    noise: NoiseFn | None = None,
    entries_columns: frozenset[str] = frozenset({"entries"}),
) -> StudyResult:
    """A copy of `result` that is safe to release under `policy` (see the module docstring).

    `policy=None` is the local steward's `--policy none`: nothing is changed and the result says
    so. `noise` (DP mode) replaces every count by a noisy one before the other rules, which are
    then pure post-processing; statistics are withheld in DP mode.
    """
    # No deep copy: rows are tuples of scalars and columns frozen, so the protected result is
    # built from new row lists and flag dicts (the input result is read, never changed).
    tables = result.tables
    if policy is None:
        copies = [
            AggregateTable(t.name, t.analysis, t.columns, list(t.rows), dict(t.flags))
            for t in tables
        ]
        return StudyResult(result.study, result.engine, copies, policy=NO_POLICY_LABEL)
    state = _State(list(tables), [[list(r) for r in t.rows] for t in tables])
    for ti, t in enumerate(tables):  # flags of an already protected result are kept
        for (ri, name), f in t.flags.items():
            state.flags[(ti, ri, name)].update(f)
    for cell in list(_count_cells(state)):
        value = state.value(cell)
        if noise is not None and isinstance(value, int | float):
            sensitivity = policy.dp.max_entries_per_person if cell[2] in entries_columns else 1
            if tables[cell[0]].analysis in SEQUENCE_ANALYSES:  # a person is in every step
                sensitivity *= max(1, len(tables[cell[0]].rows))
            state.set(cell, max(0, int(noise(int(value), sensitivity))))
            state.flags[cell].add(rules.NOISY)
        released_before = rules.ROUNDED in state.flags.get(cell, ())  # checked before rounding
        if not released_before and rules.below_threshold(state.value(cell), policy.min_cell):
            state.suppress(cell, rules.PRIMARY)
    lines = _lines(state)
    if policy.complementary_suppression:
        _complementary(state, lines, policy.min_cell)
    _statistics(state, policy, dp=noise is not None)
    _round_and_recompute(state, lines, policy)
    flags: list[dict[tuple[int, str], frozenset[str]]] = [{} for _ in tables]
    for (ti, ri, name), cell_flags in state.flags.items():
        if cell_flags:
            flags[ti][(ri, name)] = frozenset(cell_flags)
    out = [
        AggregateTable(
            table.name,
            table.analysis,
            table.columns,
            [tuple(r) for r in state.values[ti]],
            flags[ti],
        )
        for ti, table in enumerate(tables)
    ]
    return StudyResult(result.study, result.engine, out, policy=policy.label)


def display(table: AggregateTable, row: int, column: str) -> str:
    """How a released cell is shown: the value, "<11" for a primary-suppressed count, "*"."""
    flags = table.flags.get((row, column), frozenset())
    if rules.SUPPRESSED in flags:
        for f in flags:
            if f.startswith("below:"):
                return f"<{f.split(':', 1)[1]}"
        return SECONDARY_DISPLAY
    value = table.rows[row][table.column_names.index(column)]
    return "" if value is None else str(value)


def released_dict(result: StudyResult) -> dict[str, Any]:
    """JSON-ready form with display values and flags, rows in the engine's order."""
    analyses = []
    for t in result.tables:
        analyses.append(
            {
                "name": t.name,
                "analysis": t.analysis,
                "columns": list(t.column_names),
                "column_kinds": {c.name: c.kind for c in t.columns},
                "rows": [list(r) for r in t.rows],
                "display": [
                    [display(t, ri, c) for c in t.column_names] for ri in range(len(t.rows))
                ],
                "flags": [
                    {c: sorted(t.flags[(ri, c)]) for c in t.column_names if (ri, c) in t.flags}
                    for ri in range(len(t.rows))
                ],
            }
        )
    return {
        "study": result.study,
        "engine": result.engine,
        "policy": result.policy,
        "analyses": analyses,
    }
