"""Disclosure control over the StudyResult contract: suppression, rounding, statistics."""

from __future__ import annotations

from passerelle.privacy import rules
from passerelle.privacy.disclosure import display, protect, released_dict
from passerelle.privacy.policy import NO_POLICY_LABEL, parse_policy
from passerelle.query.result import AggregateTable, ResultColumn, StudyResult

POLICY = parse_policy({"policy": "minimal", "min_cell": 11, "rounding": 5})
DIM, CNT, STAT = "dimension", "count", "statistic"


def table(name, analysis, cols, rows):
    return AggregateTable(name, analysis, tuple(ResultColumn(n, k) for n, k in cols), rows)


def by_sex(f, m):
    return table("by_sex", "count", [("sex", DIM), ("persons", CNT)], [(8532, f), (8507, m)])


def size(n):
    return table("size", "count", [("persons", CNT)], [(n,)])


def study(*tables):
    return StudyResult("s", "duckdb", list(tables))


def cell(result, name, row, col):
    t = result.table(name)
    return t.rows[row][t.column_names.index(col)], t.flags.get((row, col), frozenset())


def test_rules():
    assert rules.round_to_base(12, 5) == 10 and rules.round_to_base(13, 5) == 15
    assert rules.round_to_base(7, 1) == 7
    assert rules.below_threshold(1, 11) and rules.below_threshold(10, 11)
    assert not rules.below_threshold(0, 11) and not rules.below_threshold(11, 11)
    assert rules.percentile_of("p10") == 0.1 and rules.percentile_of("median") == 0.5
    assert rules.percentile_of("mean") is None
    assert rules.percentile_releasable(100, 0.1, 11) is False  # 10 below p10
    assert rules.percentile_releasable(120, 0.1, 11) is True
    assert rules.dominance_violated([90, 5, 5], 1, 0.6)
    assert not rules.dominance_violated([10] * 10, 2, 0.85)
    assert rules.limit_digits(0.123456, 3) == 0.123


def test_primary_suppression_and_display():
    out = protect(study(by_sex(3, 300)), POLICY)
    value, flags = cell(out, "by_sex", 0, "persons")
    assert value is None and {"suppressed", "primary", "below:11"} <= flags
    assert display(out.table("by_sex"), 0, "persons") == "<11"
    # the only other cell of the line must go too (its total is derivable)
    value, flags = cell(out, "by_sex", 1, "persons")
    assert value is None and "secondary" in flags
    assert display(out.table("by_sex"), 1, "persons") == "*"
    assert out.policy == POLICY.label


def test_rounding_and_recomputed_total():
    out = protect(study(by_sex(237, 242), size(479)), POLICY)
    assert cell(out, "by_sex", 0, "persons")[0] == 235
    assert cell(out, "by_sex", 1, "persons")[0] == 240
    total, flags = cell(out, "size", 0, "persons")
    assert total == 475 and {"rounded", "recomputed"} <= flags


def test_breakdown_plus_total_across_analyses():
    # one sex below the threshold, the total published by another analysis
    res = study(
        table("by_sex", "count", [("sex", DIM), ("persons", CNT)], [(8532, 5)]),
        size(5),
    )
    out = protect(res, POLICY)
    assert cell(out, "size", 0, "persons")[0] is None
    res = study(
        table("by_sex", "count", [("sex", DIM), ("persons", CNT)], [(8532, 25), (8507, 4)]),
        size(29),
    )
    out = protect(res, POLICY)
    hidden = [cell(out, "by_sex", i, "persons")[0] is None for i in range(2)]
    assert all(hidden)  # the partner cell, since the total 29 is released


def test_two_dimensional_table_lines():
    rows = [
        (s, a, n)
        for s, a, n in [(1, 20, 50), (1, 30, 4), (1, 40, 60), (2, 20, 40), (2, 30, 30), (2, 40, 70)]
    ]
    t = table("t", "count", [("sex", DIM), ("age", DIM), ("persons", CNT)], rows)
    out = protect(study(t), POLICY)
    hidden = {r[:2] for i, r in enumerate(rows) if cell(out, "t", i, "persons")[0] is None}
    # the (1,30) cell; its row partner (smallest in sex=1: 50) and column partner (2,30)=30;
    # then the lines of the partners need a second suppressed cell too
    assert (1, 30) in hidden and len(hidden) >= 4
    for sex in (1, 2):
        line = [r for r in hidden if r[0] == sex]
        assert len(line) != 1
    for age in (20, 30, 40):
        line = [r for r in hidden if r[1] == age]
        assert len(line) != 1


def test_statistics_of_suppressed_rows_and_distributions():
    cols = [
        ("sex", DIM),
        ("n", CNT),
        ("mean", STAT),
        ("min", STAT),
        ("p10", STAT),
        ("median", STAT),
        ("max", STAT),
    ]
    rows = [
        (1, 5, 50.0, 20, 25, 50, 80),
        (2, 200, 51.23456, 18, 30, 50, 90),
        (3, 60, 40, 1, 2, 40, 99),
    ]
    out = protect(study(table("age", "distribution", cols, rows)), POLICY)
    t = out.table("age")
    assert t.rows[0][2] is None  # n=5: nothing about that group
    assert t.rows[1][2] == 51.2  # limited to 3 significant digits
    assert t.rows[1][3] is None and t.rows[1][6] is None  # no exact min / max
    assert t.rows[1][4] == 30  # 20 persons below p10 of 200
    assert t.rows[2][4] is None  # 6 persons below p10 of 60


