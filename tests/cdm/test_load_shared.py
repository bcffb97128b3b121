"""Acceptance: the published OMOP samples load with their documented row counts on every engine."""

import zipfile

import pytest

from passerelle.cdm.load import load_folder
from passerelle.cdm.stores import open_store
from tests.conftest import shared

# ../shared/data/eunomia-gibleed/SOURCE.md, "Row counts"; every other table is empty.
GIBLEED_COUNTS = {
    "person": 2694,
    "observation_period": 5343,
    "visit_occurrence": 1037,
    "condition_occurrence": 65332,
    "drug_exposure": 67707,
    "measurement": 44053,
    "procedure_occurrence": 37409,
    "observation": 1477,
    "condition_era": 65719,
    "drug_era": 52508,
    "concept": 444,
    "concept_ancestor": 65690,
    "concept_relationship": 8,
    "concept_synonym": 1064,
    "vocabulary": 125,
    "domain": 45,
    "relationship": 480,
    "cdm_source": 1,
}

# ../shared/data/eunomia-synthea27nj-5.4/SOURCE.md, "Contents".
SYNTHEA27NJ_COUNTS = {
    "person": 28,
    "observation_period": 28,
    "visit_occurrence": 1791,
    "visit_detail": 1791,
    "condition_occurrence": 470,
    "condition_era": 469,
    "drug_exposure": 883,
    "drug_era": 0,
    "measurement": 10040,
    "observation": 8099,
    "procedure_occurrence": 1649,
    "device_exposure": 1,
    "death": 3,
    "provider": 67,
    "cdm_source": 1,
    "vocabulary": 1,
    "concept": 2294,
    "concept_relationship": 266588,
    "concept_ancestor": 0,
}


def test_gibleed_loads_with_its_published_counts(store_url, gibleed_dir):
    with open_store(store_url) as store:
        report = load_folder(store, gibleed_dir)
        counts = store.counts()
    assert report.ok, report.to_dict()["failed"]
    expected = {name: GIBLEED_COUNTS.get(name, 0) for name in counts}
    assert counts == expected
    assert [u.path.name for u in report.skipped] == ["COHORT_ATTRIBUTE.csv"]
    by_table = {t.table: t for t in report.loaded}
    # v5.3 columns renamed onto v5.4, and the duplicate ids of the published export reported.
    assert by_table["visit_occurrence"].cdm_version == "5.3"
    assert by_table["drug_exposure"].duplicate_keys == 67707 - 63323


@pytest.mark.slow
def test_synthea27nj_v54_zip_loads_with_its_counts(store_url, tmp_path):
    archive = shared("eunomia-synthea27nj-5.4", "Synthea27Nj_5.4.zip")
    folder = tmp_path / "synthea27nj"
    with zipfile.ZipFile(archive) as zf:
        for member in zf.namelist():
            if member.startswith("__MACOSX") or not member.lower().endswith(".csv"):
                continue
            zf.extract(member, folder)
    csv_dir = next(p.parent for p in folder.rglob("*.csv"))
    with open_store(store_url) as store:
        report = load_folder(store, csv_dir)
        counts = store.counts()
    assert report.ok, report.to_dict()["failed"]
    for name, n in SYNTHEA27NJ_COUNTS.items():
        assert counts[name] == n, name
    assert {t.cdm_version for t in report.loaded} == {"5.4"}
