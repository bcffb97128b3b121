from __future__ import annotations

import os
import stat

import pytest
from ingest_expected import expected_counts
from ingest_helpers import shared

from passerelle.cdm.schema import TABLES_BY_NAME
from passerelle.cdm.stores import open_store
from passerelle.ingest.ids import key_path
from passerelle.ingest.service import ingest_fhir

CLINICAL = [t for t, spec in TABLES_BY_NAME.items() if not spec.vocabulary]


def _counts(url: str, settings) -> dict[str, int]:
    with open_store(url, settings) as st:
        return {t: n for t, n in st.counts().items() if n and t in CLINICAL}


def test_smart_bundles_all_tables_match_the_json(store_url, settings, tmp_path):
    folder = shared("synthea-fhir-r4-smart", "bundles")
    report = ingest_fhir([folder], store_url, "siteA", tmp_path / "q.ndjson", settings=settings)
    rows, by_type = expected_counts(folder)
    assert report.quarantine_total == 0
    assert not (tmp_path / "q.ndjson").exists()
    assert report.read["Patient"] == by_type["Patient"] == 120
    assert report.loaded["Observation"] == by_type["Observation"] == 16231
    counts = _counts(store_url, settings)
    assert counts["person"] == by_type["Patient"] == 120
    assert counts == dict(rows)
    assert report.skipped["Claim"] == by_type["Claim"]
    assert report.vocabulary_loaded is False


def test_bulk_ndjson_all_tables_match_the_json(store_url, settings, tmp_path):
    folder = shared("synthea-bulk-ndjson-10", "ndjson")
    report = ingest_fhir([folder], store_url, "siteB", tmp_path / "q.ndjson", settings=settings)
    rows, by_type = expected_counts(folder)
    assert report.quarantine_total == 0
    counts = _counts(store_url, settings)
    assert counts["person"] == by_type["Patient"] == 13
    assert counts == dict(rows)
    assert report.skipped_files == [
        {"file": "log.ndjson.gz", "reason": "Bulk Data export log, not resources"}
    ]
    assert report.skipped["DocumentReference"] == 1215


def test_ingesting_twice_changes_nothing(duckdb_store_url, settings, tmp_path):
    folder = shared("synthea-bulk-ndjson-10", "ndjson")
    ingest_fhir([folder], duckdb_store_url, "s", tmp_path / "q1", settings=settings)
    first = _counts(duckdb_store_url, settings)
    with open_store(duckdb_store_url, settings) as st:
        ids1 = st.query(
            "SELECT sum(person_id), sum(visit_occurrence_id) FROM main.visit_occurrence"
        ).rows
    ingest_fhir([folder], duckdb_store_url, "s", tmp_path / "q2", settings=settings)
    assert _counts(duckdb_store_url, settings) == first
    with open_store(duckdb_store_url, settings) as st:
        ids2 = st.query(
            "SELECT sum(person_id), sum(visit_occurrence_id) FROM main.visit_occurrence"
        ).rows
    assert ids1 == ids2


def test_person_source_value_is_a_keyed_hash(duckdb_store_url, settings, tmp_path):
    folder = shared("synthea-bulk-ndjson-10", "ndjson")
    ingest_fhir(
        [folder / "Patient.000.ndjson.gz"], duckdb_store_url, "k", tmp_path / "q", settings=settings
    )
    key = key_path(settings.data_dir, "k")
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    with open_store(duckdb_store_url, settings) as st:
        values = [r[0] for r in st.query("SELECT person_source_value FROM main.person").rows]
    import gzip

    with gzip.open(folder / "Patient.000.ndjson.gz") as fh:
        ids = [line.split(b'"id":"')[1].split(b'"')[0].decode() for line in fh]
    assert len(values) == 13 and all(len(v) == 48 for v in values)
    assert not set(values) & set(ids)


@pytest.mark.parametrize("site", ["a", "b"])
def test_ids_depend_on_the_site(duckdb_store_url, settings, tmp_path, site):
    folder = shared("synthea-bulk-ndjson-10", "ndjson")
    ingest_fhir(
        [folder / "Patient.000.ndjson.gz"],
        duckdb_store_url,
        site,
        tmp_path / "q",
        settings=settings,
    )
    from passerelle.ingest.ids import IdMaker

    with open_store(duckdb_store_url, settings) as st:
        got = {r[0] for r in st.query("SELECT person_id FROM main.person").rows}
    assert IdMaker(site).id_for("Patient", "129c6ac7-8d06-89de-ad63-0204a93e76c3") in got


def test_worker_processes_give_the_same_rows(tmp_path, settings):
    files = sorted(shared("synthea-fhir-r4-smart", "bundles").glob("*.json.gz"))[:12]
    sums = []
    for workers in (1, 2):
        url = f"duckdb:///{tmp_path / f'w{workers}.duckdb'}"
        report = ingest_fhir(
            files, url, "w", tmp_path / "q", batch_size=1500, settings=settings, workers=workers
        )
        assert report.quarantine_total == 0
        with open_store(url, settings) as st:
            sums.append(
                (
                    _counts(url, settings),
                    st.query(
                        "SELECT sum(measurement_id % 1000003), sum(person_id % 1000003)"
                        " FROM main.measurement"
                    ).rows,
                    st.query("SELECT count(*) FROM main.care_site").rows,
                )
            )
    assert sums[0] == sums[1]


def test_workers_fall_back_to_disk_when_the_ram_spool_refuses(tmp_path, settings, monkeypatch):
    """A full or missing /dev/shm (Docker gives 64 MB) must not fail the load: the workers'
    IPC files go to a folder on disk instead, and the rows are the same."""
    from passerelle.ingest import parallel

    files = sorted(shared("synthea-fhir-r4-smart", "bundles").glob("*.json.gz"))[:4]
    one = f"duckdb:///{tmp_path / 'one.duckdb'}"
    ingest_fhir(files, one, "w", tmp_path / "q1", settings=settings)
    monkeypatch.setattr(parallel, "_spool_dir", lambda: str(tmp_path / "no-such-spool"))
    two = f"duckdb:///{tmp_path / 'two.duckdb'}"
    report = ingest_fhir(files, two, "w", tmp_path / "q2", settings=settings, workers=2)
    assert report.quarantine_total == 0
    assert _counts(two, settings) == _counts(one, settings)


def test_a_corrected_resource_replaces_its_rows(duckdb_store_url, settings, tmp_path):
    import gzip

    import orjson

    src = shared("synthea-bulk-ndjson-10", "ndjson")
    with gzip.open(src / "Patient.000.ndjson.gz") as fh:
        (tmp_path / "Patient.000.ndjson").write_bytes(fh.read())
    with gzip.open(src / "Condition.000.ndjson.gz") as fh:
        lines = fh.read().splitlines()
    first = orjson.loads(lines[0])
    first.pop("encounter", None)
    cond = tmp_path / "Condition.000.ndjson"
    cond.write_bytes(orjson.dumps(first) + b"\n")
    ingest_fhir([tmp_path], duckdb_store_url, "c", tmp_path / "q1", settings=settings)
    first["code"]["coding"][0]["code"] = "999999"
    first["onsetDateTime"] = "2001-02-03T04:05:06Z"
    cond.write_bytes(orjson.dumps(first) + b"\n")
    ingest_fhir([tmp_path], duckdb_store_url, "c", tmp_path / "q2", settings=settings)
    with open_store(duckdb_store_url, settings) as st:
        rows = st.query(
            "SELECT condition_source_value, condition_start_date FROM main.condition_occurrence"
        ).rows
    assert [(r[0], str(r[1])) for r in rows] == [("999999", "2001-02-03")]
