"""Medications, immunizations, procedures, imaging studies and devices → CDM rows.
Rules in docs/fhir-to-omop.md."""

from __future__ import annotations

from typing import Any

from passerelle.ingest import concepts as C
from passerelle.ingest.context import Context, Quarantine, Skip
from passerelle.ingest.fhir_events import NoDate, _code, _first, _obj, _performer, _start_end
from passerelle.ingest.fhirtime import plus_days

DAY_UNITS = {"d": 1, "day": 1, "days": 1, "wk": 7, "week": 7, "weeks": 7, "mo": 30, "a": 365}


def _medication_cc(res: dict[str, Any], ctx: Context) -> Any:
    if "medicationCodeableConcept" in res:
        return res["medicationCodeableConcept"]
    ref = res.get("medicationReference")
    if ref is None:
        raise Quarantine("no medication[x]")
    return ctx.code_of(ref, "medicationReference", "Medication")


def _days(q: Any) -> int | None:
    if isinstance(q, dict) and isinstance(q.get("value"), int | float):
        per = DAY_UNITS.get(q.get("code") or q.get("unit") or "")
        if per:
            return max(round(q["value"] * per), 1)
    return None


def _route(ctx: Context, cc: Any) -> tuple[int, str | None]:
    if cc is None:
        return 0, None
    m = ctx.vocab.concept(cc)
    return m.concept_id, m.source_value or None


def _drug_row(ctx, res, pid, cc, sd, st, ed, et, type_concept, **extra) -> None:
    m = ctx.concept("drug_exposure", cc)
    days = extra.pop("days_supply", None)
    if ed is None:
        ed = plus_days(sd, days - 1) if days else sd
    row = {
        "drug_exposure_id": ctx.row_id(res["resourceType"], res["id"]),
        "person_id": pid,
        "drug_concept_id": m.concept_id,
        "drug_exposure_start_date": sd,
        "drug_exposure_start_datetime": st,
        "drug_exposure_end_date": ed,
        "drug_exposure_end_datetime": et,
        "drug_type_concept_id": type_concept,
        "days_supply": days,
        "drug_source_value": m.source_value,
        "drug_source_concept_id": m.source_concept_id,
    }
    row.update(extra)
    ctx.batch.add("drug_exposure", row)


def medication_request(res: dict[str, Any], ctx: Context) -> None:
    pid = ctx.person(res)
    cc = _medication_cc(res, ctx)
    if not res.get("authoredOn"):
        raise Quarantine("no authoredOn")
    sd, st = ctx.when(res["authoredOn"], "authoredOn")
    dr = _obj(res.get("dispenseRequest"))
    ed = et = None
    vp = dr.get("validityPeriod")
    if isinstance(vp, dict) and vp.get("end"):
        ed, et = ctx.when(vp["end"], "dispenseRequest.validityPeriod.end")
    dosage = _first(res.get("dosageInstruction")) or {}
    dose = _first(dosage.get("doseAndRate")) or {}
    route_id, route_src = _route(ctx, dosage.get("route"))
    qty = _obj(dr.get("quantity"))
    _drug_row(
        ctx,
        res,
        pid,
        cc,
        sd,
        st,
        ed,
        et,
        C.EHR_PRESCRIPTION,
        days_supply=_days(dr.get("expectedSupplyDuration")),
        quantity=qty.get("value"),
        refills=dr.get("numberOfRepeatsAllowed"),
        sig=dosage.get("text"),
        route_concept_id=route_id,
        route_source_value=route_src,
        dose_unit_source_value=(dose.get("doseQuantity") or {}).get("unit"),
        provider_id=ctx.optional(res.get("requester"), "requester", "Practitioner"),
        visit_occurrence_id=ctx.optional(res.get("encounter"), "encounter", "Encounter"),
    )


def medication_statement(res: dict[str, Any], ctx: Context) -> None:
    pid = ctx.person(res)
    cc = _medication_cc(res, ctx)
    try:
        sd, st, ed, et = _start_end(res, ctx, "effective")
    except NoDate:
        if not res.get("dateAsserted"):
            raise Quarantine("no effective[x] or dateAsserted") from None
        sd, st = ctx.when(res["dateAsserted"], "dateAsserted")
        ed = et = None
    dosage = _first(res.get("dosage")) or {}
    route_id, route_src = _route(ctx, dosage.get("route"))
    _drug_row(
        ctx,
        res,
        pid,
        cc,
        sd,
        st,
        ed,
        et,
        C.PATIENT_SELF_REPORT,
        sig=dosage.get("text"),
        route_concept_id=route_id,
        route_source_value=route_src,
        visit_occurrence_id=ctx.optional(res.get("context"), "context", "Encounter"),
    )


def medication_administration(res: dict[str, Any], ctx: Context) -> None:
    pid = ctx.person(res)
    cc = _medication_cc(res, ctx)
    sd, st, ed, et = _start_end(res, ctx, "effective")
    dosage = _obj(res.get("dosage"))
    dose = _obj(dosage.get("dose"))
    route_id, route_src = _route(ctx, dosage.get("route"))
    _drug_row(
        ctx,
        res,
        pid,
        cc,
        sd,
        st,
        ed,
        et,
        C.EHR_ADMINISTRATION,
        quantity=dose.get("value"),
        dose_unit_source_value=dose.get("unit") or dose.get("code"),
        route_concept_id=route_id,
        route_source_value=route_src,
        provider_id=_performer(ctx, res, "performer"),
        visit_occurrence_id=ctx.optional(res.get("context"), "context", "Encounter"),
    )


