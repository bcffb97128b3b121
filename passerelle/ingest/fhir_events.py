"""Clinical FHIR resources → CDM event rows. Rules in docs/fhir-to-omop.md."""

from __future__ import annotations

from typing import Any

from passerelle.ingest import concepts as C
from passerelle.ingest import fhirtime
from passerelle.ingest.context import Context, Quarantine

_DATES = fhirtime._CACHE  # text -> (date, datetime) of the values already parsed


def _first(items: Any) -> Any:
    return items[0] if isinstance(items, list) and items else None


def _obj(value: Any) -> dict[str, Any]:
    """A FHIR element that must be an object, or {} when it is absent or malformed."""
    return value if isinstance(value, dict) else {}


def _code(cc: Any) -> str | None:
    if isinstance(cc, dict):
        coding = _first(cc.get("coding"))
        if isinstance(coding, dict) and isinstance(coding.get("code"), str):
            return coding["code"]
        if isinstance(cc.get("text"), str):
            return cc["text"]
    return None


# Observation.value[x] (FHIR R4).
VALUE_KEYS = frozenset(
    [
        "valueQuantity",
        "valueCodeableConcept",
        "valueString",
        "valueBoolean",
        "valueInteger",
        "valueRange",
        "valueRatio",
        "valueSampledData",
        "valueTime",
        "valueDateTime",
        "valuePeriod",
    ]
)


class NoDate(Quarantine):
    """The element is absent (a caller may fall back to another one)."""


def _start_end(res: dict[str, Any], ctx: Context, prefix: str) -> tuple[Any, Any, Any, Any]:
    """(start date, start datetime, end date, end datetime) of <prefix>DateTime |
    <prefix>Period | <prefix>Instant; NoDate when there is none, Quarantine when unparseable."""
    v = res.get(prefix + "DateTime") or res.get(prefix + "Instant")
    if v is not None:
        d, t = ctx.when(v, prefix + "DateTime")
        return d, t, None, None
    period = res.get(prefix + "Period")
    if isinstance(period, dict) and period.get("start"):
        d, t = ctx.when(period["start"], prefix + "Period.start")
        ed = et = None
        if period.get("end"):
            ed, et = ctx.when(period["end"], prefix + "Period.end")
        return d, t, ed, et
    raise NoDate(f"no {prefix}[x] date")


def _performer(ctx: Context, res: dict[str, Any], field: str) -> int | None:
    item = _first(res.get(field))
    if isinstance(item, dict):
        ref = item.get("actor") or item.get("individual") or (item if "reference" in item else None)
        return ctx.optional(ref, field, "Practitioner")
    return None


# -- Encounter -------------------------------------------------------------------------------
def encounter(res: dict[str, Any], ctx: Context) -> None:
    pid = ctx.person(res)
    period = _obj(res.get("period"))
    if not period.get("start"):
        raise Quarantine("no period.start")
    sd, st = ctx.when(period["start"], "period.start")
    ed, et = ctx.when(period["end"], "period.end") if period.get("end") else (sd, st)
    cls = _obj(res.get("class"))
    vtype = ctx.concept("visit_occurrence", _first(res.get("type")))
    provider = None
    for i, part in enumerate(res.get("participant") or ()):
        if isinstance(part, dict) and part.get("individual") is not None:
            provider = ctx.optional(
                part["individual"], f"participant[{i}].individual", "Practitioner"
            )
            if provider:
                break
    for i, loc in enumerate(res.get("location") or ()):
        if isinstance(loc, dict) and loc.get("location") is not None:
            ctx.target(loc["location"], f"location[{i}].location")  # resolve(), remembered
    hosp = _obj(res.get("hospitalization"))
    ctx.batch.add(
        "visit_occurrence",
        {
            "visit_occurrence_id": ctx.id("Encounter", res["id"]),
            "person_id": pid,
            "visit_concept_id": C.VISIT_CLASS.get(cls.get("code") or "", 0),
            "visit_start_date": sd,
            "visit_start_datetime": st,
            "visit_end_date": ed,
            "visit_end_datetime": et,
            "visit_type_concept_id": C.EHR_ENCOUNTER_RECORD,
            "provider_id": provider,
            "care_site_id": ctx.optional(
                res.get("serviceProvider"), "serviceProvider", "Organization"
            ),
            "visit_source_value": vtype.source_value or cls.get("code"),
            "visit_source_concept_id": vtype.source_concept_id,
            "admitted_from_concept_id": 0,
            "admitted_from_source_value": _code(hosp.get("admitSource")),
            "discharged_to_concept_id": 0,
            "discharged_to_source_value": _code(hosp.get("dischargeDisposition")),
        },
    )


