"""Access requests, the reviewer queue, decisions and the deadline clock."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from fastapi.responses import Response

from passerelle.access import permissions as perm
from passerelle.access.enums import RequestStatus, ReviewStatus, Role
from passerelle.access.schemas import (
    DecisionIn,
    ExtensionIn,
    Page,
    RequestIn,
    RequestOut,
    ReviewOut,
    TickOut,
)
from passerelle.web.deps import Caller, Pages, Svc
from passerelle.web.errors import ERROR_RESPONSES, json_response, model_response

router = APIRouter(responses=ERROR_RESPONSES)
Id = Annotated[int, Path(ge=1, le=2**31 - 1)]


@router.get(
    "/requests",
    tags=["requests"],
    summary="Requests the caller may see",
    response_model=Page[RequestOut],
)
def list_requests(
    svc: Svc, p: Caller, page: Pages, status: Annotated[RequestStatus | None, Query()] = None
) -> Response:
    return json_response(svc.requests.list_rows(p, status, page.offset, page.limit))


@router.post(
    "/requests", tags=["requests"], status_code=201, summary="Create a draft request (applicant)"
)
def create_request(svc: Svc, p: Caller, body: RequestIn) -> RequestOut:
    return svc.requests.create(p, body)


@router.get("/requests/{request_id}", tags=["requests"], summary="One request and its reviews")
def get_request(svc: Svc, p: Caller, request_id: Id) -> RequestOut:
    return svc.requests.get(p, request_id)


@router.put(
    "/requests/{request_id}",
    tags=["requests"],
    summary="Edit a draft, or a submitted request while a producer asks for changes",
)
def update_request(svc: Svc, p: Caller, request_id: Id, body: RequestIn) -> RequestOut:
    return svc.requests.update(p, request_id, body)


@router.post(
    "/requests/{request_id}/submit",
    tags=["requests"],
    summary="Submit: each producer's review and clock start",
)
def submit_request(svc: Svc, p: Caller, request_id: Id) -> RequestOut:
    return svc.requests.submit(p, request_id)


@router.post("/requests/{request_id}/close", tags=["requests"], summary="Close or withdraw")
def close_request(svc: Svc, p: Caller, request_id: Id) -> RequestOut:
    return svc.requests.close(p, request_id)


@router.get(
    "/reviews",
    tags=["reviews"],
    summary="The reviewer queue, nearest deadline first",
    response_model=Page[ReviewOut],
)
def review_queue(
    svc: Svc, p: Caller, page: Pages, status: Annotated[ReviewStatus | None, Query()] = None
) -> Response:
    return model_response(svc.requests.queue(p, None, status, page.offset, page.limit))


@router.post(
    "/reviews/{review_id}/decision",
    tags=["reviews"],
    summary="Approve (with conditions), ask for changes, or reject (reviewer of the producer)",
)
def decide(svc: Svc, p: Caller, review_id: Id, body: DecisionIn) -> RequestOut:
    return svc.requests.decide(p, review_id, body)


@router.post(
    "/reviews/{review_id}/extension",
    tags=["reviews"],
    summary="Extend the deadline once, with a reason (reviewer of the producer)",
)
def extend(svc: Svc, p: Caller, review_id: Id, body: ExtensionIn) -> RequestOut:
    return svc.requests.extend(p, review_id, body)


@router.post(
    "/reviews/{review_id}/resubmit",
    tags=["reviews"],
    summary="After changes: send the request back to this producer (applicant)",
)
def resubmit(svc: Svc, p: Caller, review_id: Id) -> RequestOut:
    return svc.requests.resubmit(p, review_id)


@router.post(
    "/deadlines/tick",
    tags=["reviews"],
    summary="Apply the clock now: reminders, approval on silence, expiry (admin)",
)
def tick(svc: Svc, p: Caller) -> TickOut:
    perm.require_role(p, Role.ADMIN)
    return svc.requests.tick()