def immunization(res: dict[str, Any], ctx: Context) -> None:
    pid = ctx.person(res, "patient")
    if not res.get("occurrenceDateTime"):
        raise Quarantine("no occurrenceDateTime")
    sd, st = ctx.when(res["occurrenceDateTime"], "occurrenceDateTime")
    route_id, route_src = _route(ctx, res.get("route"))
    dq = _obj(res.get("doseQuantity"))
    _drug_row(
        ctx,
        res,
        pid,
        res.get("vaccineCode"),
        sd,
        st,
        None,
        None,
        C.EHR_ADMINISTRATION,
        quantity=dq.get("value"),
        dose_unit_source_value=dq.get("unit") or dq.get("code"),
        lot_number=res.get("lotNumber"),
        route_concept_id=route_id,
        route_source_value=route_src,
        provider_id=_performer(ctx, res, "performer"),
        visit_occurrence_id=ctx.optional(res.get("encounter"), "encounter", "Encounter"),
    )


def procedure(res: dict[str, Any], ctx: Context) -> None:
    pid = ctx.person(res)
    sd, st, ed, et = _start_end(res, ctx, "performed")
    m = ctx.concept("procedure_occurrence", res.get("code"))
    ctx.batch.add(
        "procedure_occurrence",
        {
            "procedure_occurrence_id": ctx.row_id("Procedure", res["id"]),
            "person_id": pid,
            "procedure_concept_id": m.concept_id,
            "procedure_date": sd,
            "procedure_datetime": st,
            "procedure_end_date": ed,
            "procedure_end_datetime": et,
            "procedure_type_concept_id": C.EHR,
            "provider_id": _performer(ctx, res, "performer"),
            "visit_occurrence_id": ctx.optional(res.get("encounter"), "encounter", "Encounter"),
            "procedure_source_value": m.source_value,
            "procedure_source_concept_id": m.source_concept_id,
        },
    )


def imaging_study(res: dict[str, Any], ctx: Context) -> None:
    pid = ctx.person(res)
    series = [s for s in res.get("series") or () if isinstance(s, dict)]
    started = res.get("started") or next(
        (s.get("started") for s in series if s.get("started")), None
    )
    if not started:
        raise Quarantine("no started date")
    sd, st = ctx.when(started, "started")
    modalities = []
    for s in series:
        code = _code({"coding": [s["modality"]]}) if isinstance(s.get("modality"), dict) else None
        if code and code not in modalities:
            modalities.append(code)
    for m in res.get("modality") or ():
        code = m.get("code") if isinstance(m, dict) else None
        if code and code not in modalities:
            modalities.append(code)
    n_series = res.get("numberOfSeries", len(series))
    n_inst = res.get("numberOfInstances")
    if n_inst is None:
        n_inst = sum(
            int(s.get("numberOfInstances") or len(s.get("instance") or ())) for s in series
        )
    proc_cc = _first(res.get("procedureCode"))
    m = ctx.concept("procedure_occurrence", proc_cc) if proc_cc else None
    ctx.batch.add(
        "procedure_occurrence",
        {
            "procedure_occurrence_id": ctx.row_id("ImagingStudy", res["id"]),
            "person_id": pid,
            "procedure_concept_id": m.concept_id if m else 0,
            "procedure_date": sd,
            "procedure_datetime": st,
            "procedure_type_concept_id": C.EHR,
            "quantity": n_series,
            "visit_occurrence_id": ctx.optional(res.get("encounter"), "encounter", "Encounter"),
            "procedure_source_value": (m.source_value if m else None)
            or ("DCM:" + "+".join(modalities) if modalities else "ImagingStudy"),
            "procedure_source_concept_id": m.source_concept_id if m else 0,
            "modifier_source_value": f"modality={'+'.join(modalities) or '?'};"
            f"series={n_series};instances={n_inst}",
        },
    )


def device(res: dict[str, Any], ctx: Context) -> None:
    if res.get("patient") is None:
        raise Skip
    pid = ctx.person(res, "patient")
    start = res.get("manufactureDate")
    if not start:
        raise Quarantine("no manufactureDate (the implant date Synthea writes)")
    sd, st = ctx.when(start, "manufactureDate")
    m = ctx.concept("device_exposure", res.get("type"))
    udi = _first(res.get("udiCarrier")) or {}
    ctx.batch.add(
        "device_exposure",
        {
            "device_exposure_id": ctx.row_id("Device", res["id"]),
            "person_id": pid,
            "device_concept_id": m.concept_id,
            "device_exposure_start_date": sd,
            "device_exposure_start_datetime": st,
            "device_type_concept_id": C.EHR,
            "unique_device_id": udi.get("deviceIdentifier"),
            "production_id": res.get("lotNumber"),
            "device_source_value": m.source_value,
            "device_source_concept_id": m.source_concept_id,
        },
    )


def device_use(res: dict[str, Any], ctx: Context) -> None:
    pid = ctx.person(res)
    cc = ctx.code_of(res.get("device"), "device", "Device") if res.get("device") else None
    try:
        sd, st, ed, et = _start_end(res, ctx, "timing")
    except NoDate:
        if not res.get("recordedOn"):
            raise Quarantine("no timing[x] or recordedOn") from None
        sd, st = ctx.when(res["recordedOn"], "recordedOn")
        ed = et = None
    m = ctx.concept("device_exposure", cc)
    ctx.batch.add(
        "device_exposure",
        {
            "device_exposure_id": ctx.row_id("DeviceUseStatement", res["id"]),
            "person_id": pid,
            "device_concept_id": m.concept_id,
            "device_exposure_start_date": sd,
            "device_exposure_start_datetime": st,
            "device_exposure_end_date": ed,
            "device_exposure_end_datetime": et,
            "device_type_concept_id": C.EHR,
            "device_source_value": m.source_value,
            "device_source_concept_id": m.source_concept_id,
        },
    )