# -- Condition -------------------------------------------------------------------------------
def condition(res: dict[str, Any], ctx: Context) -> None:
    pid = ctx.person(res)
    try:
        sd, st, ed, et = _start_end(res, ctx, "onset")
    except NoDate:
        if not res.get("recordedDate"):
            raise Quarantine("no onset[x] or recordedDate") from None
        sd, st = ctx.when(res["recordedDate"], "recordedDate")
        ed = et = None
    if res.get("abatementDateTime"):
        ed, et = ctx.when(res["abatementDateTime"], "abatementDateTime")
    elif isinstance(res.get("abatementPeriod"), dict) and res["abatementPeriod"].get("end"):
        ed, et = ctx.when(res["abatementPeriod"]["end"], "abatementPeriod.end")
    elif isinstance(res.get("abatementPeriod"), dict) and res["abatementPeriod"].get("start"):
        ed, et = ctx.when(res["abatementPeriod"]["start"], "abatementPeriod.start")
    cats = {_code(c) for c in res.get("category") or ()}
    ctype = C.EHR_PROBLEM_LIST if "problem-list-item" in cats else C.EHR
    m = ctx.concept("condition_occurrence", res.get("code"))
    ctx.batch.add(
        "condition_occurrence",
        {
            "condition_occurrence_id": ctx.row_id("Condition", res["id"]),
            "person_id": pid,
            "condition_concept_id": m.concept_id,
            "condition_start_date": sd,
            "condition_start_datetime": st,
            "condition_end_date": ed,
            "condition_end_datetime": et,
            "condition_type_concept_id": ctype,
            "condition_status_concept_id": 0,
            "provider_id": ctx.optional(res.get("asserter"), "asserter", "Practitioner")
            or ctx.optional(res.get("recorder"), "recorder", "Practitioner"),
            "visit_occurrence_id": ctx.optional(res.get("encounter"), "encounter", "Encounter"),
            "condition_source_value": m.source_value,
            "condition_source_concept_id": m.source_concept_id,
            "condition_status_source_value": _code(res.get("clinicalStatus")),
        },
    )


# -- Observation -----------------------------------------------------------------------------
def _value_fields(src: dict[str, Any], ctx: Context, table: str, out: dict[str, Any]) -> None:
    """Set the value columns of `out` from Observation(.component).value[x]."""
    q = src.get("valueQuantity")
    if isinstance(q, dict):
        get = q.get
        code = get("code")
        out["value_as_number"] = get("value")
        unit = code if get("system") == "http://unitsofmeasure.org" else None
        out["unit_source_value"] = code or get("unit")
        out["unit_concept_id"] = ctx.vocab.unit(unit or get("unit"))
        if table == "measurement":
            out["operator_concept_id"] = C.OPERATOR.get(get("comparator") or "")
        return
    if "valueCodeableConcept" in src:
        v = ctx.vocab.concept(src["valueCodeableConcept"])
        out["value_as_concept_id"] = v.concept_id
        out["value_source_value"] = v.source_value or None
        if table == "observation":
            cc = src["valueCodeableConcept"]
            coding = _first(cc.get("coding")) if isinstance(cc, dict) else None
            text = cc.get("text") if isinstance(cc, dict) else None
            out["value_as_string"] = text or (coding or {}).get("display")
        return
    for key in ("valueString", "valueBoolean", "valueInteger", "valueDateTime", "valueTime"):
        if key in src:
            v = src[key]
            if key == "valueInteger":
                out["value_as_number"] = float(v)
            text = ("true" if v else "false") if isinstance(v, bool) else str(v)
            out["value_source_value"] = text
            if table == "observation":
                out["value_as_string"] = text
            return


def _reference_range(src: dict[str, Any], out: dict[str, Any]) -> None:
    rr = _first(src.get("referenceRange"))
    if isinstance(rr, dict):
        low, high = rr.get("low") or {}, rr.get("high") or {}
        out["range_low"] = low.get("value")
        out["range_high"] = high.get("value")


