"""The tamper-evident audit chain.

Each entry hashes the previous entry's hash and its own canonical JSON (sorted keys, no
whitespace, UTF-8): sha256(prev_hash || canonical(seq, at, actor, action, object, details)).
A checkpoint row holds the chain's length and head hash and is updated in the same transaction
as every append, so deleting the last entries (truncation) is detected too. Appends happen in
the caller's transaction: a state change and its audit entry commit or roll back together.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.orm import Session

from passerelle.access.clock import Clock
from passerelle.access.models import AuditCheckpoint, AuditEntry

GENESIS = "0" * 64
CHECKPOINT_ID = 1


def canonical(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)


def entry_hash(
    prev_hash: str,
    seq: int,
    at: str,
    actor: str,
    action: str,
    object_type: str,
    object_id: str,
    details: str,
) -> str:
    body = canonical(
        {
            "seq": seq,
            "at": at,
            "actor": actor,
            "action": action,
            "object": f"{object_type}:{object_id}",
            "details": details,
        }
    )
    return hashlib.sha256(prev_hash.encode() + body).hexdigest()


def append(
    session: Session,
    clock: Clock,
    actor: str,
    action: str,
    object_type: str,
    object_id: object,
    details: dict[str, Any] | None = None,
) -> AuditEntry:
    """Add one entry in the session's transaction (locks the checkpoint until commit)."""
    checkpoint = session.execute(
        select(AuditCheckpoint)
        .where(AuditCheckpoint.id == CHECKPOINT_ID)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one()
    seq = checkpoint.count + 1
    at = clock.now().isoformat(timespec="microseconds")
    details_json = canonical(details or {}).decode()
    oid = str(object_id)
    digest = entry_hash(
        checkpoint.head_hash, seq, at, actor, action, object_type, oid, details_json
    )
    entry = AuditEntry(
        seq=seq,
        at=at,
        actor=actor,
        action=action,
        object_type=object_type,
        object_id=oid,
        details=details_json,
        prev_hash=checkpoint.head_hash,
        hash=digest,
    )
    session.add(entry)
    checkpoint.count = seq
    checkpoint.head_hash = digest
    session.flush()
    return entry


@dataclass(frozen=True)
class Head:
    count: int
    hash: str


def head(session: Session) -> Head:
    cp = session.get(AuditCheckpoint, CHECKPOINT_ID)
    if cp is None:
        return Head(0, GENESIS)
    return Head(cp.count, cp.head_hash)


@dataclass(frozen=True)
class Verification:
    ok: bool
    count: int  # entries checked
    head_hash: str
    first_broken: int | None = None  # seq of the first entry that does not verify
    problem: str = ""

    def message(self) -> str:
        if self.ok:
            return f"audit chain verified: {self.count} entries, head {self.head_hash}"
        where = f"entry {self.first_broken}" if self.first_broken is not None else "the chain"
        return f"audit chain broken at {where}: {self.problem}"


def _entries(session: Session, batch: int = 5000) -> Iterator[AuditEntry]:
    stmt = select(AuditEntry).order_by(AuditEntry.seq).execution_options(yield_per=batch)
    yield from session.scalars(stmt)


def verify(session: Session) -> Verification:
    """Recompute the whole chain; name the first entry that is missing, edited or moved."""
    prev = GENESIS
    expected = 1
    for e in _entries(session):
        if e.seq != expected:
            return Verification(False, expected - 1, prev, expected, "entry is missing (deleted)")
        if e.prev_hash != prev:
            return Verification(
                False, expected - 1, prev, e.seq, "previous-hash link does not match (reordered)"
            )
        digest = entry_hash(
            prev, e.seq, e.at, e.actor, e.action, e.object_type, e.object_id, e.details
        )
        if digest != e.hash:
            return Verification(False, expected - 1, prev, e.seq, "content does not match its hash")
        prev = e.hash
        expected += 1
    count = expected - 1
    cp = session.get(AuditCheckpoint, CHECKPOINT_ID)
    if cp is None:
        return Verification(False, count, prev, None, "checkpoint row is missing")
    if cp.count != count or cp.head_hash != prev:
        first = count + 1 if cp.count > count else None
        return Verification(
            False,
            count,
            prev,
            first,
            f"checkpoint records {cp.count} entries but {count} remain (truncated or altered)",
        )
    return Verification(True, count, prev)


def list_entries(
    session: Session, offset: int, limit: int, object_type: str | None = None
) -> tuple[int, list[AuditEntry]]:
    from sqlalchemy import func

    stmt = select(AuditEntry)
    count_stmt = select(func.count()).select_from(AuditEntry)
    if object_type:
        stmt = stmt.where(AuditEntry.object_type == object_type)
        count_stmt = count_stmt.where(AuditEntry.object_type == object_type)
    total = session.scalar(count_stmt) or 0
    rows = session.scalars(stmt.order_by(AuditEntry.seq.desc()).offset(offset).limit(limit))
    return total, list(rows)
