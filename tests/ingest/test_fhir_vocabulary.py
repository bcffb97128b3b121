from __future__ import annotations

import zipfile

import pytest
from ingest_helpers import shared

from passerelle.cdm.load import load_folder
from passerelle.cdm.stores import open_store
from passerelle.ingest.service import ingest_fhir


@pytest.fixture(scope="module")
def vocab_dir(tmp_path_factory):
    """CONCEPT and CONCEPT_RELATIONSHIP of the Synthea27Nj vocabulary shard."""
    z = shared("eunomia-synthea27nj-5.4", "Synthea27Nj_5.4.zip")
    out = tmp_path_factory.mktemp("vocab")
    with zipfile.ZipFile(z) as zf:
        for name in ("CONCEPT.csv", "CONCEPT_RELATIONSHIP.csv"):
            (out / name).write_bytes(zf.read(name))
    return out


def test_codes_map_through_the_store_vocabulary(duckdb_store_url, settings, tmp_path, vocab_dir):
    with open_store(duckdb_store_url, settings) as st:
        assert load_folder(st, vocab_dir).ok
    bundles = sorted(shared("synthea-fhir-r4-smart", "bundles").glob("*.json.gz"))[:10]
    report = ingest_fhir(bundles, duckdb_store_url, "v", tmp_path / "q", settings=settings)
    assert report.vocabulary_loaded
    assert report.quarantine_total == 0
    cov = {(c["table"], c["vocabulary"]): c for c in report.to_dict()["mapping_coverage"]}
    assert cov[("measurement", "LOINC")]["records_mapped"] > 0
    assert cov[("condition_occurrence", "SNOMED")]["records_mapped"] > 0
    assert cov[("drug_exposure", "RxNorm")]["records_mapped"] > 0
    with open_store(duckdb_store_url, settings) as st:
        # Body height (LOINC 8302-2) maps to a standard Measurement concept with its unit (cm)
        rows = st.query(
            "SELECT DISTINCT m.measurement_concept_id, c.domain_id, m.unit_source_value,"
            " m.unit_concept_id > 0 FROM main.measurement m JOIN main.concept c"
            " ON c.concept_id = m.measurement_concept_id WHERE m.measurement_source_value = '8302-2'"
        ).rows
        assert rows and all(r[1] == "Measurement" and r[2] == "cm" and r[3] for r in rows)
        # unmapped codes keep their source value with concept_id 0
        unmapped = st.query(
            "SELECT count(*) FROM main.condition_occurrence WHERE condition_concept_id = 0"
            " AND condition_source_value IS NULL"
        ).rows[0][0]
        assert unmapped == 0
        # a mapped observation code whose standard domain is Observation lands in OBSERVATION
        dom = st.query(
            "SELECT DISTINCT c.domain_id FROM main.observation o JOIN main.concept c"
            " ON c.concept_id = o.observation_concept_id"
        ).rows
        assert {d for (d,) in dom} <= {
            "Observation",
            "Condition",
            "Procedure",
            "Drug",
            "Device",
            "Meas Value",
            "Spec Anatomic Site",
            "Race",
            "Gender",
            "Type Concept",
            "Unit",
            "Provider",
            "Visit",
            "Metadata",
        }
        assert ("Measurement",) not in dom
