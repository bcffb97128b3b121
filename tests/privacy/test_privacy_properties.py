"""Properties of disclosure control over generated tables (hypothesis)."""

from __future__ import annotations

from collections import defaultdict

from hypothesis import given, settings
from hypothesis import strategies as st

from passerelle.privacy.disclosure import protect
from passerelle.privacy.policy import parse_policy
from passerelle.query.result import AggregateTable, ResultColumn, StudyResult

POLICY = parse_policy({"policy": "p", "min_cell": 11, "rounding": 5})
counts = st.integers(min_value=0, max_value=80)


@st.composite
def studies(draw):
    sexes = draw(st.lists(st.sampled_from([8507, 8532, 0]), min_size=1, max_size=3, unique=True))
    bands = draw(
        st.lists(st.sampled_from([0, 10, 20, 30, 40, 50]), min_size=1, max_size=6, unique=True)
    )
    grid = {(s, b): draw(counts) for s in sexes for b in bands}
    grid = {k: v for k, v in grid.items() if v > 0} or {(sexes[0], bands[0]): 1}
    by_sex, by_band = defaultdict(int), defaultdict(int)
    for (s, b), v in grid.items():
        by_sex[s] += v
        by_band[b] += v
    dim, cnt = "dimension", "count"

    def t(name, dims, rows):
        cols = (*tuple(ResultColumn(d, dim) for d in dims), ResultColumn("persons", cnt))
        return AggregateTable(name, "count", cols, rows)

    tables = [
        t("size", [], [(sum(grid.values()),)]),
        t("sex", ["sex"], sorted(by_sex.items())),
        t("band", ["band"], sorted(by_band.items())),
        t("sex_band", ["sex", "band"], [(s, b, v) for (s, b), v in sorted(grid.items())]),
    ]
    return StudyResult("s", "x", tables)


def lines(result: StudyResult):
    """(cells, total) for every margin relation an attacker can use."""
    size = result.table("size").rows[0][0]
    sex = dict(result.table("sex").rows)
    band = dict(result.table("band").rows)
    grid = {(s, b): v for s, b, v in result.table("sex_band").rows}
    yield list(sex.values()), size
    yield list(band.values()), size
    for s, total in sex.items():
        yield [v for (gs, _), v in grid.items() if gs == s], total
    for b, total in band.items():
        yield [v for (_, gb), v in grid.items() if gb == b], total


@settings(max_examples=300, deadline=None)
@given(studies())
def test_no_withheld_cell_is_derivable_and_no_small_count_released(result):
    out = protect(result, POLICY)
    for t in out.tables:
        for row in t.rows:
            v = row[-1]
            assert v is None or v == 0 or v >= 10  # rounded from >= 11
            assert v is None or v % 5 == 0
    for cells, total in lines(out):
        hidden = sum(c is None for c in cells)
        assert not (hidden == 1 and total is not None), (cells, total)
        assert not (total is None and cells and hidden == 0 and any(cells))


@settings(max_examples=100, deadline=None)
@given(studies())
def test_protect_is_idempotent(result):
    once = protect(result, POLICY)
    twice = protect(once, POLICY)
    assert [t.rows for t in once.tables] == [t.rows for t in twice.tables]
