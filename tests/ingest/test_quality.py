from __future__ import annotations

import json

import pytest

from passerelle.cdm.load import load_folder
from passerelle.cdm.stores import open_store
from passerelle.ingest.quality.html import render_html
from passerelle.ingest.quality.run import run_checks
from passerelle.ingest.quality.service import write_report


@pytest.fixture
def gibleed_report(store_url, gibleed_dir):
    with open_store(store_url) as st:
        assert load_folder(st, gibleed_dir).ok
        return run_checks(st)


def test_quality_flags_the_known_gibleed_quirks(gibleed_report):
    r = gibleed_report
    # OBSERVATION_PERIOD rows naming a person absent from PERSON (eunomia-gibleed/SOURCE.md)
    c = r.failed("fkPerson", "observation_period")
    assert (c.failing, c.denominator, c.status.value) == (2649, 5343, "fail")
    # condition_occurrence rows starting outside every observation period
    c = r.failed("withinObservationPeriod", "condition_occurrence")
    assert (c.failing, c.denominator, c.status.value) == (85, 65332, "fail")
    # duplicate primary keys: rows vs distinct ids
    for table, rows, distinct in (
        ("drug_exposure", 67707, 63323),
        ("measurement", 44053, 41870),
        ("observation", 1477, 1471),
    ):
        c = r.failed("isPrimaryKey", table)
        assert (c.denominator, c.failing, c.status.value) == (rows, rows - distinct, "fail")
        assert c.detail == f"{rows} rows, {distinct} distinct ids"
    # what the dataset gets right passes
    assert r.failed("isPrimaryKey", "person").status.value == "pass"
    assert r.failed("fkPerson", "condition_occurrence").failing == 0
    assert r.failed("plausibleStartBeforeEnd", "observation_period").status.value == "pass"
    assert r.failed("plausibleAge", "person").status.value == "pass"
    assert r.rows["person"] == 2694
    # every check carries a threshold, a status and a failing-row count
    for c in r.checks:
        assert c.status.value in ("pass", "fail", "not applicable")
        assert c.failing >= 0 and c.threshold_pct >= 0
    # coverage per domain and source vocabulary; records per year
    cov = {(c["table"], c["source_vocabulary"]) for c in r.coverage}
    assert ("condition_occurrence", "SNOMED") in cov
    assert sum(n for _, n in r.per_year["condition_occurrence"]) == 65332


def test_quality_report_files(duckdb_store_url, gibleed_dir, tmp_path):
    with open_store(duckdb_store_url) as st:
        load_folder(st, gibleed_dir)
    summary = write_report(duckdb_store_url, tmp_path / "q.json")
    data = json.loads((tmp_path / "q.json").read_text())
    assert data["summary"] == summary and summary["failed"] > 0
    write_report(duckdb_store_url, tmp_path / "q.html")
    html = (tmp_path / "q.html").read_text()
    assert html.count("<svg") > 10
    assert "http://" not in html and "https://" not in html and "<script" not in html
    assert "2,649" in html


def test_quality_on_freshly_ingested_fhir_passes_structural_checks(duckdb_store_url, tmp_path):
    from ingest_helpers import shared

    from passerelle.config import Settings
    from passerelle.ingest.service import ingest_fhir

    ingest_fhir(
        [shared("synthea-bulk-ndjson-10", "ndjson")],
        duckdb_store_url,
        "q",
        tmp_path / "q",
        settings=Settings(data_dir=tmp_path / "d"),
    )
    with open_store(duckdb_store_url) as st:
        r = run_checks(st)
        html = render_html(r)
    bad = [
        (c.check, c.table, c.field)
        for c in r.checks
        if c.status.value == "fail"
        and c.check in ("isRequired", "isPrimaryKey", "fkPerson", "withinObservationPeriod")
    ]
    assert bad == []
    assert "<svg" in html
