from __future__ import annotations

from collections import defaultdict

from ingest_expected import resources
from ingest_helpers import shared

from passerelle.cdm.stores import open_store
from passerelle.ingest.ids import IdMaker
from passerelle.ingest.service import ingest_fhir

# Where each resource type's start and (optional) end dates sit, per docs/fhir-to-omop.md.
START_END = {
    "Encounter": (("period", "start"), ("period", "end")),
    "Condition": (("onsetDateTime",), ("abatementDateTime",)),
    "MedicationRequest": (("authoredOn",), None),
    "Immunization": (("occurrenceDateTime",), None),
    "Procedure": (("performedPeriod", "start"), ("performedPeriod", "end")),
    "Device": (("manufactureDate",), None),
    "AllergyIntolerance": (("recordedDate",), None),
}


def _get(res, path):
    for p in path:
        res = res.get(p) if isinstance(res, dict) else None
    return res[:10] if isinstance(res, str) else None


def test_observation_period_spans_each_persons_events(duckdb_store_url, settings, tmp_path):
    folder = shared("synthea-bulk-ndjson-10", "ndjson")
    ingest_fhir([folder], duckdb_store_url, "op", tmp_path / "q", settings=settings)
    spans: dict[str, list[str]] = defaultdict(list)
    for res in resources(folder):
        rule = START_END.get(res["resourceType"])
        if not rule:
            continue
        who = (res.get("subject") or res.get("patient"))["reference"].split("/")[-1]
        start = (
            _get(res, rule[0])
            or _get(res, ("performedDateTime",))
            or _get(res, ("onsetPeriod", "start"))
        )
        spans[who].append(start)
        end = _get(res, rule[1]) if rule[1] else None
        if end:
            spans[who].append(end)
    ids = IdMaker("op")
    expected = {ids.id_for("Patient", p): (min(d), max(d)) for p, d in spans.items()}
    with open_store(duckdb_store_url, settings) as st:
        got = {
            pid: (str(s), str(e))
            for pid, s, e in st.query(
                "SELECT person_id, observation_period_start_date, observation_period_end_date"
                " FROM main.observation_period"
            ).rows
        }
        outside = st.query(
            "SELECT count(*) FROM main.condition_occurrence c JOIN main.observation_period p"
            " USING (person_id) WHERE c.condition_start_date < p.observation_period_start_date"
            " OR c.condition_start_date > p.observation_period_end_date"
        ).rows[0][0]
    assert got == expected
    assert outside == 0
