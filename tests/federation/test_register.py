"""A node's own register: approvals (active, expired, revoked) and persisted nonces."""

from __future__ import annotations

import datetime as dt

from passerelle.federation.register import NodeRegister

NOW = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)


def test_approvals_expire_and_are_revoked(tmp_path):
    reg = NodeRegister(tmp_path / "node.db")
    reg.approve(
        "p1",
        "research",
        "aggregates",
        "committee",
        "CSE-2026-12",
        NOW + dt.timedelta(days=30),
        now=NOW,
    )
    [a] = reg.approvals_of("p1")
    assert a.active(NOW) and not a.active(NOW + dt.timedelta(days=31))
    assert reg.revoke("p1", now=NOW + dt.timedelta(days=1)) == 1
    assert not reg.approvals_of("p1")[0].active(NOW + dt.timedelta(days=2))
    assert reg.approvals_of("p2") == []


def test_a_nonce_is_accepted_once_and_kept_until_it_expires(tmp_path):
    reg = NodeRegister(tmp_path / "node.db")
    expires = NOW + dt.timedelta(minutes=5)
    assert reg.use_nonce("n1", expires, NOW)
    assert not reg.use_nonce("n1", expires, NOW + dt.timedelta(minutes=1))
    reg.close()
    again = NodeRegister(tmp_path / "node.db")  # persisted across restarts
    assert not again.use_nonce("n1", expires, NOW + dt.timedelta(minutes=2))
    assert again.use_nonce("n2", expires, NOW)


def test_the_served_log_holds_no_result(tmp_path):
    reg = NodeRegister(tmp_path / "node.db")
    reg.log("study", "p1", "r1", "ab" * 32, "released")
    [row] = reg.served_log()
    assert set(row) == {
        "id",
        "at",
        "kind",
        "project_id",
        "request_id",
        "envelope_sha256",
        "outcome",
    }