def test_dominance_rule_on_means():
    cols = [("n", CNT), ("mean", STAT), ("max", STAT)]
    t = table("cost", "distribution", cols, [(20, 10.0, 190.0)])  # one person holds 95 %
    out = protect(study(t), POLICY)
    assert out.table("cost").rows[0][1] is None


def test_attrition_differences():
    cols = [("step", DIM), ("persons", CNT)]
    t = table("attr", "attrition", cols, [(0, 479), (1, 476), (2, 300)])
    out = protect(study(t), POLICY)
    assert out.table("attr").rows[1][1] is None  # 3 persons removed by step 1
    assert out.table("attr").rows[2][1] == 300


def test_policy_none_changes_nothing_and_says_so():
    res = study(by_sex(3, 300))
    out = protect(res, None)
    assert out.policy == NO_POLICY_LABEL and "local steward" in out.policy
    assert out.table("by_sex").rows == res.table("by_sex").rows


def test_input_not_mutated_and_released_dict():
    res = study(by_sex(3, 300), size(303))
    before = [list(t.rows) for t in res.tables]
    out = protect(res, POLICY)
    assert [list(t.rows) for t in res.tables] == before
    d = released_dict(out)
    assert d["policy"] == POLICY.label
    assert d["analyses"][0]["display"][0] == ["8532", "<11"]


def test_protected_result_shares_no_mutable_part_with_the_input():
    """protect builds new tables (no deep copy): changing the released result, or the raw one
    afterwards, must not reach the other, with a policy or without one."""
    for policy in (POLICY, None):
        res = study(by_sex(3, 300), size(303))
        res.table("size").flags[(0, "persons")] = frozenset({"note"})
        out = protect(res, policy)
        released = [list(t.rows) for t in out.tables], [dict(t.flags) for t in out.tables]
        for raw_t, out_t in zip(res.tables, out.tables, strict=True):
            assert out_t is not raw_t
            assert out_t.rows is not raw_t.rows
            assert out_t.flags is not raw_t.flags
        res.table("by_sex").rows[1] = (8507, 1)
        res.table("size").flags[(0, "persons")] = frozenset({"changed"})
        assert ([list(t.rows) for t in out.tables], [dict(t.flags) for t in out.tables]) == released
        out.table("by_sex").rows.append((0, 0))
        out.table("size").flags[(0, "persons")] = frozenset({"released"})
        assert res.table("by_sex").rows == [(8532, 3), (8507, 1)]
        assert res.table("size").flags == {(0, "persons"): frozenset({"changed"})}


def test_dp_noise_marks_cells_noisy_and_hides_statistics():
    cols = [("sex", DIM), ("persons", CNT), ("proportion", STAT)]
    t = table("o", "outcome", cols, [(1, 100, 0.5), (2, 200, 0.25)])
    out = protect(study(t), POLICY, noise=lambda v, s: v + 7)
    o = out.table("o")
    assert o.rows[0][1] == 105 and "noisy" in o.flags[(0, "persons")]
    assert o.rows[0][2] is None


def test_outcome_complement_and_recomputed_proportion():
    cols = [("sex", DIM), ("persons", CNT), ("outcome_persons", CNT), ("proportion", STAT)]
    rows = [(1, 300, 296, 296 / 300), (2, 400, 123, 123 / 400)]
    out = protect(study(table("o", "outcome", cols, rows)), POLICY)
    o = out.table("o")
    assert o.rows[0][2] is None  # 4 persons without the outcome: hidden by complement
    assert o.rows[0][3] is None
    assert o.rows[1][2] is None  # its partner in the line of outcome_persons
    rows = [(1, 300, 123, 123 / 300), (2, 400, 222, 222 / 400)]
    o = protect(study(table("o", "outcome", cols, rows)), POLICY).table("o")
    assert o.rows[0][2] == 125 and o.rows[0][3] == round(125 / 300, 3)  # from released counts
    assert "recomputed" in o.flags[(0, "proportion")]


def test_survival_sequences_within_groups():
    cols = [
        ("sex", DIM),
        ("time_days", DIM),
        ("at_risk", CNT),
        ("events", CNT),
        ("censored", CNT),
        ("survival", STAT),
    ]
    rows = [
        (1, 0, 100, 0, 0, 1.0),
        (1, 30, 98, 2, 0, 0.98),
        (1, 60, 50, 20, 28, 0.6),
        (2, 0, 200, 0, 0, 1.0),
        (2, 30, 150, 30, 20, 0.85),
    ]
    out = protect(study(table("km", "survival", cols, rows)), POLICY)
    km = out.table("km")
    assert km.rows[1][2] is None  # at_risk 98 right after 100
    assert km.rows[2][2] == 50  # compared with the last released step (100)
    assert km.rows[4][2] == 150  # the other group is not compared with the first
