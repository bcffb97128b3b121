"""The data-access protocol the services use, and its SQLAlchemy implementation.

Services never build queries themselves; they call these methods inside one unit of work
(a transaction) and write the audit chain through the same object, so a state change and its
audit entry commit together.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import (
    JSON,
    Connection,
    Select,
    String,
    bindparam,
    cast,
    func,
    literal_column,
    or_,
    select,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

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
    RequestDataset,
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
    def request_page(
        self,
        org_id: int | None,
        producer_id: int | None,
        status: RequestStatus | None,
        offset: int,
        limit: int,
    ) -> RequestRows: ...
    def get_review(self, review_id: int) -> Review | None: ...
    def review_queue(
        self, producer_id: int, status: ReviewStatus | None, offset: int, limit: int
    ) -> tuple[int, list[Review]]: ...
    def open_reviews(self) -> list[Review]: ...
    def requests_ending(self, now: datetime) -> list[AccessRequest]: ...


_TOKEN, _ORG, _USER, _ROLE = (
    Token.__table__.c,
    Organisation.__table__.c,
    User.__table__.c,
    UserRole.__table__.c,
)
_CREDENTIAL = (
    select(
        _TOKEN.id,
        _TOKEN.kind,
        _TOKEN.expires_at,
        _TOKEN.revoked_at,
        _TOKEN.organisation_id,
        _ORG.type,
        _TOKEN.user_id,
        _USER.active,
        _ROLE.role,
    )
    .select_from(Token.__table__)
    .join(Organisation.__table__, _ORG.id == _TOKEN.organisation_id)
    .outerjoin(User.__table__, _USER.id == _TOKEN.user_id)
    .outerjoin(UserRole.__table__, _ROLE.user_id == _USER.id)
    .where(_TOKEN.token_hash == bindparam("token_hash"))
)


@dataclass(frozen=True)
class RequestRows:
    """A page of requests as plain rows (no ORM objects), with their datasets and reviews."""

    total: int
    requests: list[dict[str, Any]]  # REQUEST_COLUMNS by name, and "dataset_ids" (sorted)
    reviews: dict[int, list[ReviewRow]]  # request id -> its reviews, by review id


class json_objects(FunctionElement[Any]):
    """An aggregate: a JSON array of one object per row, from (key, value, key, value, ...)
    with literal keys. json_agg(json_build_object(...)) on PostgreSQL,
    json_group_array(json_object(...)) on SQLite; an empty group gives NULL or '[]'."""

    name = "json_objects"
    type = JSON()
    inherit_cache = True


# The aggregate's SQL per dialect (compiled by SQLAlchemy from this table).
JSON_OBJECTS_SQL = {
    "postgresql": "json_agg(json_build_object({}))",
    "sqlite": "json_group_array(json_object({}))",
}


def _json_objects_sql(dialect: str) -> Any:
    def compile_(element: json_objects, compiler: SQLCompiler, **kw: Any) -> str:
        return JSON_OBJECTS_SQL[dialect].format(compiler.process(element.clauses, **kw))

    return compile_


for _dialect in JSON_OBJECTS_SQL:
    compiles(json_objects, _dialect)(_json_objects_sql(_dialect))


def _utc(text: str | None) -> datetime | None:
    """A timestamp read from JSON, as UTCDateTime reads it from a column (SQLite writes it
    naive in UTC, PostgreSQL with its offset)."""
    if text is None:
        return None
    value = datetime.fromisoformat(text)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class ReviewRow:
    """A review as the listing reads it (REVIEW_COLUMNS by name, typed as the columns are)."""

    id: int
    request_id: int
    producer_id: int
    producer_name: str
    status: ReviewStatus
    review_days: int
    started_at: datetime
    due_at: datetime
    paused_at: datetime | None
    extension_days: int
    extension_reason: str
    conditions: str
    comment: str
    decided_at: datetime | None
    on_silence: bool

    @classmethod
    def from_json(cls, r: dict[str, Any]) -> ReviewRow:
        return cls(
            r["id"],
            r["request_id"],
            r["producer_id"],
            r["producer_name"],
            ReviewStatus(r["status"]),
            r["review_days"],
            _utc(r["started_at"]),  # type: ignore[arg-type]
            _utc(r["due_at"]),  # type: ignore[arg-type]
            _utc(r["paused_at"]),
            r["extension_days"],
            r["extension_reason"],
            r["conditions"],
            r["comment"],
            _utc(r["decided_at"]),
            bool(r["on_silence"]),  # SQLite's JSON has no booleans: 0 / 1
        )


# What a request listing shows (RequestOut without its datasets and reviews).
REQUEST_COLUMNS = (
    AccessRequest.id,
    AccessRequest.organisation_id,
    Organisation.name.label("organisation_name"),
    AccessRequest.created_by,
    AccessRequest.title,
    AccessRequest.purpose,
    AccessRequest.description,
    AccessRequest.public_interest,
    AccessRequest.gdpr_art6,
    AccessRequest.gdpr_art9,
    AccessRequest.methodology,
    AccessRequest.cnil_reference,
    AccessRequest.ethics_approval,
    AccessRequest.studies,
    AccessRequest.domains,
    AccessRequest.period_start,
    AccessRequest.period_end,
    AccessRequest.output_type,
    AccessRequest.duration_months,
    AccessRequest.team,
    AccessRequest.status,
    AccessRequest.created_at,
    AccessRequest.submitted_at,
    AccessRequest.activated_at,
    AccessRequest.ends_at,
    AccessRequest.closed_at,
)
# What a review shows, and what its clock needs (paused_at).
REVIEW_COLUMNS = (
    Review.id,
    Review.request_id,
    Review.producer_id,
    Organisation.name.label("producer_name"),
    Review.status,
    Review.review_days,
    Review.started_at,
    Review.due_at,
    Review.paused_at,
    Review.extension_days,
    Review.extension_reason,
    Review.conditions,
    Review.comment,
    Review.decided_at,
    Review.on_silence,
)
REQUEST_KEYS: tuple[str, ...] = tuple(select(*REQUEST_COLUMNS).selected_columns.keys())


# A page row's dataset ids, aggregated in the same statement ("3,1,2": string_agg on
# PostgreSQL, group_concat on SQLite, as SQLAlchemy compiles aggregate_strings per dialect).
def _dataset_ids(request_id: Any) -> Any:
    return (
        select(func.aggregate_strings(cast(RequestDataset.dataset_id, String), ","))
        .where(RequestDataset.request_id == request_id)
        .scalar_subquery()
    )


# A page row's reviews, aggregated in the same statement as JSON objects (REVIEW_COLUMNS by
# name; the producer's organisation aliased).
_PRODUCER = Organisation.__table__.alias("producer")
_REVIEW = Review.__table__.c
_REVIEW_FIELDS: list[Any] = [
    *(getattr(_REVIEW, c.key) for c in REVIEW_COLUMNS if c.key != "producer_name"),
    _PRODUCER.c.name.label("producer_name"),
]
_REVIEW_PAIRS: list[Any] = []  # 'id', reviews.id, 'request_id', reviews.request_id, ...
for _field in _REVIEW_FIELDS:
    _REVIEW_PAIRS += [literal_column(f"'{_field.key}'"), _field]


def _reviews(request_id: Any) -> Any:
    return (
        select(json_objects(*_REVIEW_PAIRS))
        .select_from(Review.__table__.join(_PRODUCER, _PRODUCER.c.id == _REVIEW.producer_id))
        .where(_REVIEW.request_id == request_id)
        .scalar_subquery()
    )


@dataclass(frozen=True)
class _RequestStatements:
    page: Select[Any]  # binds offset and limit
    count: Select[Any]


@functools.lru_cache(maxsize=16)
def _request_statements(by_org: bool, by_producer: bool, by_status: bool) -> _RequestStatements:
    """The listing's statements for one combination of filters, built once."""
    where = []
    visible = []
    if by_org:
        visible.append(AccessRequest.organisation_id == bindparam("org_id"))
    if by_producer:
        reviewed = select(Review.request_id).where(Review.producer_id == bindparam("producer_id"))
        visible.append(AccessRequest.id.in_(reviewed))
    if visible:
        where.append(or_(*visible))
    if by_status:
        where.append(AccessRequest.status == bindparam("status"))
    # The page's request ids, each with the total of matching rows (count over the whole
    # result before OFFSET / LIMIT: only a page past the end needs the count statement); ids
    # only, so the window and the sort carry narrow rows ...
    ids = (
        select(AccessRequest.id, func.count().over().label("total"))
        .where(*where)
        .order_by(AccessRequest.id.desc())
        .offset(bindparam("offset"))
        .limit(bindparam("limit"))
        .subquery("page")
    )
    # ... then those requests' columns, dataset ids and reviews (in the same select as the
    # window, SQLite would aggregate them for every matching row: 16 times the time on 300).
    page = (
        select(
            *REQUEST_COLUMNS,
            _dataset_ids(AccessRequest.id).label("dataset_ids"),
            _reviews(AccessRequest.id).label("reviews"),
            ids.c.total,
        )
        .select_from(ids)
        .join(AccessRequest, AccessRequest.id == ids.c.id)
        .join(Organisation, Organisation.id == AccessRequest.organisation_id)
        .order_by(AccessRequest.id.desc())
    )
    count = select(func.count()).select_from(AccessRequest).where(*where)
    return _RequestStatements(page, count)


