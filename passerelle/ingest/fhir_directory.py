"""Patient, Organization, Practitioner, Location (and the Medication / Device look-ups):
the resources other resources point at. Rules in docs/fhir-to-omop.md."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from passerelle.ingest import concepts as C
from passerelle.ingest.context import Context, Quarantine
from passerelle.ingest.fhir_events import _obj

NPI = "http://hl7.org/fhir/sid/us-npi"


def _str(v: Any) -> str | None:
    return v if isinstance(v, str) and v else None


def _location_row(ctx: Context, loc_id: int, addr: dict[str, Any], with_street: bool) -> dict:
    state = _str(addr.get("state"))
    row = {
        "location_id": loc_id,
        "city": _str(addr.get("city")),
        "state": state if state and len(state) <= 2 else None,
        "zip": _str(addr.get("postalCode")),
        "country_source_value": _str(addr.get("country")),
    }
    if with_street:
        lines: Sequence[Any] = addr.get("line") or ()
        row["address_1"] = _str(lines[0]) if lines else None
        row["address_2"] = _str(lines[1]) if len(lines) > 1 else None
    return row


def _has_place(addr: Any) -> bool:
    return isinstance(addr, dict) and any(
        addr.get(k) for k in ("city", "postalCode", "country", "state")
    )


def _omb(res: dict[str, Any], url: str) -> str | None:
    for ext in res.get("extension") or ():
        if isinstance(ext, dict) and ext.get("url") == url:
            for sub in ext.get("extension") or ():
                if isinstance(sub, dict) and sub.get("url") == "ombCategory":
                    coding = sub.get("valueCoding") or {}
                    return _str(coding.get("code"))
    return None


def patient(res: dict[str, Any], ctx: Context) -> None:
    rid = res["id"]
    birth = res.get("birthDate")
    if birth is None:
        raise Quarantine("missing birthDate")
    bdate, _ = ctx.when(birth, "birthDate")
    pid = ctx.id("Patient", rid)
    gender = _str(res.get("gender"))
    race = _omb(res, C.US_CORE_RACE)
    ethnicity = _omb(res, C.US_CORE_ETHNICITY)
    row = {
        "person_id": pid,
        "gender_concept_id": C.GENDER.get(gender or "", 0),
        "year_of_birth": bdate.year,
        "month_of_birth": bdate.month if len(birth) >= 7 else None,
        "day_of_birth": bdate.day if len(birth) >= 10 else None,
        "race_concept_id": C.RACE.get(race or "", 0),
        "ethnicity_concept_id": C.ETHNICITY.get(ethnicity or "", 0),
        "person_source_value": ctx.pseudo(rid),
        "gender_source_value": gender,
        "gender_source_concept_id": 0,
        "race_source_value": race,
        "race_source_concept_id": 0,
        "ethnicity_source_value": ethnicity,
        "ethnicity_source_concept_id": 0,
    }
    addresses = res.get("address") or ()
    if addresses and _has_place(addresses[0]):
        loc = ctx.id("Patient.address", rid)
        row["location_id"] = loc
        ctx.batch.add("location", _location_row(ctx, loc, addresses[0], with_street=False))
    if "deceasedDateTime" in res:
        ddate, dtime = ctx.when(res["deceasedDateTime"], "deceasedDateTime")
        ctx.batch.add(
            "death",
            {
                "person_id": pid,
                "death_date": ddate,
                "death_datetime": dtime,
                "death_type_concept_id": C.EHR,
            },
        )
    elif res.get("deceasedBoolean") is True:
        ctx.notes["Patient deceased without a date (no death row)"] += 1
    ctx.batch.add("person", row)
    ctx.persons_touched.add(pid)


def organization(res: dict[str, Any], ctx: Context) -> None:
    rid = res["id"]
    types = res.get("type") or ()
    pos = None
    if types and isinstance(types[0], dict):
        codings = types[0].get("coding") or ()
        pos = _str(codings[0].get("code")) if codings else _str(types[0].get("text"))
    row = {
        "care_site_id": ctx.id("Organization", rid),
        "care_site_name": _str(res.get("name")),
        "place_of_service_concept_id": 0,
        "care_site_source_value": rid,
        "place_of_service_source_value": pos,
    }
    addresses = res.get("address") or ()
    if addresses and _has_place(addresses[0]):
        loc = ctx.id("Organization.address", rid)
        row["location_id"] = loc
        ctx.batch.add("location", _location_row(ctx, loc, addresses[0], with_street=True))
    ctx.batch.add("care_site", row)


def practitioner(res: dict[str, Any], ctx: Context) -> None:
    rid = res["id"]
    name = None
    names = res.get("name") or ()
    if names and isinstance(names[0], dict):
        n = names[0]
        parts = [*(n.get("given") or ()), n.get("family") or ""]
        name = " ".join(p for p in parts if isinstance(p, str) and p) or _str(n.get("text"))
    npi = None
    for ident in res.get("identifier") or ():
        if isinstance(ident, dict) and ident.get("system") == NPI:
            npi = _str(ident.get("value"))
    gender = _str(res.get("gender"))
    ctx.batch.add(
        "provider",
        {
            "provider_id": ctx.id("Practitioner", rid),
            "provider_name": name,
            "npi": npi,
            "gender_concept_id": C.GENDER.get(gender or "", 0),
            "gender_source_value": gender,
            "provider_source_value": rid,
            "specialty_concept_id": 0,
        },
    )


def location(res: dict[str, Any], ctx: Context) -> None:
    rid = res["id"]
    addr = _obj(res.get("address"))
    row = _location_row(ctx, ctx.id("Location", rid), addr, with_street=True)
    row["location_source_value"] = _str(res.get("name"))
    pos = res.get("position")
    if isinstance(pos, dict):
        row["latitude"] = pos.get("latitude")
        row["longitude"] = pos.get("longitude")
    ctx.batch.add("location", row)


def medication(res: dict[str, Any], ctx: Context) -> None:
    ctx.codes[("Medication", res["id"])] = res.get("code") or {}


def device_index(res: dict[str, Any], ctx: Context) -> None:
    ctx.codes[("Device", res["id"])] = res.get("type") or {}


# type → (first-pass mapper). Device gives its rows in the second pass (it needs the Patient).
DIRECTORY_MAPPERS = {
    "Patient": patient,
    "Organization": organization,
    "Practitioner": practitioner,
    "Location": location,
    "Medication": medication,
    "Device": device_index,
}
