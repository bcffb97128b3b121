"""Hypothesis: random studies round-trip through the spec; the reference engine's invariants.

`studies()` and `cdm_data()` are strategies other tests may import (small concept and date
ranges, so generated events, windows and criteria actually meet).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from passerelle.query import model as m
from passerelle.query.parse import dump_json, dump_study, parse_study
from passerelle.query.reference import ReferenceEngine

CONCEPTS = (1, 2, 3, 4)
DOMAINS = (m.Domain.CONDITION, m.Domain.DRUG, m.Domain.MEASUREMENT, m.Domain.DEATH, m.Domain.VISIT)
BASE = dt.date(2020, 1, 1)

ids = st.lists(st.sampled_from(CONCEPTS), min_size=1, max_size=2, unique=True).map(tuple)
days = st.integers(-60, 60)


@st.composite
def windows(draw: Any, bounded_start: bool = False) -> m.Window:
    start = draw(days if bounded_start else st.none() | days)
    end = draw(st.none() | days)
    if start is not None and end is not None and start > end:
        start, end = end, start
    return m.Window(start, end, draw(st.booleans()))


@st.composite
def concept_sets(draw: Any) -> m.ConceptSet:
    include = draw(ids)
    exclude = (3,) if 3 not in include and draw(st.booleans()) else ()
    return m.ConceptSet(include, draw(st.booleans()), exclude)


@st.composite
def events(draw: Any) -> m.Event:
    domain = draw(st.sampled_from(DOMAINS))
    value = None
    if domain is m.Domain.MEASUREMENT and draw(st.booleans()):
        value = m.ValueRange(draw(st.none() | st.integers(0, 5)), draw(st.integers(5, 10)))
    dates = None
    if draw(st.booleans()):
        dates = m.DateRange(BASE + dt.timedelta(draw(st.integers(0, 30))), None)
    return m.Event(domain, draw(st.none() | concept_sets()), dates, value)


@st.composite
def criteria(draw: Any, depth: int = 0) -> m.Criterion:
    kind = draw(
        st.sampled_from(
            ("require", "exclude", "all_of", "any_of") if depth < 1 else ("require", "exclude")
        )
    )
    if kind == "require":
        lo = draw(st.integers(0, 2))
        return m.Require(draw(events()), draw(windows()), lo, draw(st.none() | st.integers(lo, 3)))
    if kind == "exclude":
        return m.Exclude(draw(events()), draw(windows()))
    children = tuple(draw(st.lists(criteria(depth + 1), min_size=1, max_size=2)))
    return (m.AllOf if kind == "all_of" else m.AnyOf)(children)


dimensions = st.sampled_from(
    (m.SEX, m.INDEX_YEAR, m.INDEX_MONTH, m.SITE, m.VISIT_TYPE, m.ENTRY_CONCEPT, m.AgeBand(10))
)


@st.composite
def studies(draw: Any) -> m.Study:
    entry = m.Entry(tuple(draw(st.lists(events(), min_size=1, max_size=2))),
                    draw(st.sampled_from(list(m.Occurrence))))  # fmt: skip
    observation = draw(st.none() | st.builds(m.Observation, st.integers(0, 30), st.integers(0, 30)))
    exit_kinds = [m.ExitKind.FIXED, m.ExitKind.EXPOSURE, m.ExitKind.EVENT_END]
    if observation is not None:
        exit_kinds.append(m.ExitKind.OBSERVATION_END)
    exit_ = None
    if draw(st.booleans()):
        kind = draw(st.sampled_from(exit_kinds))
        exit_ = m.Exit(
            kind,
            0 if kind is m.ExitKind.OBSERVATION_END else draw(st.integers(0, 30)),
            draw(st.integers(0, 10)) if kind is m.ExitKind.EXPOSURE else 0,
            draw(st.integers(0, 5)),
        )
    demographics = draw(st.none() | st.builds(m.Demographics, st.just(m.IntRange(18, None))))
    cohort = m.Cohort(entry, observation, demographics,
                      tuple(draw(st.lists(criteria(), max_size=2))), exit_)  # fmt: skip
    by = tuple(draw(st.lists(dimensions, max_size=2, unique=True)))
    outcome_window = m.Window(draw(st.integers(0, 5)), draw(st.integers(10, 60)))
    analyses = (
        m.Count("persons", m.CountUnit.PERSONS, by),
        m.Count("entries", m.CountUnit.ENTRIES),
        m.Outcome("outcome", draw(events()), outcome_window, by, rate=True),
        m.Distribution("age", m.DistributionOf.AGE, by=by),
        m.Attrition("attrition"),
        m.Survival("km", draw(events()), outcome_window),
    )
    return m.Study("random", cohort, analyses)


@st.composite
def cdm_data(draw: Any, persons: int = 6) -> dict[str, list[dict[str, Any]]]:
    """Small CDM data over few concepts and dates, so studies find something."""
    day = st.integers(-40, 40).map(lambda d: BASE + dt.timedelta(d))
    people = range(1, persons + 1)
    data: dict[str, list[dict[str, Any]]] = {
        "person": [
            {
                "person_id": p,
                "gender_concept_id": draw(st.sampled_from((8507, 8532))),
                "year_of_birth": draw(st.integers(1990, 2010)),
            }
            for p in people
        ],
        "concept_ancestor": [
            {"ancestor_concept_id": 1, "descendant_concept_id": 2},
            {"ancestor_concept_id": 2, "descendant_concept_id": 3},
            {"ancestor_concept_id": 1, "descendant_concept_id": 3},
        ],
        "observation_period": [],
        "visit_occurrence": [],
        "condition_occurrence": [],
        "drug_exposure": [],
        "measurement": [],
        "death": [],
    }
    for p in people:
        if draw(st.booleans()):
            s = draw(day)
            data["observation_period"].append({"person_id": p, "observation_period_start_date": s - dt.timedelta(draw(st.integers(0, 60))),
                                               "observation_period_end_date": s + dt.timedelta(draw(st.integers(0, 60)))})  # fmt: skip
        for table, concept, start, end in (
            ("condition_occurrence", "condition_concept_id", "condition_start_date", "condition_end_date"),
            ("drug_exposure", "drug_concept_id", "drug_exposure_start_date", "drug_exposure_end_date"),
            ("measurement", "measurement_concept_id", "measurement_date", None),
            ("visit_occurrence", "visit_concept_id", "visit_start_date", "visit_end_date"),
        ):  # fmt: skip
            for _ in range(draw(st.integers(0, 3))):
                s = draw(day)
                row = {"person_id": p, concept: draw(st.sampled_from(CONCEPTS)), start: s}
                if end is not None:
                    row[end] = draw(
                        st.none() | st.integers(0, 20).map(lambda d, s=s: s + dt.timedelta(d))
                    )
                if table == "measurement":
                    row["value_as_number"] = draw(st.none() | st.floats(0, 10, allow_nan=False))
                data[table].append(row)
        if draw(st.integers(0, 4)) == 0:
            data["death"].append({"person_id": p, "death_date": draw(day)})
    ident = {"condition_occurrence": "condition_occurrence_id", "drug_exposure": "drug_exposure_id",
             "measurement": "measurement_id", "visit_occurrence": "visit_occurrence_id",
             "observation_period": "observation_period_id"}  # fmt: skip
    for table, key in ident.items():
        for i, row in enumerate(data[table], start=1):
            row[key] = i
    return data


@settings(max_examples=100, deadline=None)
@given(studies())
def test_spec_round_trip(study):
    assert parse_study(dump_study(study)) == study
    assert parse_study(dump_json(study)) == study
    assert hash(parse_study(dump_study(study))) == hash(study)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(studies(), cdm_data())
def test_reference_invariants(study, data):
    result = ReferenceEngine(data).execute(study)
    total_entries = result.table("entries").rows[0][0]
    persons = result.table("persons").rows
    if not study.analyses[0].by:
        assert persons[0][0] <= total_entries
    steps = [r[2] for r in result.table("attrition").rows]
    assert steps == sorted(steps, reverse=True)  # attrition never grows
    final = len({p for p in _persons(study, data)})
    assert steps[-1] == final
    for r in result.table("outcome").rows:
        n, k = r[-6], r[-5]
        assert 0 <= k <= n
        assert r[-3] >= 0  # person_days
    km = result.table("km").rows
    assert all(0.0 <= r[-1] <= 1.0 for r in km)
    assert [r[0] for r in km] == sorted(r[0] for r in km)
    assert sum(r[2] + r[3] for r in km) == (km[0][1] if km else 0)


def _persons(study: m.Study, data: dict[str, list[dict[str, Any]]]) -> set[int]:
    eng = ReferenceEngine(data)
    return {e.person for e in eng.steps(study.cohort)[-1][1]}
