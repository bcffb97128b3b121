"""The audit chain: appends in the caller's transaction; edit, delete, reorder and truncate
are each detected and the first broken entry is named."""

from __future__ import annotations

import pytest
from sqlalchemy import delete, select, update

from passerelle.access import audit
from passerelle.access.models import AuditEntry


def _fill(ctx, n=6):
    with ctx.db.write() as s:
        for i in range(n):
            audit.append(s, ctx.clock, "cli", "test.event", "thing", i, {"i": i, "note": "é"})


def _verify(ctx):
    with ctx.db.read() as s:
        return audit.verify(s)


def test_an_intact_chain_verifies_and_exposes_its_head(ctx):
    _fill(ctx)
    v = _verify(ctx)
    assert v.ok and v.count == 6
    with ctx.db.read() as s:
        h = audit.head(s)
    assert h.count == 6 and h.hash == v.head_hash and len(h.hash) == 64


def test_an_empty_chain_verifies(ctx):
    v = _verify(ctx)
    assert v.ok and v.count == 0 and v.head_hash == audit.GENESIS


def test_an_append_rolls_back_with_its_transaction(ctx):
    _fill(ctx, 2)
    with pytest.raises(RuntimeError), ctx.db.write() as s:
        audit.append(s, ctx.clock, "cli", "test.event", "thing", 99, {})
        raise RuntimeError("the state change failed")
    v = _verify(ctx)
    assert v.ok and v.count == 2


def test_edit_is_detected(ctx):
    _fill(ctx)
    with ctx.db.write() as s:
        s.execute(update(AuditEntry).where(AuditEntry.seq == 3).values(actor="user:666"))
    v = _verify(ctx)
    assert not v.ok and v.first_broken == 3 and "hash" in v.problem
    assert "entry 3" in v.message()


def test_edit_with_a_recomputed_hash_breaks_the_next_link(ctx):
    _fill(ctx)
    with ctx.db.write() as s:
        e = s.get(AuditEntry, 3)
        e.details = '{"i":999}'
        e.hash = audit.entry_hash(
            e.prev_hash, e.seq, e.at, e.actor, e.action, e.object_type, e.object_id, e.details
        )
    v = _verify(ctx)
    assert not v.ok and v.first_broken == 4


def test_delete_is_detected(ctx):
    _fill(ctx)
    with ctx.db.write() as s:
        s.execute(delete(AuditEntry).where(AuditEntry.seq == 2))
    v = _verify(ctx)
    assert not v.ok and v.first_broken == 2 and "missing" in v.problem


def test_reorder_is_detected(ctx):
    _fill(ctx)
    with ctx.db.write() as s:
        a, b = s.get(AuditEntry, 2), s.get(AuditEntry, 4)
        cols = ("at", "actor", "action", "object_type", "object_id", "details", "prev_hash", "hash")
        va, vb = ({c: getattr(x, c) for c in cols} for x in (a, b))
        for c in cols:
            setattr(a, c, vb[c])
            setattr(b, c, va[c])
    v = _verify(ctx)
    assert not v.ok and v.first_broken == 2


def test_truncation_is_detected_by_the_checkpoint(ctx):
    _fill(ctx)
    with ctx.db.write() as s:
        s.execute(delete(AuditEntry).where(AuditEntry.seq >= 5))
    v = _verify(ctx)
    assert not v.ok and v.first_broken == 5 and "truncated" in v.problem
    with ctx.db.read() as s:
        assert s.scalar(select(AuditEntry.seq).order_by(AuditEntry.seq.desc())) == 4


def test_concurrent_writers_keep_one_chain(ctx):
    """Appends from many threads serialize on the checkpoint: no fork, no gap."""
    from concurrent.futures import ThreadPoolExecutor

    def write(i):
        with ctx.db.write() as s:
            audit.append(s, ctx.clock, f"user:{i}", "test.concurrent", "thing", i, {"i": i})

    with ThreadPoolExecutor(max_workers=6) as pool:
        list(pool.map(write, range(40)))
    v = _verify(ctx)
    assert v.ok and v.count == 40
