"""Differential privacy: OpenDP noise, the budget ledger, the same answer to the same query."""

from __future__ import annotations

import statistics
from datetime import UTC, datetime

import pytest
from sqlalchemy import create_engine, inspect

from passerelle.privacy import dp
from passerelle.privacy.ledger import (
    BudgetExhausted,
    BudgetLedger,
    DPNotAllowed,
    create_ledger_tables,
    period_of,
)
from passerelle.privacy.policy import BudgetPeriod, Mechanism, parse_policy
from passerelle.query.result import AggregateTable, ResultColumn, StudyResult


@pytest.fixture
def engine(tmp_path):
    eng = create_engine(f"sqlite:///{tmp_path / 'app.sqlite'}")
    create_ledger_tables(eng)
    return eng


def policy(**dp_values):
    return parse_policy({"policy": "t", "dp": dp_values})


def test_tables_created(engine):
    names = set(inspect(engine).get_table_names())
    assert {"privacy_budget_spend", "privacy_noisy_answer"} <= names


@pytest.mark.parametrize("mechanism", list(Mechanism))
def test_noise_is_calibrated(mechanism):
    rel = dp.release_for(mechanism, 0.1, 1, 1e-7)
    if mechanism is Mechanism.laplace:
        assert rel.scale == pytest.approx(10.0)
    assert rel.scale > 1
    draws = [dp.noisy_count(1000, epsilon=0.1, mechanism=mechanism, delta=1e-7) for _ in range(400)]
    assert len(set(draws)) > 20  # really random
    # unbiased: the mean of n draws lies within 6 standard errors of the count (a false alarm
    # about once in 500 million runs; a fixed bound of 5 failed one run in twenty for the
    # Gaussian, whose sigma here is about 44)
    sd = rel.scale * (2**0.5 if mechanism is Mechanism.laplace else 1.0)
    assert abs(sum(draws) / len(draws) - 1000) < 6 * sd / len(draws) ** 0.5
    # and the spread is the stated scale's, within 30 % (over 5 standard errors)
    spread = statistics.pstdev(draws)
    assert 0.7 * sd < spread < 1.3 * sd


def test_same_query_same_answer_and_budget(engine):
    pol = policy(feasibility_epsilon=0.25, applicant_budget=1.0)
    ledger = BudgetLedger(engine, pol)
    calls = []

    def count():
        calls.append(1)
        return 479

    first = ledger.feasibility_count("alice", {"cohort": "gi"}, count)
    assert not first.cached and "noisy" in first.flags and first.remaining == pytest.approx(0.75)
    again = [ledger.feasibility_count("alice", {"cohort": "gi"}, count) for _ in range(20)]
    assert {a.display for a in again} == {first.display} and all(a.cached for a in again)
    assert len(calls) == 1 and ledger.remaining_for_applicant("alice") == pytest.approx(0.75)
    for i in range(3):
        ledger.feasibility_count("alice", {"cohort": f"q{i}"}, count)
    with pytest.raises(BudgetExhausted, match="renews on"):
        ledger.feasibility_count("alice", {"cohort": "new"}, count)
    # another applicant has their own budget; the cached answer stays free
    assert not ledger.feasibility_count("bob", {"cohort": "new"}, count).cached
    assert ledger.feasibility_count("alice", {"cohort": "gi"}, count).display == first.display


def test_budget_renews_with_the_period(engine):
    now = [datetime(2026, 11, 28, tzinfo=UTC)]
    pol = policy(feasibility_epsilon=1.0, applicant_budget=1.0, period="month")
    ledger = BudgetLedger(engine, pol, clock=lambda: now[0])
    ledger.feasibility_count("a", {"q": 1}, lambda: 50)
    with pytest.raises(BudgetExhausted, match="2026-12-01"):
        ledger.feasibility_count("a", {"q": 2}, lambda: 50)
    now[0] = datetime(2026, 12, 2, tzinfo=UTC)
    assert ledger.feasibility_count("a", {"q": 2}, lambda: 50).remaining == 0


