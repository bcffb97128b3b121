"""The lifecycle of an access request: one explicit transitions table naming each owner.

A request moves draft -> submitted; on submission each producer named by its datasets gets a
review (in review). A review ends approved, approved with conditions, or rejected, or asks for
changes (its clock pauses until the applicant resubmits). The request becomes active when any
producer approves, rejected when all reject, then expired (its duration ran out) or closed.

This module says *what a state allows* (policies). *Who* a user is with respect to an object
(own organisation, producer) is in permissions.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from passerelle.access.enums import Owner, RequestStatus, ReviewStatus
from passerelle.access.errors import Conflict


@dataclass(frozen=True)
class Transition:
    source: StrEnum
    target: StrEnum
    owner: Owner
    action: str  # the audit action name


R, V = RequestStatus, ReviewStatus

REQUEST_TRANSITIONS: tuple[Transition, ...] = (
    Transition(R.DRAFT, R.SUBMITTED, Owner.APPLICANT, "request.submit"),
    Transition(R.DRAFT, R.CLOSED, Owner.APPLICANT, "request.close"),
    Transition(R.SUBMITTED, R.ACTIVE, Owner.SYSTEM, "request.activate"),
    Transition(R.SUBMITTED, R.REJECTED, Owner.SYSTEM, "request.reject"),
    Transition(R.SUBMITTED, R.CLOSED, Owner.APPLICANT, "request.close"),
    Transition(R.ACTIVE, R.EXPIRED, Owner.SYSTEM, "request.expire"),
    Transition(R.ACTIVE, R.CLOSED, Owner.APPLICANT, "request.close"),
    Transition(R.ACTIVE, R.CLOSED, Owner.ADMIN, "request.close"),
)

REVIEW_TRANSITIONS: tuple[Transition, ...] = (
    Transition(V.IN_REVIEW, V.APPROVED, Owner.REVIEWER, "review.approve"),
    Transition(V.IN_REVIEW, V.APPROVED_WITH_CONDITIONS, Owner.REVIEWER, "review.approve"),
    Transition(V.IN_REVIEW, V.CHANGES_REQUESTED, Owner.REVIEWER, "review.request_changes"),
    Transition(V.IN_REVIEW, V.REJECTED, Owner.REVIEWER, "review.reject"),
    Transition(V.CHANGES_REQUESTED, V.IN_REVIEW, Owner.APPLICANT, "review.resubmit"),
    Transition(V.IN_REVIEW, V.APPROVED, Owner.SYSTEM, "review.approve_on_silence"),
)

# Statuses a request or review starts in (not the target of any transition).
REQUEST_INITIAL = R.DRAFT
REVIEW_INITIAL = V.IN_REVIEW
REQUEST_FINAL = frozenset({R.REJECTED, R.EXPIRED, R.CLOSED})
REVIEW_FINAL = frozenset({V.APPROVED, V.APPROVED_WITH_CONDITIONS, V.REJECTED})


def find_transition(
    table: tuple[Transition, ...], source: StrEnum, target: StrEnum, owner: Owner
) -> Transition:
    """The table's row for (source, target, owner), or Conflict naming what is allowed."""
    for t in table:
        if t.source == source and t.target == target and t.owner == owner:
            return t
    allowed = sorted({t.target.value for t in table if t.source == source and t.owner == owner})
    hint = f"; allowed: {', '.join(allowed)}" if allowed else ""
    raise Conflict(f"cannot move from {source.value} to {target.value} as {owner.value}{hint}")


def allowed_targets(table: tuple[Transition, ...], source: StrEnum, owner: Owner) -> list[str]:
    return sorted({t.target.value for t in table if t.source == source and t.owner == owner})
