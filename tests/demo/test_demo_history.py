"""The request history: the survey's purpose shares, determinism, and a replay through the
access services whose audit chain verifies and whose observatory shows the shares."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from passerelle.access import audit
from passerelle.access.clock import MovableClock
from passerelle.access.context import Context
from passerelle.access.db import Database
from passerelle.access.enums import OrgType, Purpose, RequestStatus
from passerelle.cli import main
from passerelle.config import Settings, get_settings
from passerelle.demo.history import (
    HISTORY_DAYS,
    PURPOSE_SHARES,
    REQUESTS_PER_TYPE,
    apportion,
    plan_history,
    replay,
)
from passerelle.demo.seed import seed_accounts, seed_catalogue

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
SURVEY = {
    OrgType.HOSPITAL: (Purpose.RESEARCH, 0.26),
    OrgType.BIOTECH: (Purpose.RESEARCH, 0.45),
    OrgType.DIGITAL_HEALTH: (Purpose.RESEARCH, 0.303),
    OrgType.PUBLIC_BODY: (Purpose.PUBLIC_POLICY, 0.416),
}


def test_shares_add_up_and_the_survey_figures_are_first():
    for kind, shares in PURPOSE_SHARES.items():
        assert sum(shares.values()) == pytest.approx(1.0), kind
    for kind, (purpose, share) in SURVEY.items():
        shares = PURPOSE_SHARES[kind]
        assert shares[purpose] == share and max(shares.values()) == share
    assert PURPOSE_SHARES[OrgType.PUBLIC_BODY][Purpose.RESEARCH] == 0.326
    assert sum(REQUESTS_PER_TYPE.values()) == 300


def test_apportion_is_exact_to_one_request():
    got = Counter(apportion(33, PURPOSE_SHARES[OrgType.DIGITAL_HEALTH]))
    assert sum(got.values()) == 33 and got[Purpose.RESEARCH] == 10  # 30.3 % of 33
    for kind, n in REQUESTS_PER_TYPE.items():
        got = Counter(apportion(n, PURPOSE_SHARES[kind]))
        for purpose, share in PURPOSE_SHARES[kind].items():
            assert abs(got[purpose] - n * share) < 1, (kind, purpose)


def test_the_plan_is_deterministic_and_submitted_requests_follow_the_shares():
    a, b = plan_history(NOW, seed=5), plan_history(NOW, seed=5)
    assert [(p.applicant, p.purpose, p.created_at) for p in a] == [
        (p.applicant, p.purpose, p.created_at) for p in b
    ]
    assert [p.created_at for p in plan_history(NOW, seed=6)] != [p.created_at for p in a]
    submitted = [p for p in a if p.submitted_at is not None]
    assert len(submitted) == 300 and len(a) > 300  # drafts come on top
    for kind, (purpose, share) in SURVEY.items():
        mine = [p for p in submitted if p.actor_type == kind]
        assert abs(sum(p.purpose == purpose for p in mine) - share * len(mine)) < 1
    assert all(NOW - timedelta(days=HISTORY_DAYS) <= p.created_at <= NOW for p in a)
    assert all(p.submitted_at <= NOW for p in submitted)  # so the shares hold in the observatory


def _utc(at: datetime | str) -> datetime:
    at = datetime.fromisoformat(at) if isinstance(at, str) else at
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def test_replay_through_the_services_writes_a_verified_backdated_chain(tmp_path):
    settings = Settings(data_dir=tmp_path, app_db_url=f"sqlite:///{tmp_path / 'app.db'}")
    db = Database.from_settings(settings)
    db.upgrade()
    clock = MovableClock(NOW - timedelta(days=HISTORY_DAYS + 30))
    ctx = Context(db, settings, clock)
    seeded = seed_accounts(ctx)
    seed_catalogue(ctx, seeded, {}, 2012, 2024)
    plans = plan_history(NOW, seed=1, scale=0.1)
    history = replay(ctx, clock, seeded, plans, NOW)
    assert history.played > len(plans)
    with db.read() as s:
        verdict = audit.verify(s)
        assert verdict.ok, verdict.message
        from passerelle.access.models import AccessRequest, AuditEntry

        times = [_utc(e.at) for e in s.query(AuditEntry).order_by(AuditEntry.seq)]
        statuses = Counter(r.status for r in s.query(AccessRequest))
    assert times == sorted(times)  # replayed in time order
    assert times[-1] <= NOW
    assert statuses[RequestStatus.ACTIVE] > 0
    assert statuses[RequestStatus.DRAFT] == sum(p.submitted_at is None for p in plans)
    assert history.approvals and all(a[1].startswith("request-") for a in history.approvals)


def test_the_full_demo_refuses_a_bad_person_count(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PASSERELLE_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    try:
        with pytest.raises(SystemExit) as exc:
            main(["demo", "--persons", "0", "--check"])
    finally:
        get_settings.cache_clear()
    assert exc.value.code == 2
    assert "persons" in capsys.readouterr().err
    assert not (tmp_path / "demo").exists()