def observation(res: dict[str, Any], ctx: Context) -> None:
    pid = ctx.person(res)
    v = res.get("effectiveDateTime") or res.get("effectiveInstant")
    hit = _DATES.get(v) if type(v) is str else None  # fhirtime.parse's cache, inline
    if hit is not None:
        d, t = hit
    else:
        try:
            d, t, _, _ = _start_end(res, ctx, "effective")
        except NoDate:
            if not res.get("issued"):
                raise Quarantine("no effective[x] or issued date") from None
            d, t = ctx.when(res["issued"], "issued")
    categories = res.get("category")
    # A mapped code goes to the table of its domain (MEASUREMENT or OBSERVATION); an unmapped
    # one to MEASUREMENT under one of these categories or with a valueQuantity.
    lab = False
    if categories:
        for c in categories:
            if _code(c) in C.MEASUREMENT_CATEGORIES:
                lab = True
                break
    encounter = res.get("encounter")
    visit = None if encounter is None else ctx.optional(encounter, "encounter", "Encounter")
    provider = None
    for i, perf in enumerate(res.get("performer") or ()):
        provider = ctx.optional(perf, f"performer[{i}]", "Practitioner")
        if provider:
            break
    comps = res.get("component") or ()
    rid = res["id"]
    concept = ctx.vocab.concept
    add_coverage = ctx.coverage.add
    fresh = ctx.ids.fresh
    tables = ctx.batch.tables
    if not VALUE_KEYS.isdisjoint(res) or not comps:
        parts: Any = ((0, res),)
        if comps:
            parts += tuple((i, c) for i, c in enumerate(comps, start=1) if isinstance(c, dict))
    else:
        parts = ((i, c) for i, c in enumerate(comps, start=1) if isinstance(c, dict))
    for part, src in parts:
        m = concept(src.get("code"))
        if m.concept_id:
            table = "measurement" if m.domain == "Measurement" else "observation"
        else:
            table = "measurement" if lab or "valueQuantity" in src else "observation"
        measurement = table == "measurement"
        add_coverage(table, m)
        if measurement:
            row_id = fresh("Observation", rid, part)
            row = {
                "measurement_id": row_id,
                "person_id": pid,
                "measurement_concept_id": m.concept_id,
                "measurement_date": d,
                "measurement_datetime": t,
                "measurement_type_concept_id": C.EHR,
                "visit_occurrence_id": visit,
                "provider_id": provider,
                "measurement_source_value": m.source_value,
                "measurement_source_concept_id": m.source_concept_id,
            }
            if "referenceRange" in src:
                _reference_range(src, row)
        else:
            row_id = fresh("Observation", rid, part)
            row = {
                "observation_id": row_id,
                "person_id": pid,
                "observation_concept_id": m.concept_id,
                "observation_date": d,
                "observation_datetime": t,
                "observation_type_concept_id": C.EHR,
                "visit_occurrence_id": visit,
                "provider_id": provider,
                "observation_source_value": m.source_value,
                "observation_source_concept_id": m.source_concept_id,
            }
        _value_fields(src, ctx, table, row)
        rows = tables.get(table)
        if rows is None:
            rows = tables[table] = {}
        rows[row_id] = row


def allergy(res: dict[str, Any], ctx: Context) -> None:
    pid = ctx.person(res, "patient")
    try:
        d, t, _, _ = _start_end(res, ctx, "onset")
    except NoDate:
        if not res.get("recordedDate"):
            raise Quarantine("no onset[x] or recordedDate") from None
        d, t = ctx.when(res["recordedDate"], "recordedDate")
    m = ctx.concept("observation", res.get("code"))
    category = _first(res.get("category"))
    ctx.batch.add(
        "observation",
        {
            "observation_id": ctx.row_id("AllergyIntolerance", res["id"]),
            "person_id": pid,
            "observation_concept_id": m.concept_id,
            "observation_date": d,
            "observation_datetime": t,
            "observation_type_concept_id": C.EHR,
            "value_as_string": category if isinstance(category, str) else None,
            "qualifier_source_value": res.get("criticality"),
            "visit_occurrence_id": ctx.optional(res.get("encounter"), "encounter", "Encounter"),
            "observation_source_value": m.source_value,
            "observation_source_concept_id": m.source_concept_id,
        },
    )
