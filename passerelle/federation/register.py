"""A node's own records: the approvals its reviewers gave, the nonces it has seen, what it served.

A small SQLite (or any SQLAlchemy URL) database per node, kept by the hospital, not the hub:
the hub's single window records the workflow, but a node runs a study only when *its own*
register shows the project approved by its own committee for that purpose and output type.
A committee decision enters it by `passerelle node sync` (sync.py: the node pulls its own
organisation's decisions from the single window, each change recorded in `node_sync` with its
source), or by hand with `passerelle node approve` (or `revoke`) as a fallback.

`check_approved` is the one approval check (project, purpose, output type); `passerelle
extract` records what it released or refused in the served log (kind "extract") with its
details in `node_extracts`, the approval checked again in the same transaction.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import (
    Column,
    DateTime,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    bindparam,
    create_engine,
    delete,
    event,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from passerelle.federation.errors import Refused

if TYPE_CHECKING:
    from passerelle.privacy.release import ExtractRecord

metadata = MetaData()

approvals = Table(
    "node_approvals",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("project_id", String(120), nullable=False, index=True),
    Column("purpose", String(60), nullable=False),
    Column("output_type", String(60), nullable=False),
    Column("approved_by", String(200), nullable=False),
    Column("reference", String(200), nullable=False, default=""),
    Column("approved_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=True),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
)

nonces = Table(
    "node_nonces",
    metadata,
    Column("nonce", String(64), primary_key=True),
    Column("expires_at", DateTime(timezone=True), nullable=False, index=True),
)

served = Table(
    "node_served",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("project_id", String(120), nullable=False),
    Column("request_id", String(120), nullable=False),
    Column("envelope_sha256", String(64), nullable=False),
    Column("outcome", String(40), nullable=False),  # released | a refusal code
)


# What `passerelle extract` released or refused: one row per served-log row of kind "extract"
# (whose envelope_sha256 is the extract spec's sha256). Aggregates and file hashes only.
extracts = Table(
    "node_extracts",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("served_id", Integer, ForeignKey("node_served.id"), nullable=False, unique=True),
    Column("purpose", String(60), nullable=False),
    Column("policy", String(140), nullable=False, default=""),
    Column("reason", Text, nullable=False, default=""),  # why it was refused; "" when released
    Column("cohort_size", Integer, nullable=True),
    Column("records_released", Integer, nullable=True),
    Column("k", Integer, nullable=True),  # the target
    Column("k_reached", Integer, nullable=True),  # the smallest equivalence class released
    Column("l", Integer, nullable=True),
    Column("out_dir", Text, nullable=False, default=""),
    Column("files", Text, nullable=False, default="{}"),  # JSON {file name: sha256}
)


# Every decision applied from the single window, with its source: a decision is applied once
# (the unique key), so syncing twice changes nothing.
synced = Table(
    "node_sync",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("hub", String(300), nullable=False),
    Column("project_id", String(120), nullable=False, index=True),
    Column("review_id", Integer, nullable=False),
    Column("action", String(20), nullable=False),  # approve | revoke
    Column("review_status", String(40), nullable=False),
    Column("request_status", String(40), nullable=False),
    Column("decided_at", DateTime(timezone=True), nullable=True),
    Column("decided_by", String(200), nullable=False),
    Column("changed", Integer, nullable=False),  # approvals added or revoked
    UniqueConstraint("review_id", "action", "review_status", "request_status"),
)


# The statements of every request, built once (a node answers many envelopes).
_PURGE_NONCES = delete(nonces).where(nonces.c.expires_at < bindparam("now"))
_USE_NONCE = insert(nonces)
_SERVE = insert(served)
_APPROVALS_OF = select(approvals).where(approvals.c.project_id == bindparam("project_id"))


@dataclass(frozen=True)
class SyncedDecision:
    """A decision of the node's own committee as the single window lists it."""

    hub: str
    project_id: str
    review_id: int
    action: str  # approve | revoke
    review_status: str
    request_status: str
    purpose: str
    output_type: str
    decided_at: dt.datetime | None
    decided_by: str
    expires_at: dt.datetime | None

    @property
    def key(self) -> tuple[int, str, str, str]:
        return (self.review_id, self.action, self.review_status, self.request_status)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # WAL: readers never block the writer; synchronous=NORMAL: a commit survives a crash of the
    # process (what replay protection needs) without an fsync per request.
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=5000")
    cur.close()


def _aware(t: dt.datetime | None) -> dt.datetime | None:
    if t is not None and t.tzinfo is None:  # SQLite returns naive datetimes
        return t.replace(tzinfo=dt.UTC)
    return t


