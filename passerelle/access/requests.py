"""Access requests and each producer's review (service layer).

Every status change goes through the transitions table (workflow.py), is checked against the
caller's role and organisation (permissions.py) and writes the audit chain in the same
transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from passerelle.access import deadlines
from passerelle.access import permissions as perm
from passerelle.access.auth import SYSTEM_ACTOR, Principal
from passerelle.access.context import Context, actor_of
from passerelle.access.enums import (
    APPROVED_REVIEWS,
    Owner,
    RequestStatus,
    ReviewStatus,
    Role,
)
from passerelle.access.errors import Conflict, Invalid, NotFound
from passerelle.access.mail import Mail
from passerelle.access.models import AccessRequest, RequestDataset, Review
from passerelle.access.repository import AccessData
from passerelle.access.schemas import (
    DecisionIn,
    ExtensionIn,
    Page,
    RequestIn,
    RequestOut,
    RequestPage,
    ReviewOut,
    ReviewPage,
    TickOut,
)
from passerelle.access.studies import validate_studies
from passerelle.access.workflow import (
    REQUEST_TRANSITIONS,
    REVIEW_TRANSITIONS,
    find_transition,
)

DAYS_PER_MONTH = 30.4375  # mean Gregorian month


def _request(dal: AccessData, request_id: int) -> AccessRequest:
    req = dal.get_request(request_id)
    if req is None:
        raise NotFound(f"request {request_id} does not exist")
    return req


def _review(dal: AccessData, review_id: int) -> Review:
    review = dal.get_review(review_id)
    if review is None:
        raise NotFound(f"review {review_id} does not exist")
    return review


@dataclass(frozen=True)
class _Reminder:
    review_id: int
    producer_id: int
    request_id: int
    state: str
    due_at: datetime


class Requests:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    # -- views ------------------------------------------------------------------------------
    def review_out(self, r: Review, now: datetime | None = None) -> ReviewOut:
        return ReviewOut(**self._review_fields(r, r.producer.name, now or self.ctx.clock.now()))

    def _review_fields(self, r: Any, producer_name: str, now: datetime) -> dict[str, Any]:
        """ReviewOut's fields from a Review, or from a row with the same names."""
        return {
            "id": r.id,
            "request_id": r.request_id,
            "producer_id": r.producer_id,
            "producer_name": producer_name,
            "status": r.status,
            "review_days": r.review_days,
            "started_at": r.started_at,
            "due_at": r.due_at,
            "paused": r.paused_at is not None,
            "days_left": deadlines.days_left(r, now),
            "clock": deadlines.clock_state(r, now, self.ctx.settings.near_due_days),
            "extension_days": r.extension_days,
            "extension_reason": r.extension_reason,
            "conditions": r.conditions,
            "comment": r.comment,
            "decided_at": r.decided_at,
            "on_silence": r.on_silence,
        }

    def request_out(self, req: AccessRequest) -> RequestOut:
        now = self.ctx.clock.now()
        return RequestOut(
            id=req.id,
            organisation_id=req.organisation_id,
            organisation_name=req.organisation.name,
            created_by=req.created_by,
            title=req.title,
            purpose=req.purpose,  # type: ignore[arg-type]
            description=req.description,
            public_interest=req.public_interest,
            gdpr_art6=req.gdpr_art6,
            gdpr_art9=req.gdpr_art9,
            methodology=req.methodology,
            cnil_reference=req.cnil_reference,
            ethics_approval=req.ethics_approval,
            dataset_ids=req.dataset_ids,
            studies=req.studies,
            domains=req.domains,
            period_start=req.period_start,
            period_end=req.period_end,
            output_type=req.output_type,
            duration_months=req.duration_months,
            team=req.team,
            status=req.status,
            created_at=req.created_at,
            submitted_at=req.submitted_at,
            activated_at=req.activated_at,
            ends_at=req.ends_at,
            closed_at=req.closed_at,
            reviews=[self.review_out(r, now) for r in req.reviews],
        )

    def get(self, p: Principal | None, request_id: int) -> RequestOut:
        with self.ctx.uow.read() as dal:
            req = _request(dal, request_id)
            if p is not None:
                perm.may_read_request(p, req)
            return self.request_out(req)

    def list(
        self,
        p: Principal | None,
        status: RequestStatus | None = None,
        offset: int = 0,
        limit: int = 50,
    ) -> Page[RequestOut]:
        # Validated once, as a whole (the same checks as RequestOut(...) per item).
        return RequestPage.model_validate(self.list_rows(p, status, offset, limit))

    def list_rows(
        self,
        p: Principal | None,
        status: RequestStatus | None = None,
        offset: int = 0,
        limit: int = 50,
    ) -> dict[str, Any]:
        """The requests the caller may see, as plain values shaped like Page[RequestOut]
        (what `list` validates; the API serialises them as they are)."""
        org_id = producer_id = None
        if p is not None:
            if p.kind == "user" and p.has(Role.APPLICANT, Role.ADMIN, Role.AUDITOR):
                org_id = p.organisation_id
            if p.kind == "node" or p.has(Role.REVIEWER, Role.STEWARD, Role.ADMIN, Role.AUDITOR):
                producer_id = p.organisation_id
            if org_id is None and producer_id is None:
                return {"total": 0, "offset": offset, "limit": limit, "items": []}
        with self.ctx.uow.rows() as rows:
            found = rows.request_page(org_id, producer_id, status, offset, limit)
        now = self.ctx.clock.now()
        items = []
        for item in found.requests:
            item["reviews"] = [
                self._review_fields(r, r.producer_name, now) for r in found.reviews[item["id"]]
            ]
            items.append(item)
        return {"total": found.total, "offset": offset, "limit": limit, "items": items}

    def queue(
        self,
        p: Principal | None,
        producer_id: int | None = None,
        status: ReviewStatus | None = None,
        offset: int = 0,
        limit: int = 50,
    ) -> Page[ReviewOut]:
        """A producer's reviews, the nearest deadline first."""
        if p is not None:
            perm.require_role(p, Role.REVIEWER)
            producer_id = p.organisation_id
        if producer_id is None:
            raise Invalid("producer_id is required")
        with self.ctx.uow.read() as dal:
            total, rows = dal.review_queue(producer_id, status, offset, limit)
            now = self.ctx.clock.now()
            items = [self.review_out(r, now) for r in rows]
            return ReviewPage(total=total, offset=offset, limit=limit, items=items)

    # -- the applicant ----------------------------------------------------------------------
    def _check_datasets(self, dal: AccessData, ids: Sequence[int]) -> None:
        found = {d.id: d for d in dal.datasets(ids)}
        for i in ids:
            if i not in found or not found[i].published:
                raise Invalid(f"dataset_ids: dataset {i} does not exist or is not published")

    def create(
        self,
        p: Principal | None,
        data: RequestIn,
        organisation_id: int | None = None,
        created_by: int | None = None,
    ) -> RequestOut:
        if p is not None:
            perm.require_role(p, Role.APPLICANT)
            organisation_id, created_by = p.organisation_id, p.user_id
        if organisation_id is None or created_by is None:
            raise Invalid("organisation_id and created_by are required")
        validate_studies(data.studies)
        now = self.ctx.clock.now()
        with self.ctx.uow.write() as dal:
            self._check_datasets(dal, data.dataset_ids)
            fields = data.model_dump(mode="json", exclude={"dataset_ids"})
            fields.update(period_start=data.period_start, period_end=data.period_end)
            req = AccessRequest(
                **fields,
                organisation_id=organisation_id,
                created_by=created_by,
                status=RequestStatus.DRAFT,
                created_at=now,
                updated_at=now,
            )
            req.dataset_links = [RequestDataset(dataset_id=i) for i in data.dataset_ids]
            dal.add(req)
            dal.audit(
                actor_of(p),
                "request.create",
                "request",
                req.id,
                {"datasets": data.dataset_ids, "purpose": fields["purpose"]},
            )
            return self.request_out(req)

    def update(self, p: Principal | None, request_id: int, data: RequestIn) -> RequestOut:
        validate_studies(data.studies)
        with self.ctx.uow.write() as dal:
            req = _request(dal, request_id)
            if p is not None:
                perm.may_act_as_applicant(p, req)
            changes_open = any(r.status == ReviewStatus.CHANGES_REQUESTED for r in req.reviews)
            if req.status != RequestStatus.DRAFT and not (
                req.status == RequestStatus.SUBMITTED and changes_open
            ):
                raise Conflict(
                    f"request {request_id} is {req.status.value}; it can be edited as a draft "
                    "or while a producer asks for changes"
                )
            if req.status != RequestStatus.DRAFT and data.dataset_ids != req.dataset_ids:
                raise Conflict("datasets cannot change after submission; file a new request")
            self._check_datasets(dal, data.dataset_ids)
            fields = data.model_dump(mode="json", exclude={"dataset_ids"})
            fields.update(period_start=data.period_start, period_end=data.period_end)
            for key, value in fields.items():
                setattr(req, key, value)
            if req.status == RequestStatus.DRAFT:
                req.dataset_links = [RequestDataset(dataset_id=i) for i in data.dataset_ids]
            req.updated_at = self.ctx.clock.now()
            dal.add(req)
            dal.audit(actor_of(p), "request.update", "request", req.id, {"fields": sorted(fields)})
            return self.request_out(req)

    def submit(self, p: Principal | None, request_id: int) -> RequestOut:
        now = self.ctx.clock.now()
        with self.ctx.uow.write() as dal:
            req = _request(dal, request_id)
            if p is not None:
                perm.may_act_as_applicant(p, req)
            t = find_transition(
                REQUEST_TRANSITIONS, req.status, RequestStatus.SUBMITTED, Owner.APPLICANT
            )
            if not req.dataset_ids:
                raise Invalid("dataset_ids: name at least one dataset before submitting")
            if not req.gdpr_art6 or not req.gdpr_art9:
                raise Invalid("gdpr_art6 and gdpr_art9: state the legal basis before submitting")
            datasets = dal.datasets(req.dataset_ids)
            producers = sorted({d.organisation_id for d in datasets})
            req.status, req.submitted_at, req.updated_at = RequestStatus.SUBMITTED, now, now
            dal.audit(actor_of(p), t.action, "request", req.id, {"producers": producers})
            for producer_id in producers:
                org = dal.get_org(producer_id)
                days = (org.review_days if org else None) or self.ctx.settings.review_days
                review = Review(
                    request_id=req.id, producer_id=producer_id, status=ReviewStatus.IN_REVIEW
                )
                deadlines.start(review, now, days)
                req.reviews.append(review)
                dal.add(review)
                dal.audit(
                    SYSTEM_ACTOR,
                    "review.open",
                    "review",
                    review.id,
                    {
                        "request_id": req.id,
                        "producer_id": producer_id,
                        "due_at": review.due_at.isoformat(),
                    },
                )
            return self.request_out(req)

    def close(self, p: Principal | None, request_id: int) -> RequestOut:
        with self.ctx.uow.write() as dal:
            req = _request(dal, request_id)
            owner = Owner.APPLICANT
            if p is not None:
                owner = Owner(perm.may_close(p, req).value)
            t = find_transition(REQUEST_TRANSITIONS, req.status, RequestStatus.CLOSED, owner)
            now = self.ctx.clock.now()
            req.status, req.closed_at, req.updated_at = RequestStatus.CLOSED, now, now
            dal.audit(actor_of(p), t.action, "request", req.id, {"from": t.source.value})
            return self.request_out(req)

    def resubmit(self, p: Principal | None, review_id: int) -> RequestOut:
        """After changes: the producer's review starts again and its clock resumes."""
        now = self.ctx.clock.now()
        with self.ctx.uow.write() as dal:
            review = _review(dal, review_id)
            req = _request(dal, review.request_id)
            if p is not None:
                perm.may_act_as_applicant(p, req)
            t = find_transition(
                REVIEW_TRANSITIONS, review.status, ReviewStatus.IN_REVIEW, Owner.APPLICANT
            )
            review.status = ReviewStatus.IN_REVIEW
            deadlines.resume(review, now)
            review.reminded_at = None
            dal.audit(
                actor_of(p),
                t.action,
                "review",
                review.id,
                {"request_id": req.id, "due_at": review.due_at.isoformat()},
            )
            return self.request_out(req)

    # -- the reviewer -----------------------------------------------------------------------
    def decide(self, p: Principal | None, review_id: int, data: DecisionIn) -> RequestOut:
        now = self.ctx.clock.now()
        with self.ctx.uow.write() as dal:
            review = _review(dal, review_id)
            if p is not None:
                perm.may_review(p, review)
            t = find_transition(REVIEW_TRANSITIONS, review.status, data.status, Owner.REVIEWER)
            review.status = data.status
            review.conditions, review.comment = data.conditions, data.comment
            if data.status == ReviewStatus.CHANGES_REQUESTED:
                deadlines.pause(review, now)
            else:
                review.decided_at = now
                review.decided_by = p.user_id if p else None
            dal.audit(
                actor_of(p),
                t.action,
                "review",
                review.id,
                {
                    "request_id": review.request_id,
                    "status": data.status.value,
                    "conditions": bool(data.conditions),
                },
            )
            req = _request(dal, review.request_id)
            self._sync(dal, req, now)
            return self.request_out(req)

    def extend(self, p: Principal | None, review_id: int, data: ExtensionIn) -> RequestOut:
        with self.ctx.uow.write() as dal:
            review = _review(dal, review_id)
            if p is not None:
                perm.may_review(p, review)
            if review.status not in (ReviewStatus.IN_REVIEW, ReviewStatus.CHANGES_REQUESTED):
                raise Conflict(f"review {review_id} is {review.status.value}; nothing to extend")
            if review.extension_days:
                raise Conflict(f"review {review_id} was already extended once")
            deadlines.extend(review, data.days, data.reason)
            dal.audit(
                actor_of(p),
                "review.extend",
                "review",
                review.id,
                {"days": data.days, "reason": data.reason, "due_at": review.due_at.isoformat()},
            )
            return self.request_out(_request(dal, review.request_id))

    # -- the platform's own rules -----------------------------------------------------------
    def _sync(self, dal: AccessData, req: AccessRequest, now: datetime) -> None:
        """Submitted -> active on the first approval; -> rejected when every producer rejects."""
        if req.status != RequestStatus.SUBMITTED:
            return
        statuses = [r.status for r in req.reviews]
        if any(s in APPROVED_REVIEWS for s in statuses):
            t = find_transition(REQUEST_TRANSITIONS, req.status, RequestStatus.ACTIVE, Owner.SYSTEM)
            req.status, req.activated_at = RequestStatus.ACTIVE, now
            req.ends_at = now + timedelta(days=req.duration_months * DAYS_PER_MONTH)
        elif statuses and all(s == ReviewStatus.REJECTED for s in statuses):
            t = find_transition(
                REQUEST_TRANSITIONS, req.status, RequestStatus.REJECTED, Owner.SYSTEM
            )
            req.status, req.closed_at = RequestStatus.REJECTED, now
        else:
            return
        req.updated_at = now
        dal.audit(SYSTEM_ACTOR, t.action, "request", req.id, {"to": req.status.value})

    def tick(self) -> TickOut:
        """Apply the clock: reminders (near due, overdue), approval on silence, expiry."""
        now = self.ctx.clock.now()
        s = self.ctx.settings
        reminders: list[_Reminder] = []
        silenced = expired = 0
        with self.ctx.uow.write() as dal:
            for review in dal.open_reviews():
                state = deadlines.clock_state(review, now, s.near_due_days)
                if state == deadlines.OVERDUE and s.approve_on_silence:
                    t = find_transition(
                        REVIEW_TRANSITIONS, review.status, ReviewStatus.APPROVED, Owner.SYSTEM
                    )
                    review.status, review.decided_at, review.on_silence = (
                        ReviewStatus.APPROVED,
                        now,
                        True,
                    )
                    dal.audit(
                        SYSTEM_ACTOR,
                        t.action,
                        "review",
                        review.id,
                        {"request_id": review.request_id, "due_at": review.due_at.isoformat()},
                    )
                    self._sync(dal, _request(dal, review.request_id), now)
                    silenced += 1
                    continue
                if state in (deadlines.NEAR_DUE, deadlines.OVERDUE) and self._should_remind(
                    review, state
                ):
                    review.reminded_at = now
                    dal.audit(
                        SYSTEM_ACTOR,
                        "review.remind",
                        "review",
                        review.id,
                        {"state": state, "due_at": review.due_at.isoformat()},
                    )
                    reminders.append(
                        _Reminder(
                            review.id, review.producer_id, review.request_id, state, review.due_at
                        )
                    )
            for req in dal.requests_ending(now):
                t = find_transition(
                    REQUEST_TRANSITIONS, req.status, RequestStatus.EXPIRED, Owner.SYSTEM
                )
                req.status, req.updated_at = RequestStatus.EXPIRED, now
                dal.audit(
                    SYSTEM_ACTOR,
                    t.action,
                    "request",
                    req.id,
                    {"ends_at": req.ends_at.isoformat() if req.ends_at else None},
                )
                expired += 1
            recipients = {
                r.review_id: tuple(
                    u.email for u in dal.users_with_role(r.producer_id, Role.REVIEWER)
                )
                for r in reminders
            }
        for r in reminders:  # after commit: a failed send does not undo the reminder record
            if recipients[r.review_id]:
                self._send(r, recipients[r.review_id])
        return TickOut(reminded=len(reminders), approved_on_silence=silenced, expired=expired)

    @staticmethod
    def _should_remind(review: Review, state: str) -> bool:
        if review.reminded_at is None:
            return True
        # One reminder when near due, one more once overdue.
        return state == deadlines.OVERDUE and review.reminded_at < review.due_at

    def _send(self, r: _Reminder, to: tuple[str, ...]) -> None:
        word = "is overdue" if r.state == deadlines.OVERDUE else "is due soon"
        assert self.ctx.mailer is not None
        self.ctx.mailer.send(
            Mail(
                to=to,
                subject=f"[Passerelle] review {r.review_id} of request {r.request_id} {word}",
                body=(
                    f"The review {r.review_id} of access request {r.request_id} {word}: "
                    f"its deadline is {r.due_at:%Y-%m-%d %H:%M} UTC.\n"
                    f"Open your review queue to decide.\n"
                ),
            )
        )
