"""The query model: frozen, hashable, validated; result columns per analysis."""

from __future__ import annotations

import dataclasses

import pytest

from passerelle.query import model as m


def celecoxib() -> m.Study:
    bleed = m.Event(m.Domain.CONDITION, m.ConceptSet((192671,), descendants=True))
    return m.Study(
        "celecoxib-new-users",
        m.Cohort(
            entry=m.Entry(
                (m.Event(m.Domain.DRUG, m.ConceptSet((1118084,), True)),), m.Occurrence.FIRST
            ),
            observation=m.Observation(prior_days=365),
            demographics=m.Demographics(age=m.IntRange(min=18)),
            criteria=(m.Exclude(bleed, m.Window(None, -1)),),
        ),
        (
            m.Count("size"),
            m.Count("by_sex_age", by=(m.SEX, m.AgeBand(10))),
            m.Outcome("gi_bleed_1y", bleed, m.Window(1, 365), by=(m.SEX,)),
        ),
    )


def test_frozen_and_hashable():
    s = celecoxib()
    assert hash(s) == hash(celecoxib())
    assert s == celecoxib()
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.name = "x"  # type: ignore[misc]


def test_every_domain_is_in_the_table():
    assert set(m.DOMAINS) == set(m.Domain)
    from passerelle.cdm.schema import TABLES_BY_NAME

    for info in m.DOMAINS.values():
        cols = {c.name for c in TABLES_BY_NAME[info.table].columns}
        for name in (
            "id_column", "concept_column", "start_column", "end_column",
            "source_concept_column", "visit_column", "value_column", "unit_column",
            "value_concept_column",
        ):  # fmt: skip
            col = getattr(info, name)
            assert col is None or col in cols, (info.table, col)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: m.Window(30, 10), "start 30 is after end 10"),
        (lambda: m.ConceptSet(()), "names no concept"),
        (lambda: m.ConceptSet((1,), exclude=(1,)), "both included and excluded"),
        (lambda: m.Require(m.Event(m.Domain.DEATH), min_count=3, max_count=1), "below"),
        (lambda: m.Event(m.Domain.CONDITION, value=m.ValueRange(1, 2)), "have no value"),
        (lambda: m.Event(m.Domain.DRUG_ERA, visit_type=(9201,)), "have no visit"),
        (lambda: m.AgeBand(0), "not a positive integer"),
        (
            lambda: m.Dimension(
                m.DimensionKind.CONCEPT_COLUMN,
                source=m.ColumnSource.PERSON,
                column="nope_concept_id",
            ),
            "person has no column",
        ),
        (lambda: m.Observation(prior_days=-1), "non-negative"),
    ],
)
def test_validation(make, message):
    with pytest.raises(m.ModelError, match=message):
        make()


def test_analysis_names_unique_and_rate_bounded():
    s = celecoxib()
    with pytest.raises(m.ModelError, match="used twice"):
        dataclasses.replace(s, analyses=(m.Count("a"), m.Count("a")))
    bleed = s.analyses[2].event
    with pytest.raises(m.ModelError, match="bound the time at risk"):
        dataclasses.replace(s, analyses=(m.Outcome("o", bleed, m.Window(1, None), rate=True),))


def test_result_columns():
    s = celecoxib()
    names = [tuple(c.name for c in m.result_columns(a)) for a in s.analyses]
    assert names == [
        ("persons",),
        ("sex", "age_band", "persons"),
        ("sex", "persons", "outcome_persons", "proportion"),
    ]
    d = m.Distribution("d", m.DistributionOf.AGE, by=(m.INDEX_YEAR,))
    assert [c.name for c in m.result_columns(d)] == [
        "index_year", "n", "mean", "sd", "min", "p10", "p25", "median", "p75", "p90", "max",
    ]  # fmt: skip
    assert [c.name for c in m.result_columns(m.Attrition("a"))] == ["step", "criterion", "persons"]


def test_attrition_steps_and_tables():
    s = celecoxib()
    assert m.attrition_steps(s.cohort) == ("entry", "observation", "demographics", "criteria[0]")
    assert m.tables_needed(s) == (
        "concept_ancestor", "condition_occurrence", "drug_exposure", "observation_period", "person",
    )  # fmt: skip


def test_observed_windows_need_observation_periods():
    s = celecoxib()
    crit = m.Exclude(s.cohort.criteria[0].event, m.Window(None, -1, observed=True))
    study = dataclasses.replace(
        s, cohort=dataclasses.replace(s.cohort, observation=None, criteria=(crit,))
    )
    assert "observation_period" in m.tables_needed(study)
    assert m.walk_windows(study) == (m.Window(None, -1, True), m.Window(1, 365))
