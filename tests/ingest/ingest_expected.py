"""Row counts per CDM table computed straight from FHIR JSON, independently of the mapper
code (only the documented rules of docs/fhir-to-omop.md, with no vocabulary loaded)."""

from __future__ import annotations

import gzip
from collections import Counter
from pathlib import Path

import orjson

MEASUREMENT_CATEGORIES = {"laboratory", "vital-signs"}
PLACE = ("city", "postalCode", "country", "state")


def resources(folder: Path):
    for path in sorted(folder.rglob("*")):
        name = path.name
        opener = gzip.open if name.endswith(".gz") else open
        if name.startswith("log.ndjson"):
            continue
        if ".ndjson" in name:
            with opener(path, "rb") as fh:
                for line in fh:
                    if line.strip():
                        yield orjson.loads(line)
        elif ".json" in name:
            with opener(path, "rb") as fh:
                doc = orjson.loads(fh.read())
            for entry in doc.get("entry", []):
                yield entry["resource"]


def _cats(res):
    return {c["coding"][0]["code"] for c in res.get("category", []) if c.get("coding")}


def expected_counts(folder: Path) -> tuple[Counter, Counter]:
    """(rows per CDM table, resources per type)."""
    by_type: Counter = Counter()
    distinct: dict[str, set] = {"Organization": set(), "Practitioner": set(), "Location": set()}
    org_places: set = set()
    rows: Counter = Counter()
    persons_with_events: set = set()
    for res in resources(folder):
        t = res["resourceType"]
        by_type[t] += 1
        subject = (res.get("subject") or res.get("patient") or {}).get("reference", "")
        pid = subject.rsplit(":", 1)[-1].rsplit("/", 1)[-1]
        if t == "Patient":
            rows["person"] += 1
            if "deceasedDateTime" in res:
                rows["death"] += 1
            addr = (res.get("address") or [{}])[0]
            if any(addr.get(k) for k in PLACE):
                rows["location"] += 1
        elif t in distinct:
            distinct[t].add(res["id"])
            addr = res.get("address")
            addr = addr[0] if isinstance(addr, list) and addr else addr
            if t == "Organization" and addr and any(addr.get(k) for k in PLACE):
                org_places.add(res["id"])
        elif t == "Encounter":
            rows["visit_occurrence"] += 1
        elif t == "Condition":
            rows["condition_occurrence"] += 1
        elif t in (
            "MedicationRequest",
            "MedicationStatement",
            "MedicationAdministration",
            "Immunization",
        ):
            rows["drug_exposure"] += 1
        elif t in ("Procedure", "ImagingStudy"):
            rows["procedure_occurrence"] += 1
        elif (t == "Device" and "patient" in res) or t == "DeviceUseStatement":
            rows["device_exposure"] += 1
        elif t == "AllergyIntolerance":
            rows["observation"] += 1
        elif t == "Observation":
            comps = res.get("component", [])
            parts = [res] if any(k.startswith("value") for k in res) or not comps else []
            for part in [*parts, *comps]:
                lab = _cats(res) & MEASUREMENT_CATEGORIES or "valueQuantity" in part
                rows["measurement" if lab else "observation"] += 1
        else:
            continue
        directory = t in ("Patient", "Organization", "Practitioner", "Location")
        if not directory and pid and (t != "Device" or "patient" in res):
            persons_with_events.add(pid)
    rows["care_site"] = len(distinct["Organization"])
    rows["provider"] = len(distinct["Practitioner"])
    rows["location"] += len(org_places) + len(distinct["Location"])
    rows["observation_period"] = len(persons_with_events)
    return +rows, by_type
