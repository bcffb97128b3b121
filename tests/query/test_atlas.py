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


def test_limits_after_criteria_are_named():
    d = circe()
    d["PrimaryCriteria"]["PrimaryCriteriaLimit"] = {"Type": "All"}
    d["QualifiedLimit"] = {"Type": "All"}
    conv = convert_atlas(d)
    assert conv.problems == [
        "ExpressionLimit: First applies after criteria (the first qualifying event); "
        "Passerelle picks the occurrence before criteria"
    ]
    d["InclusionRules"] = []
    conv = convert_atlas(d)
    assert conv.complete and conv.spec["cohort"]["entry"]["occurrence"] == "first"


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
    assert complete >= 15