def _page(session: Session, stmt: Select[Any], offset: int, limit: int) -> tuple[int, list[Any]]:
    total = session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery())) or 0
    rows = list(session.scalars(stmt.offset(offset).limit(limit)).unique())
    return total, rows


class RowReader:
    """The hot read paths (authentication, the request listing) as Core statements on one
    connection: plain rows, no ORM objects, no session to set up."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def credential(self, token_hash: str) -> Credential | None:
        # One Core statement (no ORM objects): a row per role,
        # or one row with no role for a node key or a user without roles.
        rows = self.conn.execute(_CREDENTIAL, {"token_hash": token_hash}).all()
        if not rows:
            return None
        first = rows[0]
        roles = frozenset(Role(r.role) for r in rows if r.role is not None)
        return Credential(
            first.id,
            first.kind,
            first.expires_at,
            first.revoked_at,
            first.organisation_id,
            first.type,
            first.user_id,
            bool(first.active),
            roles,
        )

    def request_page(
        self,
        org_id: int | None,
        producer_id: int | None,
        status: RequestStatus | None,
        offset: int,
        limit: int,
    ) -> RequestRows:
        """Requests filed by org_id, or naming producer_id (submitted ones), or both (OR),
        newest first; plain values read by one statement (the page with its dataset ids, its
        reviews as JSON and the total), whatever the page size; a page past the end also
        counts."""
        stmts = _request_statements(org_id is not None, producer_id is not None, status is not None)
        params = {"org_id": org_id, "producer_id": producer_id, "status": status}
        conn = self.conn
        rows = conn.execute(stmts.page, {**params, "offset": offset, "limit": limit}).all()
        # Past the end there is no row to carry the total: count.
        total = rows[0][-1] if rows else conn.execute(stmts.count, params).scalar_one()
        keys = REQUEST_KEYS
        requests = []
        reviews: dict[int, list[ReviewRow]] = {}
        for row in rows:
            item = dict(zip(keys, row, strict=False))
            linked = row[-3]
            item["dataset_ids"] = sorted(int(i) for i in linked.split(",")) if linked else []
            requests.append(item)
            found = [ReviewRow.from_json(r) for r in row[-2] or ()]
            found.sort(key=lambda r: r.id)
            reviews[row[0]] = found
        return RequestRows(total, requests, reviews)


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
        return RowReader(self.session.connection()).credential(token_hash)

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

    def request_page(
        self,
        org_id: int | None,
        producer_id: int | None,
        status: RequestStatus | None,
        offset: int,
        limit: int,
    ) -> RequestRows:
        return RowReader(self.session.connection()).request_page(
            org_id, producer_id, status, offset, limit
        )

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

    @contextmanager
    def rows(self) -> Iterator[RowReader]:
        """A read on a bare connection, for the Core-only read paths."""
        with self.db.rows() as conn:
            yield RowReader(conn)
