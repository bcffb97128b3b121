"""ATLAS / Circe import: the 23 real Phenotype Library definitions, and the mapping rules."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from passerelle.query.atlas import AtlasError, convert_atlas, convert_file
from passerelle.query.parse import parse_study
from tests.conftest import shared

ROOT = Path(__file__).resolve().parents[2]


def concept(cid: int, excluded: bool = False, descendants: bool = False) -> dict:
    return {"concept": {"CONCEPT_ID": cid, "CONCEPT_NAME": "x"}, "isExcluded": excluded,
            "includeDescendants": descendants, "includeMapped": False}  # fmt: skip


def circe(**over) -> dict:
    base = {
        "ConceptSets": [
            {"id": 0, "name": "bleed", "expression": {"items": [concept(192671, descendants=True),
                                                                concept(4000, excluded=True)]}},
            {"id": 1, "name": "drug", "expression": {"items": [concept(1118084, descendants=True),
                                                               concept(5, descendants=False)]}},
        ],
        "PrimaryCriteria": {
            "CriteriaList": [{"DrugExposure": {"CodesetId": 1, "DrugTypeExclude": False}}],
            "ObservationWindow": {"PriorDays": 0, "PostDays": 0},
            "PrimaryCriteriaLimit": {"Type": "First"},
        },
        "QualifiedLimit": {"Type": "First"},
        "ExpressionLimit": {"Type": "First"},
        "InclusionRules": [
            {"name": "no prior bleed (ever)", "expression": {
                "Type": "ALL",
                "CriteriaList": [{
                    "Criteria": {"ConditionOccurrence": {"CodesetId": 0}},
                    "StartWindow": {"Start": {"Coeff": -1}, "End": {"Days": 1, "Coeff": -1}},
                    "IgnoreObservationPeriod": False,
                    "Occurrence": {"Type": 0, "Count": 0},
                }],
                "DemographicCriteriaList": [{"Age": {"Value": 18, "Op": "gte"}}],
                "Groups": [],
            }},
        ],
        "EndStrategy": {"DateOffset": {"DateField": "StartDate", "Offset": 30}},
        "CensoringCriteria": [],
        "CollapseSettings": {"CollapseType": "ERA", "EraPad": 0},
        "CensorWindow": {},
    }  # fmt: skip
    base.update(over)
    return base


def test_mapping():
    conv = convert_atlas(circe(), name="celecoxib")
    assert conv.problems == []
    assert conv.spec["cohort"] == {
        "entry": {
            "drug": {"concepts": [1118084], "descendants": True, "exact": [5]},
            "occurrence": "first",
            "observation_window": {"prior_days": 0, "post_days": 0},
        },
        "observation": {"prior_days": 0, "post_days": 0},
        "demographics": {"age": {"min": 18}},
        "criteria": [{
            "name": "no prior bleed ever",
            "exclude": {
                "condition": {"concepts": [192671], "descendants": True, "exclude_exact": [4000]},
                "window": {"start": None, "end": -1, "observed": True},
            },
        }],
        "exit": {"days": 30},
    }  # fmt: skip
    study = parse_study(conv.spec)
    assert study.cohort.criteria[0].window.observed


def test_unconvertible_parts_are_named():
    d = circe(CensoringCriteria=[{"Death": {}}], CensorWindow={"StartDate": "2010-01-01"})
    d["InclusionRules"][0]["expression"]["CriteriaList"][0]["RestrictVisit"] = True
    d["PrimaryCriteria"]["CriteriaList"].append({"Specimen": {"CodesetId": 0}})
    conv = convert_atlas(d)
    assert not conv.complete
    assert conv.problems == [
        "PrimaryCriteria.CriteriaList[1].Specimen: Specimen criteria are not supported",
        "InclusionRules[0].expression.CriteriaList[0].RestrictVisit: is not supported",
        "CensoringCriteria: is not supported",
        "CensorWindow: is not supported",
    ]


def test_limits_after_criteria_pick_the_first_qualifying_entry():
    d = circe()
    d["PrimaryCriteria"]["PrimaryCriteriaLimit"] = {"Type": "All"}
    d["QualifiedLimit"] = {"Type": "All"}
    conv = convert_atlas(d)
    assert conv.complete, conv.problems
    cohort = conv.spec["cohort"]
    assert cohort["entry"]["occurrence"] == "all"
    assert cohort["qualified_occurrence"] == "first"  # the expression limit, after the rules
    d["InclusionRules"] = []
    conv = convert_atlas(d)  # nothing filters in between: the entry's occurrence picks
    assert conv.complete and conv.spec["cohort"]["entry"]["occurrence"] == "first"
    assert "qualified_occurrence" not in conv.spec["cohort"]


def test_qualified_limit_applies_only_with_additional_criteria():
    d = circe(InclusionRules=[], ExpressionLimit={"Type": "All"})
    d["PrimaryCriteria"]["PrimaryCriteriaLimit"] = {"Type": "All"}
    assert "AdditionalCriteria" not in d  # Circe ignores the qualified limit
    assert convert_atlas(d).spec["cohort"]["entry"]["occurrence"] == "all"
    d["AdditionalCriteria"] = {"Type": "ALL", "CriteriaList": [], "Groups": []}
    assert convert_atlas(d).spec["cohort"]["entry"]["occurrence"] == "first"
    d["AdditionalCriteria"] = {
        **circe()["InclusionRules"][0]["expression"],
        "DemographicCriteriaList": [],
    }
    conv = convert_atlas(d)
    assert conv.complete
    assert conv.spec["cohort"]["entry"]["occurrence"] == "all"
    assert conv.spec["cohort"]["qualified_occurrence"] == "first"
    d["InclusionRules"] = circe()["InclusionRules"]
    assert convert_atlas(d).problems == [
        "QualifiedLimit: First applies between the additional criteria and the inclusion rules; "
        "not supported with both"
    ]


CORRELATED = {
    "Type": "ALL",
    "CriteriaList": [{
        "Criteria": {"ConditionOccurrence": {"CodesetId": 0}},
        "StartWindow": {"Start": {"Days": 0, "Coeff": 1}, "End": {"Days": 30, "Coeff": 1}},
        "IgnoreObservationPeriod": True,
        "Occurrence": {"Type": 2, "Count": 1},
    }],
    "DemographicCriteriaList": [],
    "Groups": [],
}  # fmt: skip
BLEED_WITHIN_30 = {
    "require": {
        "condition": {"concepts": [192671], "descendants": True, "exclude_exact": [4000]},
        "window": {"start": 0, "end": 30},
    }
}


def test_correlated_criteria_are_criteria_on_the_entry_event():
    d = circe(InclusionRules=[])
    d["PrimaryCriteria"]["CriteriaList"].append(
        {"ConditionOccurrence": {"CodesetId": 0, "CorrelatedCriteria": CORRELATED}}
    )
    conv = convert_atlas(d)
    assert conv.complete, conv.problems
    entry = conv.spec["cohort"]["entry"]
    assert "criteria" not in entry["any_of"][0]
    assert entry["any_of"][1]["criteria"] == [BLEED_WITHIN_30]
    assert entry["occurrence"] == "first"
    assert entry["observation_window"] == {"prior_days": 0, "post_days": 0}
    parse_study(conv.spec)


def test_a_criterion_first_picks_before_its_correlated_criteria_and_observation():
    d = circe(InclusionRules=[])
    d["PrimaryCriteria"]["ObservationWindow"] = {"PriorDays": 365, "PostDays": 0}
    d["PrimaryCriteria"]["CriteriaList"] = [
        {"DrugExposure": {"CodesetId": 1, "First": True, "CorrelatedCriteria": CORRELATED}}
    ]
    conv = convert_atlas(d)
    assert conv.complete, conv.problems
    assert conv.notes == []
    cohort = conv.spec["cohort"]
    assert "observation_window" not in cohort["entry"]  # the first drug ever, then the window
    assert cohort["observation"] == {"prior_days": 365, "post_days": 0}
    assert cohort["criteria"] == [{"name": "correlated criteria", **BLEED_WITHIN_30}]


@pytest.mark.parametrize(
    "op, value, extent, expected",
    [
        ("lt", 5, None, {"lt": 5}),
        ("lte", 5, None, {"max": 5}),
        ("gt", 5.6, None, {"gt": 5.6}),
        ("gte", 5, None, {"min": 5}),
        ("eq", 5, None, {"min": 5, "max": 5}),
        ("!eq", 5, None, {"not_between": [5, 5]}),
        ("bt", 1, 2, {"min": 1, "max": 2}),
        ("!bt", 1, 2, {"not_between": [1, 2]}),
    ],
)
def test_every_numeric_operator_converts(op, value, extent, expected):
    d = circe()
    d["PrimaryCriteria"]["CriteriaList"] = [{"Measurement": {
        "CodesetId": 1, "ValueAsNumber": {"Op": op, "Value": value, "Extent": extent}}}]  # fmt: skip
    conv = convert_atlas(d)
    assert conv.complete, conv.problems
    assert conv.spec["cohort"]["entry"]["value"] == expected


def test_not_circe():
    with pytest.raises(AtlasError):
        convert_atlas("[1, 2]")
    with pytest.raises(AtlasError):
        convert_atlas("{not json")


def test_phenotype_library_sample(capsys):
    folder = shared("ohdsi-phenotype-library-sample", "cohorts")
    files = sorted(folder.glob("*.json"))
    assert len(files) == 23
    complete = 0
    for f in files:
        conv = convert_file(f)
        json.dumps(conv.spec)  # a plain, serialisable spec
        if conv.complete:
            complete += 1
            parse_study(conv.spec)  # converts fully -> a valid Study
        else:
            assert conv.problems and all(": " in p for p in conv.problems), f.name
    with capsys.disabled():
        print(f"\nATLAS import: {complete}/{len(files)} Phenotype Library definitions converted fully "
              f"({complete / len(files):.0%})")  # fmt: skip
    assert complete == len(files)


# Definitions that select persons in GiBleed, and those using the entry's observation window,
# correlated criteria, the qualified limit and strict value operators.
ON_GIBLEED = ("1271", "1301", "354", "38", "523", "533", "1056", "798", "746", "84", "930", "940")


@pytest.mark.shared_data
def test_converted_definitions_run_on_gibleed_as_the_reference_says(gibleed_dir, tmp_path):
    """Converted specs compile and run on DuckDB (GiBleed) with the reference engine's answer."""
    from enginedata import gibleed_duckdb

    from passerelle.cdm.stores import open_store
    from passerelle.query.engines import engine_for
    from passerelle.query.reference import ReferenceEngine

    folder = shared("ohdsi-phenotype-library-sample", "cohorts")
    store = open_store(f"duckdb://{gibleed_duckdb(gibleed_dir, tmp_path / 'cdm.duckdb')}")
    entered = 0
    try:
        for stem in ON_GIBLEED:
            study = parse_study(convert_file(folder / f"{stem}.json").spec)
            got = engine_for(store).execute(study)
            want = ReferenceEngine.from_store(store, study).execute(study)
            for g, w in zip(got.tables, want.tables, strict=True):
                assert sorted(g.rows) == sorted(w.rows), (stem, g.name)
            entered += bool(got.tables[0].rows[0][0])
    finally:
        store.close()
    assert entered >= 6  # not every cohort is empty on GiBleed
