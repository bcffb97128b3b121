"""Acceptance on Eunomia GiBleed: the issue's specs and the published cohort counts."""

from __future__ import annotations

import pytest
from issue_specs import CELECOXIB, GI_BLEED

from passerelle.cdm.load import load_folder
from passerelle.cdm.stores import open_store
from passerelle.query.parse import check_concepts, parse_study
from passerelle.query.reference import ReferenceEngine

pytestmark = pytest.mark.shared_data


@pytest.fixture(scope="module")
def gibleed_store(gibleed_dir, tmp_path_factory):
    url = f"duckdb:///{tmp_path_factory.mktemp('gibleed') / 'cdm.duckdb'}"
    store = open_store(url)
    store.init()
    load_folder(store, gibleed_dir)
    yield store
    store.close()


def run(store, spec):
    study = parse_study(spec)
    return ReferenceEngine.from_store(store, study).execute(study)


def test_gi_bleed_spec(gibleed_store):
    result = run(gibleed_store, GI_BLEED)
    assert result.table("entries").rows == [(479,)]
    assert sorted(result.table("persons").rows) == [(8507, 237), (8532, 242)]


@pytest.mark.parametrize("concept, entries", [(1118084, 1844), (1124300, 850)])
def test_eunomia_published_drug_era_cohorts(gibleed_store, concept, entries):
    spec = {
        "study": "era",
        "cohort": {
            "entry": {"drug_era": {"concepts": [concept], "descendants": True}, "occurrence": "all"}
        },
        "analyses": [{"name": "n", "count": "entries"}],
    }
    assert run(gibleed_store, spec).table("n").rows == [(entries,)]


def test_celecoxib_spec_runs(gibleed_store):
    result = run(gibleed_store, CELECOXIB)
    (size,) = result.table("size").rows
    assert size[0] > 0
    by_sex_age = result.table("by_sex_age").rows
    assert sum(r[2] for r in by_sex_age) == size[0]  # one entry per person: bands partition
    assert all(r[1] >= 10 and r[1] % 10 == 0 for r in by_sex_age)  # adults, band lower bounds
    outcome = result.table("gi_bleed_1y").rows
    assert sum(r[1] for r in outcome) == size[0]
    assert all(0 <= r[3] <= 1 for r in outcome)


def test_check_concepts_warns_only_for_absent_concepts(gibleed_store):
    assert check_concepts(parse_study(CELECOXIB), gibleed_store) == []
    spec = {"study": "x", "cohort": {"entry": {"condition": [999999999]}},
            "analyses": [{"name": "n", "count": "persons"}]}  # fmt: skip
    assert check_concepts(parse_study(spec), gibleed_store) == [
        "concept 999999999 is not in the store's vocabulary"
    ]