@dataclass(frozen=True)
class Approval:
    project_id: str
    purpose: str
    output_type: str
    approved_by: str
    reference: str
    approved_at: dt.datetime
    expires_at: dt.datetime | None
    revoked_at: dt.datetime | None

    def active(self, now: dt.datetime) -> bool:
        if self.revoked_at is not None and self.revoked_at <= now:
            return False
        return self.expires_at is None or now < self.expires_at


class NodeRegister:
    def __init__(self, url_or_path: str | Path) -> None:
        url = str(url_or_path)
        if "://" not in url:
            Path(url).parent.mkdir(parents=True, exist_ok=True)
            url = f"sqlite:///{url}"
        self.engine = create_engine(url)
        if url.startswith("sqlite"):
            event.listen(self.engine, "connect", _sqlite_pragmas)
        metadata.create_all(self.engine)
        self._lock = threading.Lock()

    def close(self) -> None:
        self.engine.dispose()

    # -- approvals ----------------------------------------------------------------------------
    def approve(
        self,
        project_id: str,
        purpose: str,
        output_type: str,
        approved_by: str,
        reference: str = "",
        expires_at: dt.datetime | None = None,
        now: dt.datetime | None = None,
    ) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                insert(approvals).values(
                    project_id=project_id,
                    purpose=purpose,
                    output_type=output_type,
                    approved_by=approved_by,
                    reference=reference,
                    approved_at=now or dt.datetime.now(dt.UTC),
                    expires_at=expires_at,
                )
            )

    def revoke(self, project_id: str, now: dt.datetime | None = None) -> int:
        with self.engine.begin() as conn:
            res = conn.execute(
                update(approvals)
                .where(approvals.c.project_id == project_id, approvals.c.revoked_at.is_(None))
                .values(revoked_at=now or dt.datetime.now(dt.UTC))
            )
            return int(getattr(res, "rowcount", 0))

    def approvals_of(self, project_id: str) -> list[Approval]:
        with self.engine.connect() as conn:
            rows = conn.execute(_APPROVALS_OF, {"project_id": project_id}).mappings()
            return [
                Approval(
                    r["project_id"],
                    r["purpose"],
                    r["output_type"],
                    r["approved_by"],
                    r["reference"],
                    _aware(r["approved_at"]) or r["approved_at"],
                    _aware(r["expires_at"]),
                    _aware(r["revoked_at"]),
                )
                for r in rows
            ]

    def all_approvals(self) -> list[Approval]:
        with self.engine.connect() as conn:
            ids = conn.execute(select(approvals.c.project_id).distinct()).scalars().all()
        return [a for pid in sorted(ids) for a in self.approvals_of(pid)]

    # -- decisions synced from the single window ---------------------------------------------
    def apply(self, d: SyncedDecision, now: dt.datetime | None = None) -> int | None:
        """Apply one decision and record it, in one transaction. None when it was applied
        before (nothing changes), else the number of approvals added or revoked."""
        now = now or dt.datetime.now(dt.UTC)
        with self._lock, self.engine.begin() as conn:
            done = conn.execute(
                select(synced.c.id).where(
                    synced.c.review_id == d.review_id,
                    synced.c.action == d.action,
                    synced.c.review_status == d.review_status,
                    synced.c.request_status == d.request_status,
                )
            ).first()
            if done is not None:
                return None
            if d.action == "approve":
                conn.execute(
                    insert(approvals).values(
                        project_id=d.project_id,
                        purpose=d.purpose,
                        output_type=d.output_type,
                        approved_by=d.decided_by,
                        reference=f"review {d.review_id} ({d.review_status}), {d.hub}",
                        approved_at=d.decided_at or now,
                        expires_at=d.expires_at,
                    )
                )
                changed = 1
            else:
                res = conn.execute(
                    update(approvals)
                    .where(approvals.c.project_id == d.project_id, approvals.c.revoked_at.is_(None))
                    .values(revoked_at=now)
                )
                changed = int(getattr(res, "rowcount", 0))
            conn.execute(
                insert(synced).values(
                    at=now,
                    hub=d.hub,
                    project_id=d.project_id,
                    review_id=d.review_id,
                    action=d.action,
                    review_status=d.review_status,
                    request_status=d.request_status,
                    decided_at=d.decided_at,
                    decided_by=d.decided_by,
                    changed=changed,
                )
            )
            return changed

    def sync_log(self) -> list[dict]:
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(select(synced).order_by(synced.c.id)).mappings()]

    # -- nonces -------------------------------------------------------------------------------
    def use_nonce(self, nonce: str, expires_at: dt.datetime, now: dt.datetime) -> bool:
        """Record a nonce; False when it was already used (a replay): the insert fails on the
        primary key and the transaction is rolled back. Expired ones are purged: an envelope
        past its expiry is refused anyway, so its nonce need not be kept."""
        try:
            with self._lock, self.engine.begin() as conn:
                conn.execute(_PURGE_NONCES, {"now": now})
                conn.execute(_USE_NONCE, {"nonce": nonce, "expires_at": expires_at})
        except IntegrityError:
            return False
        return True

    # -- what was served ----------------------------------------------------------------------
    def log(
        self, kind: str, project_id: str, request_id: str, envelope_sha256: str, outcome: str
    ) -> None:
        row = {
            "at": dt.datetime.now(dt.UTC),
            "kind": kind,
            "project_id": project_id,
            "request_id": request_id,
            "envelope_sha256": envelope_sha256,
            "outcome": outcome,
        }
        with self.engine.begin() as conn:
            conn.execute(_SERVE, row)

    def served_log(self) -> list[dict]:
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(select(served).order_by(served.c.id)).mappings()]

    # -- the approval check -------------------------------------------------------------------
    def check_approved(
        self,
        project_id: str,
        purpose: str,
        output_types: Collection[str],
        now: dt.datetime | None = None,
    ) -> Approval:
        """The active approval of `project_id` for `purpose` and one of `output_types` (the
        names an output type has: the single window's and the policy's); else `Refused` with
        code not_approved, forbidden_purpose or forbidden_output_type."""
        now = now or dt.datetime.now(dt.UTC)
        active = [a for a in self.approvals_of(project_id) if a.active(now)]
        if not active:
            raise Refused(
                f"project {project_id!r} is not approved by this node's reviewers",
                code="not_approved",
            )
        for_purpose = [a for a in active if a.purpose == purpose]
        if not for_purpose:
            raise Refused(
                f"project {project_id!r} is not approved for purpose {purpose!r}",
                code="forbidden_purpose",
            )
        for a in for_purpose:
            if a.output_type in output_types:
                return a
        raise Refused(
            f"project {project_id!r} is not approved for output type "
            f"{' / '.join(repr(t) for t in output_types)}",
            code="forbidden_output_type",
        )

    # -- extracts -----------------------------------------------------------------------------
    def record_extract(
        self,
        record: ExtractRecord,
        *,
        output_types: Collection[str] = (),
        publish: Callable[[], None] | None = None,
        now: dt.datetime | None = None,
    ) -> int:
        """Record an extract in the served log (kind "extract") with its details, in one
        transaction; returns the served-log id. For a release, pass `output_types`: the
        approval is checked again inside the transaction (a revocation that came in while the
        extract was being made refuses it), then `publish()` (which moves the files into
        place) runs before the commit, so a release is recorded if and only if it is published.
        """
        now = now or dt.datetime.now(dt.UTC)
        with self._lock, self.engine.begin() as conn:
            served_id = conn.execute(
                insert(served)
                .values(
                    at=now,
                    kind="extract",
                    project_id=record.project_id,
                    request_id=record.request_id,
                    envelope_sha256=record.spec_sha256,
                    outcome=record.outcome,
                )
                .returning(served.c.id)
            ).scalar_one()
            conn.execute(
                insert(extracts).values(
                    served_id=served_id,
                    purpose=record.purpose,
                    policy=record.policy,
                    reason=record.reason,
                    cohort_size=record.cohort_size,
                    records_released=record.records_released,
                    k=record.k,
                    k_reached=record.k_reached,
                    l=record.l,
                    out_dir=record.out_dir,
                    files=orjson.dumps(dict(record.files), option=orjson.OPT_SORT_KEYS).decode(),
                )
            )
            if output_types:  # written first: in SQLite this holds the write lock from here on
                self.check_approved(record.project_id, record.purpose, output_types, now)
            if publish is not None:
                publish()
            return int(served_id)

    def extract_log(self) -> list[dict]:
        """Every extract released or refused, oldest first: the served-log row with its details."""
        cols = [served.c.at, served.c.project_id, served.c.request_id, served.c.outcome]
        details = [c for c in extracts.c if c.name not in ("id", "served_id")]
        query = (
            select(served.c.id, *cols, served.c.envelope_sha256.label("spec_sha256"), *details)
            .join(extracts, extracts.c.served_id == served.c.id)
            .order_by(served.c.id)
        )
        with self.engine.connect() as conn:
            rows = [dict(r) for r in conn.execute(query).mappings()]
        for row in rows:
            row["at"] = _aware(row["at"])
            row["files"] = orjson.loads(row["files"])
        return rows
