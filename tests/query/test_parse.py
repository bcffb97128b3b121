"""Parsing specs: the issue's specs exactly, every error with its path, round trips."""

from __future__ import annotations

import json

import pytest
from issue_specs import CELECOXIB, GI_BLEED

from passerelle.query import builder as b
from passerelle.query import model as m
from passerelle.query.parse import SpecError, dump_json, dump_study, dump_yaml, parse_study


def test_issue_specs_parse_exactly():
    gi = parse_study(GI_BLEED)
    assert gi.name == "gi-bleed"
    assert gi.cohort.entry == m.Entry(
        (m.Event(m.Domain.CONDITION, m.ConceptSet((192671,), descendants=True)),),
        m.Occurrence.ALL,
    )
    assert gi.analyses == (
        m.Count("entries", m.CountUnit.ENTRIES),
        m.Count("persons", m.CountUnit.PERSONS, (m.SEX,)),
    )
    cel = parse_study(CELECOXIB)
    assert cel.cohort.observation == m.Observation(365, 0)
    assert cel.cohort.demographics == m.Demographics(age=m.IntRange(18, None))
    assert cel.cohort.criteria[0] == m.Exclude(
        m.Event(m.Domain.CONDITION, m.ConceptSet((192671,), True)), m.Window(None, -1)
    )
    assert cel.analyses[1].by == (m.SEX, m.AgeBand(10))
    assert cel.analyses[2].window == m.Window(1, 365)


def test_builder_equals_parsed_spec():
    bleed = b.condition(192671, descendants=True)
    built = (
        b.StudyBuilder("celecoxib-new-users")
        .entry(b.drug(1118084, descendants=True), occurrence="first")
        .observation(prior_days=365)
        .demographics(age_min=18)
        .exclude(bleed, start=None, end=-1)
        .count("size")
        .count("by_sex_age", by=["sex", {"age_band": 10}])
        .outcome("gi_bleed_1y", bleed, start=1, end=365, by=["sex"])
        .build()
    )
    assert built == parse_study(CELECOXIB)
    gi = (
        b.StudyBuilder("gi-bleed")
        .entry(b.condition(192671, descendants=True), occurrence="all")
        .count("entries", "entries")
        .count("persons", by=["sex"])
        .build()
    )
    assert gi == parse_study(GI_BLEED)


def errors(spec) -> list[str]:
    with pytest.raises(SpecError) as info:
        parse_study(spec)
    return [str(p) for p in info.value.problems]


def test_every_error_has_its_path():
    spec = """
study: x
cohort:
  entry: {condition: {concepts: [1]}, occurence: all}
  observation: {prior_days: -3}
  criteria:
    - require: {condition: [2], window: {start: 30, end: 10}}
    - exclude: {drug: [3], window: {start: 1, end: 0}, min_count: 2}
    - any_of: []
analyses: [{name: a, count: people}, {name: b, count: persons, by: [sexe]}]
"""
    assert errors(spec) == [
        "cohort.entry.occurence: unknown key (did you mean 'occurrence'?)",
        "cohort.observation.prior_days: -3 is below 0",
        "cohort.criteria[0].require.window: start 30 is after end 10",
        "cohort.criteria[1].exclude.min_count: unknown key (expected condition, drug, drug_era, "
        "condition_era, procedure, measurement, observation, visit, device, death, dates, value, "
        "unit, value_concepts, visit_type, window)",
        "cohort.criteria[2].any_of: needs at least one criterion",
        "analyses[0].count: 'people' is not one of persons, entries",
        "analyses[1].by[0]: 'sexe' is not one of sex, index_year, index_month, site, "
        "visit_type, entry_concept, {age_band: N}, {column: person.X_concept_id}",
    ]


