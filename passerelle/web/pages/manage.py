"""Steward, admin and auditor pages."""

from __future__ import annotations

import json
from pathlib import Path as FsPath
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import Response
from pydantic import ValidationError
from sqlalchemy import select

from passerelle.access import audit
from passerelle.access.enums import Domain, OrgType, Role, UpdateFrequency
from passerelle.access.errors import Conflict, Invalid
from passerelle.access.models import Dataset
from passerelle.access.schemas import ApiKeyIn, OrgIn, UserIn
from passerelle.catalog.schemas import DatasetIn
from passerelle.catalog.service import dataset_out
from passerelle.web.pages import core
from passerelle.web.pages.core import form, redirect, render

router = APIRouter(route_class=core.HtmlRoute, include_in_schema=False)
Id = Annotated[int, Path(ge=1, le=2**31 - 1)]
AUDIT_PAGE = 50


def _errors(exc: ValidationError) -> list[str]:
    out = []
    for e in exc.errors()[:5]:
        where = ".".join(str(p) for p in e.get("loc", ()))
        out.append(f"{where}: {e['msg']}" if where else e["msg"])
    return out


# -- steward -------------------------------------------------------------------------------------


def _reports_dir(request: Request) -> FsPath:
    return core.services(request).ctx.settings.data_dir / "reports"


def _ingest_reports(folder: FsPath) -> list[dict[str, Any]]:
    out = []
    for path in sorted(folder.glob("ingest*.json"), reverse=True)[:20]:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        out.append(
            {"file": path.name, **{k: v for k, v in data.items() if not isinstance(v, dict | list)}}
        )
    return out


def _quality(folder: FsPath) -> dict[str, Any] | None:
    path = folder / "quality.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError:
        return None


def _policy(request: Request) -> dict[str, Any]:
    from passerelle.privacy.policy import default_policy, load_policy

    path = core.services(request).ctx.settings.data_dir / "policy.yaml"
    policy = load_policy(path) if path.is_file() else default_policy()
    return {
        "label": policy.label,
        "source": str(path) if path.is_file() else "default",
        "rules": policy.normalised(),
    }


def _steward_page(
    request: Request,
    me: core.Viewer,
    errors: list[str],
    values: dict[str, Any],
    status_code: int = 200,
):
    svc = core.services(request)
    with svc.ctx.db.read() as s:
        rows = s.scalars(
            select(Dataset)
            .where(Dataset.organisation_id == me.principal.organisation_id)
            .order_by(Dataset.id)
        )
        datasets = [dataset_out(d) for d in rows]
    folder = _reports_dir(request)
    return render(
        request,
        "steward.html",
        status_code=status_code,
        datasets=datasets,
        ingests=_ingest_reports(folder),
        quality=_quality(folder),
        policy=_policy(request),
        errors=errors,
        v=values,
        domains=list(Domain),
        frequencies=list(UpdateFrequency),
    )


@router.get("/steward")
def steward(request: Request) -> Response:
    me = core.require(request, Role.STEWARD)
    return _steward_page(request, me, [], {"domains": [], "published": True})


@router.post("/steward/datasets")
async def dataset_create(request: Request) -> Response:
    me = core.require(request, Role.STEWARD)
    f = await form(request)
    values: dict[str, Any] = {
        k: f.get(k)
        for k in (
            "title",
            "description",
            "population",
            "update_frequency",
            "legal_basis",
            "access_conditions",
            "contact_name",
            "contact_email",
            "period_start",
            "period_end",
            "min_age",
            "max_age",
            "keywords",
        )
    }
    values["domains"] = f.all("domains")
    values["published"] = f.get("published") == "on"
    payload = {
        k: (v or None) if k in ("period_start", "period_end", "min_age", "max_age") else v
        for k, v in values.items()
    }
    payload["keywords"] = [k.strip() for k in values["keywords"].split(",") if k.strip()]
    payload["update_frequency"] = values["update_frequency"] or "irregular"
    try:
        data = DatasetIn.model_validate(payload)
        core.services(request).catalog.create(me.principal, data)
    except ValidationError as exc:
        return _steward_page(request, me, _errors(exc), values, 422)
    return redirect("/steward")


