"""The FHIR NDJSON generator: deterministic, valid FHIR R4, and ingested with nothing refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from passerelle.config import Settings
from passerelle.demo.fhir import HOSPITALS, RESOURCE_TYPES, FhirConfig, write_ndjson
from passerelle.demo.hospitals import build_hospital, write_vocabulary_csv

R4B_MODULES = {
    "Organization": "organization",
    "Patient": "patient",
    "Encounter": "encounter",
    "Condition": "condition",
    "Observation": "observation",
    "MedicationRequest": "medicationrequest",
    "Procedure": "procedure",
    "Immunization": "immunization",
}


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.ndjson"))}


def test_the_same_seed_gives_the_same_files_and_sites_differ(tmp_path):
    a = write_ndjson(FhirConfig(HOSPITALS[0], 60, seed=7), tmp_path / "a")
    b = write_ndjson(FhirConfig(HOSPITALS[0], 60, seed=7), tmp_path / "b")
    assert a == b
    assert _files(tmp_path / "a") == _files(tmp_path / "b")
    write_ndjson(FhirConfig(HOSPITALS[1], 60, seed=7), tmp_path / "c")
    assert _files(tmp_path / "a")["Patient.ndjson"] != _files(tmp_path / "c")["Patient.ndjson"]
    write_ndjson(FhirConfig(HOSPITALS[0], 60, seed=8), tmp_path / "d")
    assert _files(tmp_path / "a")["Patient.ndjson"] != _files(tmp_path / "d")["Patient.ndjson"]
    assert set(a) == set(RESOURCE_TYPES) and all(a.values())


def test_every_resource_parses_as_fhir_r4(tmp_path):
    fhir = pytest.importorskip("fhir.resources.R4B")
    import importlib

    write_ndjson(FhirConfig(HOSPITALS[2], 40, seed=3), tmp_path)
    postal = set()
    for kind, module in R4B_MODULES.items():
        model = getattr(importlib.import_module(f"{fhir.__name__}.{module}"), kind)
        lines = (tmp_path / f"{kind}.ndjson").read_text(encoding="utf-8").splitlines()
        assert lines
        for line in lines:
            data = json.loads(line)
            assert data["resourceType"] == kind
            model.model_validate(data)
            if kind == "Patient":
                postal.add(data["address"][0]["postalCode"])
    communes = {c.postal_code for c in HOSPITALS[2].communes}
    assert postal <= communes and len(postal) > 1


def test_ingest_through_the_fhir_pipeline_maps_every_code(tmp_path):
    settings = Settings(data_dir=tmp_path / "data")
    vocab = tmp_path / "vocab"
    write_vocabulary_csv(vocab)
    built = build_hospital(HOSPITALS[0], tmp_path / "demo", vocab, settings, 80, 42)
    assert built.ok
    assert built.quarantined == 0
    assert built.loaded == built.resources
    assert built.rows["person"] == 80
    for row in built.coverage:
        if row["table"] == "visit_occurrence":
            continue  # encounters carry no type code: the visit concept comes from the class
        assert row["records_mapped"] == row["records"], row
    from passerelle.cdm.stores import open_store

    with open_store(built.store_url) as store:
        counts = store.counts()
        zips = store.query(f"SELECT DISTINCT zip FROM {store.qualified('location')}").rows
    assert counts["drug_exposure"] > 0 and counts["measurement"] > 0
    assert {z for (z,) in zips} & {c.postal_code for c in HOSPITALS[0].communes}