@pytest.mark.parametrize(
    "patch, expected",
    [
        ({"study": 3}, "study: must be a name, not a number"),
        ({"extra": 1}, "extra: unknown key (expected study, cohort, analyses)"),
        ({"analyses": []}, "analyses: must be a non-empty list of analyses"),
        (
            {"analyses": [{"name": "a", "count": "persons"}, {"name": "a", "count": "entries"}]},
            "analyses[1].name: analysis name 'a' is used twice",
        ),
        (
            {"cohort": {"entry": {"condition": [1], "drug": [2]}}},
            "cohort.entry: names 2 domains: give exactly one of condition, drug, drug_era, "
            "condition_era, procedure, measurement, observation, visit, device, death",
        ),
        (
            {"cohort": {"entry": {"condition": {"concepts": ["DROP TABLE person"]}}}},
            "cohort.entry.condition.concepts[0]: must be a whole number, not the text "
            "'DROP TABLE person'",
        ),
        (
            {"cohort": {"entry": {"condition": [1], "value": {"min": 1}}}},
            "cohort.entry.value: condition events have no value",
        ),
        (
            {"cohort": {"entry": {"condition": [1]}, "exit": "observation_end"}},
            "cohort.exit: an observation_end exit needs `observation` (e.g. {prior_days: 0})",
        ),
    ],
)
def test_single_errors(patch, expected):
    spec = {
        "study": "s",
        "cohort": {"entry": {"death": {}}},
        "analyses": [{"name": "n", "count": "persons"}],
    }
    spec.update(patch)
    assert errors(spec) == [expected]


def test_duplicate_yaml_key_and_bad_yaml():
    assert errors("study: a\nstudy: b\n") == ["line 2: key 'study' appears twice"]
    assert errors("study: [")[0].startswith("line ")


FULL = """
study: everything
cohort:
  entry:
    any_of:
      - measurement: {concepts: [3004410], source_concepts: [44000]}
        value: {min: 6.5, max: 20}
        unit: [8554]
        visit_type: [9201]
        dates: {start: 2010-01-01, end: "2020-12-31"}
      - condition: {concepts: [201826], descendants: true, exclude: [201254], exact: [3], exclude_exact: [4]}
    occurrence: last
  observation: {prior_days: 30, post_days: 10}
  demographics: {age: {min: 18, max: 90}, sex: [female, 8507], year_of_birth: {min: 1900}}
  period: {start: 2012-01-01}
  criteria:
    - name: two visits
      require: {visit: {}, window: {start: -365, end: 0}, min_count: 2, max_count: 10}
    - all_of:
        - exclude: {death: {}, window: {start: null, end: 0}}
        - any_of:
            - require: {drug_era: [1503297]}
            - require: {observation: [1], value_concepts: [45877994]}
  exit: {exposure: {gap_days: 30, offset_days: 7}, collapse_days: 3}
analyses:
  - {name: c, count: entries, by: [index_year, index_month, site, visit_type, entry_concept, {column: person.race_concept_id}, {column: entry.measurement_type_concept_id}]}
  - {name: o, outcome: {death: {}, window: {start: 1, end: null}}, rate: true, by: [{age_band: 5}]}
  - {name: d1, distribution: age}
  - {name: d2, distribution: {value: {measurement: [3004410], window: {start: -30, end: 0}, occurrence: first}}}
  - {name: d3, distribution: {days_to_outcome: {death: {}, window: {start: 0, end: 3650}}}}
  - {name: a, attrition: true}
  - {name: s, survival: {death: {}, window: {start: 0, end: 365}}, by: [sex]}
"""


def test_entry_column_must_exist_in_every_entry_table():
    assert errors(FULL) == [
        "analyses[0].by[6]: condition_occurrence has no column measurement_type_concept_id"
    ]


def test_round_trip_yaml_json():
    spec = FULL.replace(", {column: entry.measurement_type_concept_id}", "")
    study = parse_study(spec)
    assert study.cohort.demographics.sex == (8532, 8507)
    assert study.cohort.exit == m.Exit(m.ExitKind.EXPOSURE, 7, 30, 3)
    assert parse_study(dump_study(study)) == study
    assert parse_study(dump_yaml(study)) == study
    assert parse_study(json.loads(dump_json(study))) == study
    assert parse_study(dump_json(study)) == study


@pytest.mark.parametrize(
    "value, expected",
    [
        ({"gt": 5, "min": 1}, "cohort.entry.value: give min or gt, not both"),
        ({"not_between": [1, 2], "lt": 3}, "cohort.entry.value: not_between takes no other bound"),
        (
            {"not_between": [1]},
            "cohort.entry.value.not_between: must be a list of two numbers [min, max]",
        ),
        ({"not_between": [5, 1]}, "cohort.entry.value.not_between: min 5 is above max 1"),
        ({"gt": 2, "lt": 2}, "cohort.entry.value: the range (2, 2) is empty"),
        ({"lt": "x"}, "cohort.entry.value.lt: must be a number, not the text 'x'"),
    ],
)
def test_value_range_errors(value, expected):
    spec = {"study": "x", "cohort": {"entry": {"measurement": [1], "value": value}},
            "analyses": [{"name": "a", "count": "persons"}]}  # fmt: skip
    assert errors(spec) == [expected]


