"""Each producer's review clock: due date, pause while changes are requested, one extension.

due = started + review_days + extension_days + time spent paused. While paused, the clock is
frozen: days left stay what they were when changes were requested.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from passerelle.access.enums import ReviewStatus
from passerelle.access.models import Review
from passerelle.access.workflow import REVIEW_FINAL

ON_TIME, NEAR_DUE, OVERDUE, PAUSED, DECIDED = "on_time", "near_due", "overdue", "paused", "decided"


def due_at(review: Review) -> datetime:
    return (
        review.started_at
        + timedelta(days=review.review_days + review.extension_days)
        + timedelta(seconds=review.paused_seconds)
    )


def start(review: Review, now: datetime, days: int) -> None:
    review.review_days = days
    review.started_at = now
    review.paused_at = None
    review.paused_seconds = 0
    review.extension_days = 0
    review.due_at = due_at(review)


def pause(review: Review, now: datetime) -> None:
    review.paused_at = now


def resume(review: Review, now: datetime) -> None:
    if review.paused_at is not None:
        review.paused_seconds += int((now - review.paused_at).total_seconds())
        review.paused_at = None
    review.due_at = due_at(review)


def extend(review: Review, days: int, reason: str) -> None:
    review.extension_days = days
    review.extension_reason = reason
    review.due_at = due_at(review)


def days_left(review: Review, now: datetime) -> float:
    reference = review.paused_at or review.decided_at or now
    return round((review.due_at - reference).total_seconds() / 86400, 2)


def clock_state(review: Review, now: datetime, near_due_days: int) -> str:
    if review.status in REVIEW_FINAL:
        return DECIDED
    if review.status == ReviewStatus.CHANGES_REQUESTED:
        return PAUSED
    left = days_left(review, now)
    if left < 0:
        return OVERDUE
    if left <= near_due_days:
        return NEAR_DUE
    return ON_TIME
