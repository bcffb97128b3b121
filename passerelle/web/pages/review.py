"""Reviewer pages: the queue (nearest deadline first) and the decision form."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import Response
from pydantic import ValidationError

from passerelle.access.enums import ReviewStatus, Role
from passerelle.access.errors import Conflict, NotFound
from passerelle.access.schemas import DecisionIn, ExtensionIn
from passerelle.web.pages import core
from passerelle.web.pages.core import form, redirect, render

router = APIRouter(route_class=core.HtmlRoute, include_in_schema=False)
Id = Annotated[int, Path(ge=1, le=2**31 - 1)]
DECISIONS = (
    ReviewStatus.APPROVED,
    ReviewStatus.APPROVED_WITH_CONDITIONS,
    ReviewStatus.CHANGES_REQUESTED,
    ReviewStatus.REJECTED,
)


@router.get("/reviews")
def queue(request: Request) -> Response:
    me = core.require(request, Role.REVIEWER)
    svc = core.services(request)
    page = svc.requests.queue(me.principal, None, None, 0, 100)
    titles = {}
    for rv in page.items:
        if rv.request_id not in titles:
            titles[rv.request_id] = svc.requests.get(me.principal, rv.request_id)
    open_ = [rv for rv in page.items if rv.clock != "decided"]
    done = [rv for rv in page.items if rv.clock == "decided"]
    return render(request, "queue.html", open=open_, done=done, requests=titles)


def _review_page(request: Request, review_id: int, errors: list[str], status_code: int = 200):
    me = core.require(request, Role.REVIEWER)
    svc = core.services(request)
    page = svc.requests.queue(me.principal, None, None, 0, 100)
    review = next((rv for rv in page.items if rv.id == review_id), None)
    if review is None:
        raise NotFound(f"review {review_id} is not in your queue")
    req = svc.requests.get(me.principal, review.request_id)
    datasets = [svc.catalog.get(None, i) for i in req.dataset_ids]
    return render(
        request,
        "review.html",
        status_code=status_code,
        rv=review,
        r=req,
        datasets=datasets,
        decisions=DECISIONS,
        errors=errors,
        project=f"request-{req.id}",
    )


@router.get("/reviews/{review_id}")
def review_page(request: Request, review_id: Id) -> Response:
    return _review_page(request, review_id, [])


@router.post("/reviews/{review_id}/decision")
async def decide(request: Request, review_id: Id) -> Response:
    me = core.require(request, Role.REVIEWER)
    f = await form(request)
    try:
        data = DecisionIn(
            status=f.get("status"), conditions=f.get("conditions"), comment=f.get("comment")
        )
        core.services(request).requests.decide(me.principal, review_id, data)
    except ValidationError as exc:
        return _review_page(request, review_id, [e["msg"] for e in exc.errors()[:3]], 422)
    except Conflict as exc:
        return _review_page(request, review_id, [str(exc)], 409)
    return redirect(f"/reviews/{review_id}?decided=1")


@router.post("/reviews/{review_id}/extension")
async def extend(request: Request, review_id: Id) -> Response:
    me = core.require(request, Role.REVIEWER)
    f = await form(request)
    try:
        data = ExtensionIn(days=f.get("days") or 0, reason=f.get("reason"))
        core.services(request).requests.extend(me.principal, review_id, data)
    except ValidationError as exc:
        return _review_page(request, review_id, [e["msg"] for e in exc.errors()[:3]], 422)
    except Conflict as exc:
        return _review_page(request, review_id, [str(exc)], 409)
    return redirect(f"/reviews/{review_id}")
