"""Merging released results: sums of released cells, bounds for suppressed ones, sufficient
statistics for distributions, combined DP noise."""

from __future__ import annotations

import math

from passerelle.federation.merge import merge_tables
from passerelle.query.result import AggregateTable, ResultColumn

COLS = (ResultColumn("sex", "dimension"), ResultColumn("persons", "count"))


def table(rows, flags=None, name="by_sex", analysis="count", columns=COLS):
    return AggregateTable(name, analysis, columns, rows, flags or {})


def site(name, t, min_cell=11, rounding=1, sd=None):
    return (name, [t], min_cell, rounding, sd)


def test_released_cells_are_summed():
    a = table([(8507, 40), (8532, 50)])
    b = table([(8507, 12), (8532, 30)])
    [m] = merge_tables([site("a", a), site("b", b)])
    assert m.rows == [[8507, 52], [8532, 80]] and m.cells == [] and m.sites == ["a", "b"]


def test_a_suppressed_cell_is_a_bound_never_a_value():
    a = table([(8507, 40), (8532, None)], {(1, "persons"): frozenset({"suppressed"})})
    b = table([(8507, 12), (8532, 30)])
    c = table([(8507, 20), (8532, "<6")], {(1, "persons"): frozenset({"suppressed"})})
    [m] = merge_tables([site("a", a), site("b", b), site("c", c, min_cell=6)])
    assert m.rows == [[8507, 72], [8532, None]]
    [cell] = m.cells
    assert cell == {
        "row": 1,
        "column": "persons",
        "value": None,
        "at_least": 30,
        "at_most": 30 + 10 + 5,
        "suppressed_at": ["a", "c"],
    }


def test_missing_rows_count_as_empty_and_rounding_is_stated():
    a = table([(8507, 40)], {(0, "persons"): frozenset({"rounded"})})
    b = table(
        [(8507, 15), (8532, 25)],
        {(0, "persons"): frozenset({"rounded"}), (1, "persons"): frozenset({"rounded"})},
    )
    [m] = merge_tables([site("a", a, rounding=5), site("b", b, rounding=5)])
    assert m.rows == [[8507, 55], [8532, 25]]
    assert {c["row"]: c["rounding_error"] for c in m.cells} == {0: 5.0, 1: 2.5}


def test_noisy_cells_state_the_combined_noise():
    f = {(0, "persons"): frozenset({"noisy"})}
    [m] = merge_tables(
        [site("a", table([(0, 100)], f), sd=3.0), site("b", table([(0, 50)], f), sd=4.0)]
    )
    assert m.rows == [[0, 150]] and m.cells[0]["sd"] == 5.0 and m.cells[0]["noisy"]


def test_distributions_merge_from_sufficient_statistics():
    cols = (
        ResultColumn("n", "count"),
        ResultColumn("mean", "statistic", "number"),
        ResultColumn("sd", "statistic", "number"),
        ResultColumn("median", "statistic", "number"),
    )
    xs, ys = [1.0, 2.0, 3.0, 4.0], [10.0, 12.0, 14.0]

    def stats(v):
        n, mean = len(v), sum(v) / len(v)
        return (n, mean, math.sqrt(sum((x - mean) ** 2 for x in v) / (n - 1)), sorted(v)[n // 2])

    a = table([stats(xs)], name="age", analysis="distribution", columns=cols)
    b = table([stats(ys)], name="age", analysis="distribution", columns=cols)
    [m] = merge_tables([site("a", a), site("b", b)])
    allv = xs + ys
    n, mean, sd = stats(allv)[:3]
    assert m.rows[0][0] == n and math.isclose(m.rows[0][1], mean) and math.isclose(m.rows[0][2], sd)
    assert [c["name"] for c in m.columns] == ["n", "mean", "sd"]
    # a site that withheld its statistics: no merged value
    w = table(
        [(None, None, None, None)],
        {(0, "n"): frozenset({"suppressed"})},
        name="age",
        analysis="distribution",
        columns=cols,
    )
    [m2] = merge_tables([site("a", a), site("w", w)])
    assert m2.rows == [[None, None, None]] and m2.cells[0]["withheld_at"] == ["w"]


def test_differing_layouts_are_not_merged():
    other = table(
        [(1, 2)], columns=(ResultColumn("age_band", "dimension"), ResultColumn("persons", "count"))
    )
    [m] = merge_tables([site("a", table([(8507, 40)])), site("b", other)])
    assert m.rows == [] and "columns differ at b" in m.notes[0]


def test_a_complementary_suppression_leaves_the_upper_bound_open():
    sec = {(0, "persons"): frozenset({"suppressed", "secondary"})}
    prim = {(0, "persons"): frozenset({"suppressed", "primary", "below:6"})}
    [m] = merge_tables([site("a", table([(1, None)], sec)), site("b", table([(1, 40)]))])
    assert m.cells[0]["at_least"] == 40 and m.cells[0]["at_most"] is None
    [m] = merge_tables([site("a", table([(1, None)], prim)), site("b", table([(1, 40)]))])
    assert m.cells[0]["at_most"] == 45


def test_outcome_proportions_come_from_merged_counts_and_survival_is_not_merged():
    cols = (
        ResultColumn("persons", "count"),
        ResultColumn("outcome_persons", "count"),
        ResultColumn("proportion", "statistic", "number"),
    )
    a = table([(100, 20, 0.2)], name="o", analysis="outcome", columns=cols)
    b = table([(50, 20, 0.4)], name="o", analysis="outcome", columns=cols)
    [m] = merge_tables([site("a", a), site("b", b)])
    assert m.rows == [[150, 40, 40 / 150]]
    s_cols = (
        ResultColumn("time_days", "dimension"),
        ResultColumn("at_risk", "count"),
        ResultColumn("events", "count"),
        ResultColumn("censored", "count"),
        ResultColumn("survival", "statistic", "number"),
    )
    km = table([(10, 50, 1, 0, 0.98)], name="km", analysis="survival", columns=s_cols)
    [m] = merge_tables([site("a", km), site("b", km)])
    assert m.rows == [] and "per site" in m.notes[0]
