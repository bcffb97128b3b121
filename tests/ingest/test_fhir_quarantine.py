from __future__ import annotations

import gzip
import json

import orjson
from ingest_helpers import shared

from passerelle.cdm.stores import open_store
from passerelle.ingest.service import exit_code, ingest_fhir


def _write_broken_copy(tmp_path):
    """Condition.000.ndjson with five bad lines put at known places (1-based line numbers)."""
    src = shared("synthea-bulk-ndjson-10", "ndjson")
    with gzip.open(src / "Condition.000.ndjson.gz") as fh:
        lines = fh.read().splitlines()
    out = tmp_path / "in"
    out.mkdir()
    with gzip.open(src / "Patient.000.ndjson.gz") as fh:
        (out / "Patient.000.ndjson").write_bytes(fh.read())
    bad = {
        3: b'{"resourceType": "Condition", "id": "x1", "subject": {"reference": "Pat',  # broken JSON
        10: b'{"resourceType": "Condition", "id": "x2", "code": {}, "onsetDateTime": "2020-01-01"}',
        20: b'{"resourceType": "Condition", "id": "x3", "subject": {"reference": "Patient/nobody"},'
        b' "onsetDateTime": "2020-01-01"}',
        30: b'{"resourceType": "NotAType", "id": "x4"}',
        40: json.dumps(
            {**orjson.loads(lines[0]), "id": "x5", "onsetDateTime": "20xx-13-45"}
        ).encode(),
    }
    body = list(lines)
    for n in sorted(bad):
        body.insert(n - 1, bad[n])
    (out / "Condition.000.ndjson").write_bytes(b"\n".join(body) + b"\n")
    return out, bad, len(lines)


def test_broken_lines_are_quarantined_exactly(duckdb_store_url, settings, tmp_path):
    folder, bad, good = _write_broken_copy(tmp_path)
    q = tmp_path / "q.ndjson"
    report = ingest_fhir([folder], duckdb_store_url, "s", q, settings=settings)
    records = [orjson.loads(x) for x in q.read_bytes().splitlines()]
    assert sorted(r["line"] for r in records) == sorted(bad)
    assert {r["file"] for r in records} == {"Condition.000.ndjson"}
    reasons = {r["line"]: r["reason"] for r in records}
    assert reasons[3] == "broken JSON line"
    assert reasons[10] == "missing subject"
    assert reasons[20] == "unresolved reference at subject"
    assert reasons[30] == "missing or unknown resourceType"
    assert reasons[40] == "unparseable date at onsetDateTime"
    # no patient value (ids, dates, codes) in any reason
    text = q.read_text()
    assert "nobody" not in text and "20xx" not in text and "x5" not in text
    assert report.quarantine_total == 5
    with open_store(duckdb_store_url, settings) as st:
        assert st.row_count("condition_occurrence") == good
    assert exit_code(report, strict=False) == 0
    assert exit_code(report, strict=True) == 1


def test_nothing_loaded_exits_non_zero(duckdb_store_url, settings, tmp_path):
    (tmp_path / "in").mkdir()
    f = tmp_path / "in" / "junk.ndjson"
    f.write_bytes(b"{not json\n")
    report = ingest_fhir([f], duckdb_store_url, "s", tmp_path / "q", settings=settings)
    assert exit_code(report, strict=False) == 1


def test_cli_ingest_fhir_writes_a_report(duckdb_store_url, tmp_path, monkeypatch):
    from passerelle.cli import main
    from passerelle.config import get_settings

    monkeypatch.setenv("PASSERELLE_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    folder = shared("synthea-bulk-ndjson-10", "ndjson")
    rep = tmp_path / "r.json"
    try:
        main(["ingest", "fhir", str(folder), "--store", duckdb_store_url, "--report", str(rep)])
    except SystemExit as exc:
        assert exc.code == 0
    finally:
        get_settings.cache_clear()
    data = json.loads(rep.read_text())
    assert data["by_resource_type"]["Patient"]["loaded"] == 13
    assert data["rows_per_table"]["person"] == 13
    assert data["vocabulary_loaded"] is False


def test_broken_lines_in_directory_and_mixed_files_are_quarantined_once(
    duckdb_store_url, settings, tmp_path
):
    src = shared("synthea-bulk-ndjson-10", "ndjson")
    with gzip.open(src / "Patient.000.ndjson.gz") as fh:
        patients = fh.read().splitlines()
    with gzip.open(src / "Condition.000.ndjson.gz") as fh:
        conditions = fh.read().splitlines()
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "Patient.000.ndjson").write_bytes(b"\n".join([patients[0], b"{broken", b"[1]"]))
    # a mixed file (its name names no type): a patient, its condition, a broken line
    cond = next(c for c in conditions if patients[0].split(b'"id":"')[1][:36] in c)
    mixed = [patients[1], b'{"resourceType": "Nope"}', cond, b"{broken"]
    (folder / "export.ndjson").write_bytes(b"\n".join(mixed))
    q = tmp_path / "q.ndjson"
    report = ingest_fhir([folder], duckdb_store_url, "s", q, settings=settings)
    records = sorted((r["file"], r["line"]) for r in map(orjson.loads, q.read_bytes().splitlines()))
    assert records == [
        ("Patient.000.ndjson", 2),
        ("Patient.000.ndjson", 3),
        ("export.ndjson", 2),
        ("export.ndjson", 4),
    ]
    assert report.loaded["Patient"] == 2 and report.loaded["Condition"] == 1
