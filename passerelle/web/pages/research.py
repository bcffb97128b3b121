"""Applicant pages: the feasibility builder, access requests, and the project workspace."""

from __future__ import annotations

import contextlib
import json
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from passerelle.access.enums import (
    APPROVED_REVIEWS,
    Domain,
    GdprArt6,
    GdprArt9,
    Methodology,
    OutputType,
    Purpose,
    RequestStatus,
    Role,
)
from passerelle.access.errors import Conflict, Invalid, NotFound
from passerelle.access.schemas import RequestIn
from passerelle.errors import PasserelleError
from passerelle.web.pages import core
from passerelle.web.pages.core import form, redirect, render
from passerelle.web.pages.forms import (
    ENTRY_DOMAINS,
    OCCURRENCES,
    Builder,
    blank_request,
    request_from_form,
    request_values,
)
from passerelle.web.pages.hub import HubClient, slug
from passerelle.web.pages.results import merged_csv

router = APIRouter(route_class=core.HtmlRoute, include_in_schema=False)
Id = Annotated[int, Path(ge=1, le=2**31 - 1)]
PICKER_LIMIT = 100


def _validate(spec: dict[str, Any]) -> list[str]:
    from passerelle.query.parse import SpecError, parse_study

    try:
        parse_study(spec)
    except SpecError as exc:
        return [str(p) for p in exc.problems]
    except PasserelleError as exc:
        return [str(exc)]
    return []


# -- feasibility ---------------------------------------------------------------------------------


def _builder_page(request: Request, b: Builder, **extra: Any) -> Response:
    return render(
        request,
        "feasibility.html",
        b=b,
        criteria=b.padded(),
        entry_domains=ENTRY_DOMAINS,
        occurrences=OCCURRENCES,
        **{"answer": None, "errors": [], "spec_json": "", **extra},
    )


@router.get("/feasibility")
def feasibility_page(request: Request) -> Response:
    core.require(request, Role.APPLICANT)
    return _builder_page(request, Builder())


@router.post("/feasibility")
async def feasibility_run(request: Request) -> Response:
    me = core.require(request, Role.APPLICANT)
    f = await form(request)
    b = Builder.from_form(f)
    spec = b.spec()
    errors = _validate(spec)
    if not b.entry_concepts.strip():
        errors.insert(0, core.translator(request)("Choose at least one entry concept."))
    if errors:
        return _builder_page(request, b, errors=errors)
    settings = core.services(request).ctx.settings
    # The hub call blocks (httpx): off the event loop, so other pages keep being served.
    answer = await run_in_threadpool(
        HubClient(settings).feasibility, spec, applicant=f"org-{me.principal.organisation_id}"
    )
    return _builder_page(request, b, answer=feasibility_view(answer), spec_json=json.dumps(spec))


def feasibility_view(answer: dict[str, Any]) -> dict[str, Any]:
    """Per-site noisy counts and the merged total, as the page shows them."""
    sites = []
    for s in answer.get("sites", []):
        value = None
        if s.get("status") == "ok":
            tables = s.get("result", {}).get("tables", [])
            rows = tables[0]["rows"] if tables else []
            value = rows[0][0] if rows else None
        sites.append(
            {
                "site": s["site"],
                "status": s["status"],
                "value": value,
                "reason": s.get("reason", ""),
            }
        )
    total = None
    merged = answer.get("merged", {}).get("tables", [])
    if merged and merged[0].get("rows"):
        total = merged[0]["rows"][0][-1]
    dp = answer.get("dp") or {}
    return {
        "sites": sites,
        "total": total,
        "sd": dp.get("combined_per_cell_sd"),
        "partial": answer.get("partial", False),
    }


# -- access requests -----------------------------------------------------------------------------


def _datasets(request: Request, chosen: list[int]) -> list[Any]:
    svc = core.services(request)
    found = {d.id: d for d in svc.catalog.search(limit=PICKER_LIMIT).items}
    for i in chosen:
        if i not in found:
            with contextlib.suppress(NotFound):
                found[i] = svc.catalog.get(None, i)
    return sorted(found.values(), key=lambda d: (d.producer_name, d.title))


