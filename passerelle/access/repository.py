"""The data-access protocol the services use, and its SQLAlchemy implementation.

Services never build queries themselves; they call these methods inside one unit of work
(a transaction) and write the audit chain through the same object, so a state change and its
audit entry commit together.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import Session

from passerelle.access import audit
from passerelle.access.clock import Clock
from passerelle.access.db import Database
from passerelle.access.enums import OrgType, RequestStatus, ReviewStatus, Role
from passerelle.access.models import (
    AccessRequest,
    AuditEntry,
    Dataset,
    LoginAttempt,
    Organisation,
    Review,
    Token,
    User,
    UserRole,
)


@dataclass(frozen=True)
class Credential:
    """What authentication needs about a token or key, read in one query."""

    token_id: int
    kind: str
    expires_at: datetime | None
    revoked_at: datetime | None
    organisation_id: int
    organisation_type: OrgType
    user_id: int | None
    user_active: bool
    roles: frozenset[Role]


class AccessData(Protocol):
    """What the business logic needs from storage."""

    def add(self, obj: Any) -> Any: ...
    def delete(self, obj: Any) -> None: ...
    def audit(
        self, actor: str, action: str, object_type: str, object_id: object, details: dict[str, Any]
    ) -> AuditEntry: ...

    def get_org(self, org_id: int) -> Organisation | None: ...
    def org_by_name(self, name: str) -> Organisation | None: ...
    def list_orgs(self, offset: int, limit: int) -> tuple[int, list[Organisation]]: ...

    def get_user(self, user_id: int) -> User | None: ...
    def user_by_email(self, email: str) -> User | None: ...
    def user_by_subject(self, subject: str) -> User | None: ...
    def list_users(self, org_id: int, offset: int, limit: int) -> tuple[int, list[User]]: ...
    def users_with_role(self, org_id: int, role: Role) -> list[User]: ...

    def token_by_hash(self, token_hash: str) -> Token | None: ...
    def credential(self, token_hash: str) -> Credential | None: ...
    def get_token(self, token_id: int) -> Token | None: ...
    def list_api_keys(self, org_id: int) -> list[Token]: ...
    def failures_since(self, email: str, since: datetime) -> int: ...

    def get_dataset(self, dataset_id: int) -> Dataset | None: ...
    def datasets(self, ids: Sequence[int]) -> list[Dataset]: ...

    def get_request(self, request_id: int) -> AccessRequest | None: ...
    def list_requests(
        self,
        org_id: int | None,
        producer_id: int | None,
        status: RequestStatus | None,
        offset: int,
        limit: int,
    ) -> tuple[int, list[AccessRequest]]: ...
    def get_review(self, review_id: int) -> Review | None: ...
    def review_queue(
        self, producer_id: int, status: ReviewStatus | None, offset: int, limit: int
    ) -> tuple[int, list[Review]]: ...
    def open_reviews(self) -> list[Review]: ...
    def requests_ending(self, now: datetime) -> list[AccessRequest]: ...


def _page(session: Session, stmt: Select[Any], offset: int, limit: int) -> tuple[int, list[Any]]:
    total = session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery())) or 0
    rows = list(session.scalars(stmt.offset(offset).limit(limit)).unique())
    return total, rows


class SqlAccessData:
    def __init__(self, session: Session, clock: Clock) -> None:
        self.session = session
        self.clock = clock

    def add(self, obj: Any) -> Any:
        self.session.add(obj)
        self.session.flush()
        return obj

    def delete(self, obj: Any) -> None:
        self.session.delete(obj)
        self.session.flush()

    def audit(
        self, actor: str, action: str, object_type: str, object_id: object, details: dict[str, Any]
    ) -> AuditEntry:
        return audit.append(
            self.session, self.clock, actor, action, object_type, object_id, details
        )

    # organisations and users
    def get_org(self, org_id: int) -> Organisation | None:
        return self.session.get(Organisation, org_id)

    def org_by_name(self, name: str) -> Organisation | None:
        return self.session.scalar(select(Organisation).where(Organisation.name == name))

    def list_orgs(self, offset: int, limit: int) -> tuple[int, list[Organisation]]:
        return _page(self.session, select(Organisation).order_by(Organisation.id), offset, limit)

    def get_user(self, user_id: int) -> User | None:
        return self.session.get(User, user_id)

    def user_by_email(self, email: str) -> User | None:
        return self.session.scalar(select(User).where(User.email == email.lower()))

    def user_by_subject(self, subject: str) -> User | None:
        return self.session.scalar(select(User).where(User.oidc_subject == subject))

    def list_users(self, org_id: int, offset: int, limit: int) -> tuple[int, list[User]]:
        stmt = select(User).where(User.organisation_id == org_id).order_by(User.id)
        return _page(self.session, stmt, offset, limit)

    def users_with_role(self, org_id: int, role: Role) -> list[User]:
        stmt = (
            select(User)
            .join(UserRole)
            .where(User.organisation_id == org_id, UserRole.role == role, User.active)
            .order_by(User.id)
        )
        return list(self.session.scalars(stmt).unique())

    def token_by_hash(self, token_hash: str) -> Token | None:
        return self.session.scalar(select(Token).where(Token.token_hash == token_hash))

    def credential(self, token_hash: str) -> Credential | None:
        row = self.session.execute(
            select(
                Token.id,
                Token.kind,
                Token.expires_at,
                Token.revoked_at,
                Token.organisation_id,
                Organisation.type,
                Token.user_id,
                User.active,
            )
            .join(Organisation, Organisation.id == Token.organisation_id)
            .outerjoin(User, User.id == Token.user_id)
            .where(Token.token_hash == token_hash)
        ).one_or_none()
        if row is None:
            return None
        roles: frozenset[Role] = frozenset()
        if row[6] is not None:
            roles = frozenset(
                self.session.scalars(select(UserRole.role).where(UserRole.user_id == row[6]))
            )
        return Credential(
            row[0], row[1], row[2], row[3], row[4], row[5], row[6], bool(row[7]), roles
        )

    def get_token(self, token_id: int) -> Token | None:
        return self.session.get(Token, token_id)

    def list_api_keys(self, org_id: int) -> list[Token]:
        stmt = select(Token).where(Token.organisation_id == org_id, Token.kind == "api_key")
        return list(self.session.scalars(stmt.order_by(Token.id)))

    def failures_since(self, email: str, since: datetime) -> int:
        last_ok = self.session.scalar(
            select(func.max(LoginAttempt.at)).where(
                LoginAttempt.email == email, LoginAttempt.success, LoginAttempt.at >= since
            )
        )
        start = max(since, last_ok) if last_ok else since
        stmt = select(func.count()).where(
            LoginAttempt.email == email, ~LoginAttempt.success, LoginAttempt.at >= start
        )
        return self.session.scalar(stmt) or 0

    # catalogue
    def get_dataset(self, dataset_id: int) -> Dataset | None:
        return self.session.get(Dataset, dataset_id)

    def datasets(self, ids: Sequence[int]) -> list[Dataset]:
        if not ids:
            return []
        return list(self.session.scalars(select(Dataset).where(Dataset.id.in_(list(ids)))))

    # requests and reviews
    def get_request(self, request_id: int) -> AccessRequest | None:
        return self.session.get(AccessRequest, request_id)

    def list_requests(
        self,
        org_id: int | None,
        producer_id: int | None,
        status: RequestStatus | None,
        offset: int,
        limit: int,
    ) -> tuple[int, list[AccessRequest]]:
        """Requests filed by org_id, or naming producer_id (submitted ones), or both (OR)."""
        stmt = select(AccessRequest)
        visible = []
        if org_id is not None:
            visible.append(AccessRequest.organisation_id == org_id)
        if producer_id is not None:
            reviewed = select(Review.request_id).where(Review.producer_id == producer_id)
            visible.append(AccessRequest.id.in_(reviewed))
        if visible:
            stmt = stmt.where(or_(*visible))
        if status is not None:
            stmt = stmt.where(AccessRequest.status == status)
        return _page(self.session, stmt.order_by(AccessRequest.id.desc()), offset, limit)

    def get_review(self, review_id: int) -> Review | None:
        return self.session.get(Review, review_id)

    def review_queue(
        self, producer_id: int, status: ReviewStatus | None, offset: int, limit: int
    ) -> tuple[int, list[Review]]:
        stmt = select(Review).where(Review.producer_id == producer_id)
        if status is not None:
            stmt = stmt.where(Review.status == status)
        return _page(self.session, stmt.order_by(Review.due_at, Review.id), offset, limit)

    def open_reviews(self) -> list[Review]:
        stmt = select(Review).where(Review.status == ReviewStatus.IN_REVIEW).order_by(Review.id)
        return list(self.session.scalars(stmt))

    def requests_ending(self, now: datetime) -> list[AccessRequest]:
        stmt = select(AccessRequest).where(
            AccessRequest.status == RequestStatus.ACTIVE, AccessRequest.ends_at <= now
        )
        return list(self.session.scalars(stmt))


class UnitOfWork:
    """Opens a transaction and hands out the data-access object bound to it."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock

    @contextmanager
    def write(self) -> Iterator[SqlAccessData]:
        with self.db.write() as session:
            yield SqlAccessData(session, self.clock)

    @contextmanager
    def read(self) -> Iterator[SqlAccessData]:
        with self.db.read() as session:
            yield SqlAccessData(session, self.clock)