@router.post("/steward/datasets/{dataset_id}/profile")
async def dataset_profile(request: Request, dataset_id: Id) -> Response:
    me = core.require(request, Role.STEWARD)
    await form(request)
    core.services(request).catalog.profile_from_store(me.principal, dataset_id)
    return redirect(f"/catalogue/{dataset_id}")


@router.post("/steward/quality")
async def quality_run(request: Request) -> Response:
    core.require(request, Role.STEWARD)
    await form(request)
    from passerelle.ingest.quality.service import write_report

    settings = core.services(request).ctx.settings
    write_report(settings.default_store_url(), _reports_dir(request) / "quality.json")
    return redirect("/steward#quality")


# -- admin ---------------------------------------------------------------------------------------


@router.get("/admin")
def admin(request: Request) -> Response:
    me = core.require(request, Role.ADMIN)
    return _admin_page(request, me, [])


def _admin_page(
    request: Request, me: core.Viewer, errors: list[str], new_key: str = "", status_code: int = 200
):
    svc = core.services(request)
    org_id = me.principal.organisation_id
    return render(
        request,
        "admin.html",
        status_code=status_code,
        orgs=svc.accounts.list_orgs(0, 100),
        users=svc.accounts.list_users(me.principal, org_id, 0, 100),
        keys=svc.accounts.list_api_keys(me.principal, org_id),
        org_types=list(OrgType),
        roles=list(Role),
        errors=errors,
        new_key=new_key,
    )


@router.post("/admin/organisations")
async def org_create(request: Request) -> Response:
    me = core.require(request, Role.ADMIN)
    f = await form(request)
    try:
        data = OrgIn(
            name=f.get("name"), type=f.get("type"), review_days=f.get("review_days") or None
        )
        core.services(request).accounts.create_org(me.principal, data)
    except ValidationError as exc:
        return _admin_page(request, me, _errors(exc), status_code=422)
    except Conflict as exc:
        return _admin_page(request, me, [str(exc)], status_code=409)
    return redirect("/admin")


@router.post("/admin/users")
async def user_create(request: Request) -> Response:
    me = core.require(request, Role.ADMIN)
    f = await form(request)
    try:
        data = UserIn(
            email=f.get("email"),
            name=f.get("name"),
            password=f.get("password") or None,
            roles=f.all("roles"),
        )
        core.services(request).accounts.create_user(
            me.principal, me.principal.organisation_id, data
        )
    except ValidationError as exc:
        return _admin_page(request, me, _errors(exc), status_code=422)
    except (Conflict, Invalid) as exc:
        return _admin_page(request, me, [str(exc)], status_code=409)
    return redirect("/admin")


@router.post("/admin/keys")
async def key_create(request: Request) -> Response:
    me = core.require(request, Role.ADMIN)
    f = await form(request)
    try:
        out = core.services(request).accounts.create_api_key(
            me.principal, me.principal.organisation_id, ApiKeyIn(name=f.get("name"))
        )
    except ValidationError as exc:
        return _admin_page(request, me, _errors(exc), status_code=422)
    # The key is shown once, on this response only (never stored in clear, never logged).
    return _admin_page(request, me, [], new_key=out.key or "")


@router.post("/admin/keys/{key_id}/revoke")
async def key_revoke(request: Request, key_id: Id) -> Response:
    me = core.require(request, Role.ADMIN)
    await form(request)
    core.services(request).accounts.revoke_api_key(me.principal, key_id)
    return redirect("/admin")


# -- auditor -------------------------------------------------------------------------------------


@router.get("/audit")
def audit_log(request: Request, page: int = 1, object_type: str = "") -> Response:
    core.require(request, Role.AUDITOR)
    page = max(1, min(page, 100_000))
    object_type = object_type[:40]
    svc = core.services(request)
    with svc.ctx.db.read() as s:
        verification = audit.verify(s)
        total, rows = audit.list_entries(
            s, (page - 1) * AUDIT_PAGE, AUDIT_PAGE, object_type or None
        )
        entries = [
            {
                "seq": e.seq,
                "at": e.at,
                "actor": e.actor,
                "action": e.action,
                "object": f"{e.object_type}:{e.object_id}",
                "details": e.details,
                "hash": e.hash,
            }
            for e in rows
        ]
    return render(
        request,
        "audit.html",
        v=verification,
        entries=entries,
        total=total,
        page=page,
        pages=max(1, -(-total // AUDIT_PAGE)),
        object_type=object_type,
    )