def _form_page(
    request: Request, values: dict[str, Any], errors: list[str], request_id: int | None = None
) -> Response:
    return render(
        request,
        "request_form.html",
        status_code=422 if errors else 200,
        v=values,
        errors=errors,
        request_id=request_id,
        datasets=_datasets(request, values.get("dataset_ids", [])),
        purposes=list(Purpose),
        art6=list(GdprArt6),
        art9=list(GdprArt9),
        methodologies=list(Methodology),
        outputs=list(OutputType),
        domains=list(Domain),
    )


@router.get("/requests")
def requests_list(request: Request) -> Response:
    me = core.require(request)
    page = core.services(request).requests.list(me.principal, None, 0, 100)
    mine = [r for r in page.items if r.organisation_id == me.principal.organisation_id]
    return render(request, "requests.html", items=mine, total=len(mine))


@router.get("/requests/new")
def request_new(request: Request) -> Response:
    core.require(request, Role.APPLICANT)
    values = blank_request()
    values["dataset_ids"] = [int(x) for x in request.query_params.getlist("dataset") if x.isdigit()]
    return _form_page(request, values, [])


@router.post("/requests/new")
async def request_create(request: Request) -> Response:
    me = core.require(request, Role.APPLICANT)
    f = await form(request)
    if f.has("prefill"):  # from the feasibility page: a blank form carrying the study
        values = blank_request()
        values["studies_text"] = f.get("studies_text")
        return _form_page(request, values, [])
    parsed = request_from_form(f)
    if parsed.data is None:
        return _form_page(request, parsed.values, parsed.errors)
    svc = core.services(request)
    try:
        out = svc.requests.create(me.principal, parsed.data)
    except Invalid as exc:
        return _form_page(request, parsed.values, [str(exc)])
    if f.get("action") == "submit":
        return await _submit(request, me, out.id, parsed.values)
    return redirect(f"/requests/{out.id}?saved=1")


async def _submit(
    request: Request, me: core.Viewer, request_id: int, values: dict[str, Any]
) -> Response:
    try:
        core.services(request).requests.submit(me.principal, request_id)
    except (Invalid, Conflict) as exc:
        return _form_page(request, values, [str(exc)], request_id)
    return redirect(f"/requests/{request_id}?submitted=1")


@router.get("/requests/{request_id}/edit")
def request_edit(request: Request, request_id: Id) -> Response:
    me = core.require(request, Role.APPLICANT)
    req = core.services(request).requests.get(me.principal, request_id)
    return _form_page(request, request_values(req), [], request_id)


@router.post("/requests/{request_id}/edit")
async def request_update(request: Request, request_id: Id) -> Response:
    me = core.require(request, Role.APPLICANT)
    f = await form(request)
    parsed = request_from_form(f)
    if parsed.data is None:
        return _form_page(request, parsed.values, parsed.errors, request_id)
    svc = core.services(request)
    try:
        svc.requests.update(me.principal, request_id, parsed.data)
    except (Invalid, Conflict) as exc:
        return _form_page(request, parsed.values, [str(exc)], request_id)
    if f.get("action") == "submit":
        return await _submit(request, me, request_id, parsed.values)
    return redirect(f"/requests/{request_id}?saved=1")


@router.get("/requests/{request_id}")
def request_status(request: Request, request_id: Id) -> Response:
    me = core.require(request)
    svc = core.services(request)
    req = svc.requests.get(me.principal, request_id)
    datasets = [d for d in _datasets(request, req.dataset_ids) if d.id in req.dataset_ids]
    return render(
        request,
        "request_status.html",
        r=req,
        datasets=datasets,
        mine=me.principal.organisation_id == req.organisation_id and me.has(Role.APPLICANT),
        approved=any(rv.status in APPROVED_REVIEWS for rv in req.reviews),
        project=f"request-{req.id}",
        saved=request.query_params.get("saved"),
        submitted=request.query_params.get("submitted"),
    )


@router.post("/requests/{request_id}/submit")
async def request_submit(request: Request, request_id: Id) -> Response:
    me = core.require(request, Role.APPLICANT)
    await form(request)
    core.services(request).requests.submit(me.principal, request_id)
    return redirect(f"/requests/{request_id}?submitted=1")


@router.post("/requests/{request_id}/close")
async def request_close(request: Request, request_id: Id) -> Response:
    me = core.require(request, Role.APPLICANT, Role.ADMIN)
    await form(request)
    core.services(request).requests.close(me.principal, request_id)
    return redirect(f"/requests/{request_id}")