@pytest.mark.parametrize(
    "value, model",
    [
        ({"gt": 5}, m.ValueRange(5, None, min_exclusive=True)),
        ({"min": 1, "lt": 5.5}, m.ValueRange(1, 5.5, max_exclusive=True)),
        ({"not_between": [1, 2]}, m.ValueRange(1, 2, outside=True)),
    ],
)
def test_value_ranges_parse_and_dump_back(value, model):
    spec = {"study": "x", "cohort": {"entry": {"measurement": [1], "value": value}},
            "analyses": [{"name": "a", "count": "persons"}]}  # fmt: skip
    study = parse_study(spec)
    assert study.cohort.entry.events[0].value == model
    assert dump_study(study)["cohort"]["entry"]["value"] == value
    assert parse_study(dump_study(study)) == study


def test_entry_window_criteria_and_qualified_occurrence_round_trip_and_build():
    spec = """
study: x
cohort:
  entry:
    any_of:
      - condition: [1]
        criteria: [{require: {drug: [2], window: {start: 0, end: 30}}}]
      - measurement: [3]
    occurrence: first
    observation_window: {prior_days: 30}
  qualified_occurrence: last
analyses: [{name: a, count: persons}]
"""
    study = parse_study(spec)
    entry = study.cohort.entry
    require = m.Require(b.drug(2), m.Window(0, 30))
    assert entry.observation_window == m.Observation(30, 0)
    assert entry.criteria == ((require,), ())
    assert study.cohort.qualified_occurrence is m.Occurrence.LAST
    assert parse_study(dump_study(study)) == study
    built = (
        b.StudyBuilder("x")
        .entry(b.condition(1), b.measurement(3), prior_days=30, criteria=[[require], []])
        .qualified_occurrence("last")
        .count("a")
        .build()
    )
    assert built == study


@pytest.mark.parametrize(
    "entry, expected",
    [
        ({"condition": [1], "observation_window": {"prior_days": -1}},
         "cohort.entry.observation_window.prior_days: -1 is below 0"),
        ({"condition": [1], "criteria": [{"require": {"drug": [2], "window": {"start": 3, "end": 1}}}]},
         "cohort.entry.criteria[0].require.window: start 3 is after end 1"),
        ({"any_of": [{"condition": [1], "criteria": {"exclude": {"drug": [2]}}}]},
         "cohort.entry.any_of[0].criteria: must be a list of criteria, not a mapping"),
        ({"any_of": [{"condition": [1]}], "criteria": []},
         "cohort.entry.criteria: unknown key (expected any_of, occurrence, observation_window)"),
    ],
)  # fmt: skip
def test_entry_criteria_errors_have_paths(entry, expected):
    spec = {
        "study": "x",
        "cohort": {"entry": entry},
        "analyses": [{"name": "a", "count": "persons"}],
    }
    assert errors(spec) == [expected]


def test_qualified_occurrence_error():
    spec = {"study": "x", "cohort": {"entry": {"condition": [1]}, "qualified_occurrence": "one"},
            "analyses": [{"name": "a", "count": "persons"}]}  # fmt: skip
    assert errors(spec) == ["cohort.qualified_occurrence: 'one' is not one of first, last, all"]


def test_model_refuses_bad_entry_criteria_and_value_ranges():
    cond = b.condition(1)
    with pytest.raises(m.ModelError, match="has 2 criteria lists for 1 events"):
        m.Entry((cond,), criteria=((), ()))
    with pytest.raises(m.ModelError, match="outside a range needs both min and max"):
        m.ValueRange(1, None, outside=True)
    with pytest.raises(m.ModelError, match="an exclusive max needs a max"):
        m.ValueRange(1, None, max_exclusive=True)
    with pytest.raises(m.ModelError, match="is not first, last or all"):
        m.Cohort(m.Entry((cond,)), qualified_occurrence="one")  # type: ignore[arg-type]
    r = m.ValueRange(5, 10, min_exclusive=True)
    assert [r.contains(v) for v in (None, 5, 5.5, 10, 10.5)] == [False, False, True, True, False]
    out = m.ValueRange(5, 10, outside=True)
    assert [out.contains(v) for v in (None, 4.9, 5, 10, 10.1)] == [False, True, False, False, True]