def test_period_labels():
    when = datetime(2026, 11, 28, tzinfo=UTC)
    assert period_of(when, BudgetPeriod.month)[0] == "2026-11"
    assert period_of(when, BudgetPeriod.week)[0] == "2026-W48"
    assert period_of(when, BudgetPeriod.year)[1].isoformat() == "2027-01-01"


def test_small_noisy_counts_show_below_threshold(engine):
    ledger = BudgetLedger(engine, policy(feasibility_epsilon=1.0))
    ans = ledger.feasibility_count("a", {"q": "tiny"}, lambda: 0)
    if ans.value is None:
        assert ans.display == "<11" and "suppressed" in ans.flags
    else:
        assert ans.value == 0 or ans.value >= 10  # noisy zero, or at least the rounded threshold


def result():
    cols = (ResultColumn("sex", "dimension"), ResultColumn("persons", "count"))
    return StudyResult(
        "s", "duckdb", [AggregateTable("by_sex", "count", cols, [(1, 300), (2, 200)])]
    )


def test_project_dp_mode_budget_and_cache(engine):
    pol = policy(study_epsilon=1.0, project_budget=2.0)
    ledger = BudgetLedger(engine, pol)
    first = ledger.project_study("p1", {"study": "a"}, result())
    assert all("noisy" in f for f in first.table("by_sex").flags.values())
    assert first.policy == pol.label
    same = ledger.project_study("p1", {"study": "a"}, result())
    assert same.table("by_sex").rows == first.table("by_sex").rows
    assert same.table("by_sex").flags == first.table("by_sex").flags
    ledger.project_study("p1", {"study": "b"}, result())
    with pytest.raises(BudgetExhausted, match="does not renew"):
        ledger.project_study("p1", {"study": "c"}, result())


def test_dp_mode_off_refused(engine):
    ledger = BudgetLedger(engine, policy(mode="off"))
    with pytest.raises(DPNotAllowed):
        ledger.project_study("p", {"s": 1}, result())


def test_alembic_operations_match_the_model(tmp_path):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from alembic.operations import Operations

    from passerelle.privacy.ledger import alembic_downgrade, alembic_upgrade, metadata

    eng = create_engine(f"sqlite:///{tmp_path / 'migrated.sqlite'}")
    with eng.begin() as conn:
        ctx = MigrationContext.configure(conn)
        alembic_upgrade(Operations(ctx))
        assert compare_metadata(ctx, metadata) == []
        alembic_downgrade(Operations(ctx))
        assert not {"privacy_budget_spend", "privacy_noisy_answer"} & set(
            inspect(conn).get_table_names()
        )


def _hammer(engine, n_threads=8):
    from concurrent.futures import ThreadPoolExecutor

    pol = policy(feasibility_epsilon=0.1, applicant_budget=0.5)
    ledger = BudgetLedger(engine, pol)

    def ask(i):
        try:
            ledger.feasibility_count("eve", {"q": i}, lambda: 100)
            return True
        except BudgetExhausted:
            return False

    with ThreadPoolExecutor(n_threads) as pool:
        granted = sum(pool.map(ask, range(40)))
    assert granted == 5  # never more than the budget allows, even concurrently
    assert ledger.remaining_for_applicant("eve") == pytest.approx(0.0)


def test_concurrent_charges_never_overspend_sqlite(tmp_path):
    eng = create_engine(f"sqlite:///{tmp_path / 'c.sqlite'}", connect_args={"timeout": 30})
    create_ledger_tables(eng)
    _hammer(eng)


@pytest.mark.postgres
def test_concurrent_charges_never_overspend_postgres(postgres_store_url):
    from passerelle.cdm.url import parse_store_url

    url = parse_store_url(postgres_store_url)
    schema = postgres_store_url.split("schema=")[1].split("&")[0]
    import psycopg

    conninfo = url.postgres_conninfo()
    eng = create_engine(
        "postgresql+psycopg://",
        creator=lambda: psycopg.connect(conninfo, options=f"-csearch_path={schema}"),
    )
    with eng.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
    create_ledger_tables(eng)
    _hammer(eng)
    eng.dispose()