@router.post("/reviews/{review_id}/resubmit")
async def review_resubmit(request: Request, review_id: Id) -> Response:
    me = core.require(request, Role.APPLICANT)
    await form(request)
    out = core.services(request).requests.resubmit(me.principal, review_id)
    return redirect(f"/requests/{out.id}")


# -- project workspace ---------------------------------------------------------------------------


def _project(request: Request, request_id: int) -> tuple[core.Viewer, Any]:
    me = core.require(request, Role.APPLICANT)
    req = core.services(request).requests.get(me.principal, request_id)
    if req.organisation_id != me.principal.organisation_id:
        raise NotFound(f"project {request_id} does not exist")
    return me, req


@router.get("/projects/{request_id}")
def workspace(request: Request, request_id: Id) -> Response:
    _me, req = _project(request, request_id)
    runs = request.app.state.results.runs(request_id)
    chosen = request.query_params.get("run", "")
    current = (
        request.app.state.results.get(request_id, chosen) if chosen else (runs[0] if runs else None)
    )
    return render(
        request,
        "workspace.html",
        r=req,
        runs=runs,
        current=current,
        active=req.status == RequestStatus.ACTIVE,
        sites=_approved_sites(req),
        project=f"request-{req.id}",
    )


def _approved_sites(req: Any) -> list[str]:
    return [slug(rv.producer_name) for rv in req.reviews if rv.status in APPROVED_REVIEWS]


@router.post("/projects/{request_id}/run")
async def workspace_run(request: Request, request_id: Id) -> Response:
    me, req = _project(request, request_id)
    f = await form(request)
    if req.status != RequestStatus.ACTIVE:
        raise Conflict(f"request {request_id} is {req.status.value}; studies run once it is active")
    try:
        index = int(f.get("study", "0"))
        spec = req.studies[index]
    except (ValueError, IndexError):
        raise Invalid("study: no such study in this request") from None
    svc = core.services(request)
    answer = await run_in_threadpool(
        HubClient(svc.ctx.settings).run_study,
        spec,
        request_id=req.id,
        purpose=req.purpose[0].value,
        output_type=req.output_type.value,
        sites=_approved_sites(req),
    )
    now = svc.ctx.clock.now()
    name = request.app.state.results.save(req.id, index, answer, now)
    released = [s["site"] for s in answer.get("sites", []) if s.get("status") == "ok"]
    with svc.ctx.uow.write() as dal:
        dal.audit(
            me.principal.actor,
            "study.run",
            "request",
            req.id,
            {
                "study": index,
                "run": name,
                "sites": released,
                "partial": bool(answer.get("partial")),
            },
        )
    return redirect(f"/projects/{req.id}?run={name}")


@router.get("/projects/{request_id}/runs/{run}.{fmt}")
def workspace_download(request: Request, request_id: Id, run: str, fmt: str) -> Response:
    _project(request, request_id)
    found = request.app.state.results.get(request_id, run)
    if found is None or fmt not in ("json", "csv"):
        raise NotFound("no such result")
    answer = found.data["answer"]
    filename = f"request-{request_id}-{run}.{fmt}"
    headers = {"content-disposition": f'attachment; filename="{filename}"'}
    if fmt == "csv":
        return Response(merged_csv(answer), media_type="text/csv; charset=utf-8", headers=headers)
    return Response(
        json.dumps(answer, indent=2, default=str), media_type="application/json", headers=headers
    )


@router.post("/projects/{request_id}/extract")
async def workspace_extract(request: Request, request_id: Id) -> Response:
    """Ask for a pseudonymized extract: a new draft request with the same content."""
    me, req = _project(request, request_id)
    await form(request)
    values = request_values(req)
    data = RequestIn.model_validate(
        {
            "title": (f"Extract — {req.title}")[:300],
            "purpose": values["purpose"],
            "description": req.description,
            "public_interest": req.public_interest,
            "gdpr_art6": req.gdpr_art6,
            "gdpr_art9": req.gdpr_art9,
            "methodology": req.methodology,
            "cnil_reference": req.cnil_reference,
            "ethics_approval": req.ethics_approval,
            "dataset_ids": req.dataset_ids,
            "studies": req.studies,
            "domains": req.domains,
            "period_start": req.period_start,
            "period_end": req.period_end,
            "output_type": OutputType.PSEUDONYMIZED_EXTRACT,
            "duration_months": req.duration_months,
            "team": req.team,
        }
    )
    out = core.services(request).requests.create(me.principal, data)
    return redirect(f"/requests/{out.id}/edit")
