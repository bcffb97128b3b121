"""What a hospital's node fetches from the single window: its own committee's decisions.

A node runs a study only when its own register approves it (docs/federation.md). The node pulls
the decided reviews whose producer is its own organisation, authenticated with an org-scoped
node API key, and applies them to its register (`passerelle node sync`). Reading changes no
state, so nothing is appended to the audit chain here; every decision it lists was written to
the chain when the reviewer (or the clock) made it.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from passerelle.access.auth import Principal
from passerelle.access.context import Context
from passerelle.access.enums import APPROVED_REVIEWS, OutputType, RequestStatus, ReviewStatus
from passerelle.access.errors import Forbidden
from passerelle.access.models import AccessRequest, Organisation, Review, User

PROJECT_PREFIX = "request-"  # the project id the web pages send to the hub: request-N

DECIDED_REVIEWS = frozenset({*APPROVED_REVIEWS, ReviewStatus.REJECTED})
ENDED_REQUESTS = frozenset({RequestStatus.EXPIRED, RequestStatus.CLOSED})


class NodeDecisionOut(BaseModel):
    review_id: int
    request_id: int
    project_id: str
    producer_id: int
    producer_name: str
    review_status: ReviewStatus
    request_status: RequestStatus
    action: str  # approve | revoke
    purpose: str  # the request's first purpose: the one the web pages send to the hub
    purposes: list[str]
    output_type: OutputType
    conditions: str
    decided_at: datetime | None
    decided_by: str  # the reviewer's name, or "system" (approved on silence)
    ends_at: datetime | None  # the project's end: the node's approval expires then
    changed_at: datetime | None  # the later of the decision and the request's end or closing


class NodeDecisionPage(BaseModel):
    organisation_id: int
    organisation_name: str
    total: int
    offset: int
    limit: int
    items: list[NodeDecisionOut]


def project_id(request_id: int) -> str:
    return f"{PROJECT_PREFIX}{request_id}"


def _action(review: Review, req: AccessRequest) -> str:
    if review.status in APPROVED_REVIEWS and req.status not in ENDED_REQUESTS:
        return "approve"
    return "revoke"


def _changed_at(review: Review, req: AccessRequest) -> datetime | None:
    times = [t for t in (review.decided_at, req.closed_at) if t is not None]
    if req.status is RequestStatus.EXPIRED and req.ends_at is not None:
        times.append(req.ends_at)
    return max(times) if times else None


class NodeDecisions:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def list(self, p: Principal, offset: int = 0, limit: int = 50) -> NodeDecisionPage:
        """The decided reviews of the caller's organisation, oldest review first.

        Only a node API key may call this: it is the node's feed, scoped to its organisation.
        A review counts once decided (approved, approved with conditions, rejected), or once its
        request expired or was closed (a revocation for the node)."""
        if p.kind != "node":
            raise Forbidden("this operation needs a node API key")
        org_id = p.organisation_id
        stmt = (
            select(Review)
            .join(AccessRequest, AccessRequest.id == Review.request_id)
            .where(
                Review.producer_id == org_id,
                or_(
                    Review.status.in_(sorted(DECIDED_REVIEWS)),
                    AccessRequest.status.in_(sorted(ENDED_REQUESTS)),
                ),
                AccessRequest.status != RequestStatus.DRAFT,
            )
            .order_by(Review.id)
        )
        with self.ctx.db.read() as session:
            org = session.get(Organisation, org_id)
            assert org is not None  # a node key belongs to an existing organisation
            total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
            reviews = list(session.scalars(stmt.offset(offset).limit(limit)).unique())
            items = [self._out(session, r) for r in reviews]
            return NodeDecisionPage(
                organisation_id=org.id,
                organisation_name=org.name,
                total=total,
                offset=offset,
                limit=limit,
                items=items,
            )

    @staticmethod
    def _out(session: Session, r: Review) -> NodeDecisionOut:
        req = session.get(AccessRequest, r.request_id)
        assert req is not None
        reviewer = session.get(User, r.decided_by) if r.decided_by is not None else None
        return NodeDecisionOut(
            review_id=r.id,
            request_id=req.id,
            project_id=project_id(req.id),
            producer_id=r.producer_id,
            producer_name=r.producer.name,
            review_status=r.status,
            request_status=req.status,
            action=_action(r, req),
            purpose=str(req.purpose[0]) if req.purpose else "",
            purposes=[str(x) for x in req.purpose],
            output_type=req.output_type,
            conditions=r.conditions,
            decided_at=r.decided_at,
            decided_by=reviewer.name if reviewer is not None else "system",
            ends_at=req.ends_at,
            changed_at=_changed_at(r, req),
        )
