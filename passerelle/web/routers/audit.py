"""The audit chain: its public head, the log and its verification (auditors)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from passerelle.access import audit
from passerelle.access import permissions as perm
from passerelle.access.schemas import AuditEntryOut, AuditHeadOut, AuditPage, AuditVerifyOut, Page
from passerelle.web.deps import Caller, Pages, Svc
from passerelle.web.errors import ERROR_RESPONSES

router = APIRouter(responses=ERROR_RESPONSES, tags=["audit"])


@router.get("/audit/head", summary="The audit chain's length and head hash (public)")
def head(svc: Svc) -> AuditHeadOut:
    with svc.ctx.db.read() as s:
        h = audit.head(s)
    return AuditHeadOut(count=h.count, head_hash=h.hash)


@router.get("/audit", summary="Audit entries, newest first (auditor)")
def entries(
    svc: Svc,
    p: Caller,
    page: Pages,
    object_type: Annotated[str | None, Query(max_length=40)] = None,
) -> Page[AuditEntryOut]:
    perm.may_audit(p)
    with svc.ctx.db.read() as s:
        total, rows = audit.list_entries(s, page.offset, page.limit, object_type)
        items = [AuditEntryOut.model_validate(e) for e in rows]
    return AuditPage(total=total, offset=page.offset, limit=page.limit, items=items)


@router.get("/audit/verify", summary="Recompute the whole chain (auditor)")
def verify(svc: Svc, p: Caller) -> AuditVerifyOut:
    perm.may_audit(p)
    with svc.ctx.db.read() as s:
        v = audit.verify(s)
    return AuditVerifyOut(
        ok=v.ok,
        count=v.count,
        head_hash=v.head_hash,
        first_broken=v.first_broken,
        problem=v.problem,
    )
