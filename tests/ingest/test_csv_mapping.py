from __future__ import annotations

import csv

import pytest
from ingest_helpers import shared

from passerelle.cdm.stores import open_store
from passerelle.errors import UserError
from passerelle.ingest.csvmap import ingest_csv, load_mapping


def _rows(folder, name):
    with (folder / name).open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_synthea_csv_gives_one_person_per_patient_row(store_url, settings):
    folder = shared("synthea-csv-dbt-27", "csv")
    report = ingest_csv(folder, "synthea", store_url, "csv", settings=settings)
    assert report["rejected_by_reason"] == {}
    patients = _rows(folder, "patients.csv")
    obs = _rows(folder, "observations.csv")
    with open_store(store_url, settings) as st:
        counts = st.counts()
        n_person_ids = st.query(
            f"SELECT count(DISTINCT person_id) FROM {st.qualified('person')}"
        ).rows[0][0]
    assert counts["person"] == n_person_ids == len(patients) == 27
    assert counts["death"] == sum(1 for p in patients if p["DEATHDATE"])
    assert counts["visit_occurrence"] == len(_rows(folder, "encounters.csv"))
    assert counts["condition_occurrence"] == len(_rows(folder, "conditions.csv"))
    assert counts["drug_exposure"] == len(_rows(folder, "medications.csv")) + len(
        _rows(folder, "immunizations.csv")
    )
    lab = [
        o for o in obs if o["CATEGORY"] in ("laboratory", "vital-signs") or o["TYPE"] == "numeric"
    ]
    assert counts["measurement"] == len(lab)
    assert counts["observation"] == len(obs) - len(lab) + len(_rows(folder, "allergies.csv"))
    assert counts["procedure_occurrence"] == len(_rows(folder, "procedures.csv")) + len(
        _rows(folder, "imaging_studies.csv")
    )
    assert counts["device_exposure"] == len(_rows(folder, "devices.csv"))
    assert counts["care_site"] == len(_rows(folder, "organizations.csv"))
    assert counts["observation_period"] == 27


def test_csv_ingest_is_idempotent(duckdb_store_url, settings):
    folder = shared("synthea-csv-dbt-27", "csv")
    ingest_csv(folder, "synthea", duckdb_store_url, "csv", settings=settings)
    with open_store(duckdb_store_url, settings) as st:
        first = st.counts()
    ingest_csv(folder, "synthea", duckdb_store_url, "csv", settings=settings)
    with open_store(duckdb_store_url, settings) as st:
        assert st.counts() == first


def test_a_hospital_mapping_file(duckdb_store_url, settings, tmp_path):
    (tmp_path / "export").mkdir()
    (tmp_path / "export" / "pat.csv").write_text("ipp,sexe,naissance\n1,F,1970-05-02\n2,M,1980\n")
    (tmp_path / "export" / "sejours.csv").write_text(
        "ipp,num,entree,sortie\n1,a,2020-01-02,2020-01-05\n3,b,2020-01-02,\n"
    )
    mapping = tmp_path / "hopital.yaml"
    mapping.write_text(
        """
tables:
  - file: pat.csv
    table: person
    key: {type: Patient, columns: [ipp]}
    columns:
      gender_concept_id: {values: {F: 8532, M: 8507}, column: sexe, default: 0}
      year_of_birth: {year: naissance}
      race_concept_id: {constant: 0}
      ethnicity_concept_id: {constant: 0}
      person_source_value: {pseudonym: ipp}
  - file: sejours.csv
    table: visit_occurrence
    key: {type: Encounter, columns: [num]}
    person: ipp
    columns:
      visit_concept_id: {constant: 9201}
      visit_start_date: {date: entree}
      visit_end_date: {coalesce: [{date: sortie}, {date: entree}]}
      visit_type_concept_id: {constant: 32817}
"""
    )
    report = ingest_csv(tmp_path / "export", str(mapping), duckdb_store_url, "h", settings=settings)
    assert report["rows_per_table"]["person"] == 2
    assert report["rows_per_table"]["visit_occurrence"] == 1
    assert sum(report["rejected_by_reason"].values()) == 1  # visit of an unknown person


def test_a_bad_mapping_names_the_field(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "tables:\n  - file: x.csv\n    table: person\n    key: {type: P, columns: [a]}\n"
        "    columns:\n      nope: {column: a}\n"
    )
    with pytest.raises(UserError, match=r"tables\[0\]\.columns\.nope"):
        load_mapping(str(bad))
