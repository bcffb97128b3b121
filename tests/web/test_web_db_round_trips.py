"""What one API request costs the database: the bearer-token check and the endpoint's reads
share one pooled connection (one checkout per request), reads on PostgreSQL run in autocommit
(no BEGIN / ROLLBACK round trips), pooled connections are not pinged at every checkout, and a
connection the server dropped while idle is replaced without failing a request. Authorization
still reads the database on every request: a revoked token is refused at once."""

from __future__ import annotations

import re
import tempfile
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import event

from passerelle.access import db as dbmod
from passerelle.access.enums import Role
from passerelle.access.requests import Requests
from passerelle.access.schemas import RequestIn
from passerelle.catalog.schemas import DatasetIn
from passerelle.catalog.service import Catalog
from tests.fixtures.appdb import seed, token_for

LISTING = "/api/v1/requests?limit=20"
SEARCH = "/api/v1/datasets?q=stays"


@pytest.fixture
def listing(web_ctx):
    """An applicant with a few requests, and the applicant's bearer token."""
    s = seed(web_ctx)
    cat, svc = Catalog(web_ctx), Requests(web_ctx)
    ds = cat.create(
        s.p("hopa", Role.STEWARD),
        DatasetIn(
            title="Stays",
            description="Hospital stays",
            domains=["condition_occurrence"],
            contact_email="dpo@example.org",
        ),
    ).id
    for i in range(3):
        req = svc.create(
            s.p("bio", Role.APPLICANT),
            RequestIn(
                title=f"Study {i}",
                purpose=["research"],
                gdpr_art6="6.1.e",
                gdpr_art9="9.2.j",
                dataset_ids=[ds],
            ),
        )
        if i:
            svc.submit(s.p("bio", Role.APPLICANT), req.id)
    user = s.users[("bio", Role.APPLICANT)]
    return {"Authorization": f"Bearer {token_for(web_ctx, user)}"}, user


class Counts:
    """Checkouts and statements the app's engine sees (SQLAlchemy events)."""

    def __init__(self, engine) -> None:
        self.checkouts = 0
        self.statements: list[str] = []
        event.listen(engine, "checkout", self._checkout)
        event.listen(engine, "before_cursor_execute", self._execute)

    def _checkout(self, *_args) -> None:
        self.checkouts += 1

    def _execute(self, _conn, _cursor, statement, *_args) -> None:
        self.statements.append(statement.split()[0].upper())

    def reset(self) -> None:
        self.checkouts = 0
        self.statements.clear()


def test_listing_takes_one_connection_and_two_statements(client, web_ctx, listing):
    headers, _ = listing
    counts = Counts(web_ctx.db.engine)
    for _ in range(3):
        assert client.get(LISTING, headers=headers).status_code == 200
    counts.reset()
    for _ in range(10):
        assert client.get(LISTING, headers=headers).status_code == 200
    # The credential, then the page (with its dataset ids, reviews and total).
    assert counts.checkouts == 10
    assert Counter(s for s in counts.statements if s != "BEGIN") == {"SELECT": 20}


def test_search_takes_one_connection(client, web_ctx, listing):
    counts = Counts(web_ctx.db.engine)
    assert client.get(SEARCH).status_code == 200
    counts.reset()
    for _ in range(5):
        body = client.get(SEARCH).json()
        assert body["total"] == 1
    assert counts.checkouts == 5


def _round_trips(trace: Path) -> Counter[str]:
    """Frontend messages that end a round trip in a libpq trace: Query (simple protocol:
    BEGIN, ROLLBACK, a ping) by its text, and Sync (one extended-protocol statement)."""
    found: Counter[str] = Counter()
    for line in trace.read_text(errors="replace").replace("\0", "").splitlines():
        m = re.match(r"^[^\t]*\tF\t\d+\t(Query|Sync)\b(.*)$", line)
        if m:
            found[m.group(1) if m.group(1) == "Sync" else m.group(2).strip()] += 1
    return found


@pytest.mark.postgres
def test_postgres_listing_round_trips(client, web_ctx, listing, app_db_url):
    """On PostgreSQL a listing request is two statements and nothing else on the wire: no
    ping, no BEGIN, no ROLLBACK (libpq's own trace of every pooled connection)."""
    if not app_db_url.startswith("postgresql"):
        pytest.skip("PostgreSQL's wire protocol")
    headers, _ = listing
    engine = web_ctx.db.engine
    engine.dispose()  # new connections, traced from their first message
    with tempfile.TemporaryDirectory() as tmp:
        traces: list[Path] = []
        files = []

        def _trace(dbapi_conn, _record) -> None:
            path = Path(tmp) / f"{len(traces)}.trace"
            traces.append(path)
            f = path.open("w")
            files.append(f)
            dbapi_conn.pgconn.trace(f.fileno())

        event.listen(engine, "connect", _trace)
        try:
            for _ in range(8):  # past psycopg's prepare threshold (5 runs on a connection)
                assert client.get(LISTING, headers=headers).status_code == 200
            before = sum((_round_trips(t) for t in traces), Counter())
            for _ in range(10):
                assert client.get(LISTING, headers=headers).status_code == 200
            after = sum((_round_trips(t) for t in traces), Counter())
        finally:
            event.remove(engine, "connect", _trace)
            engine.dispose()
            for f in files:
                f.close()
    assert after - before == Counter({"Sync": 20})


@pytest.mark.postgres
def test_postgres_reads_are_not_in_a_transaction(web_ctx, listing, app_db_url):
    if not app_db_url.startswith("postgresql"):
        pytest.skip("PostgreSQL's autocommit reads")
    seen = []

    def _execute(conn, _cursor, _statement, *_args) -> None:
        seen.append(conn.connection.dbapi_connection.autocommit)

    event.listen(web_ctx.db.engine, "before_cursor_execute", _execute)
    try:
        with web_ctx.db.rows() as conn:
            conn.exec_driver_sql("SELECT 1")
        with web_ctx.db.shared_reads():
            for _ in range(2):
                with web_ctx.db.rows() as conn:
                    conn.exec_driver_sql("SELECT 1")
    finally:
        event.remove(web_ctx.db.engine, "before_cursor_execute", _execute)
    assert seen == [True, True, True]
    with web_ctx.db.write() as session:  # writes keep their transaction
        assert not session.connection().connection.dbapi_connection.autocommit


def test_shared_reads_share_one_connection_and_return_it(web_ctx):
    db = web_ctx.db
    with db.shared_reads():
        with db.rows() as first:
            first.exec_driver_sql("SELECT 1")
        with db.rows() as second:
            second.exec_driver_sql("SELECT 1")
        assert first is second
        assert db.engine.pool.checkedout() == 1
    assert db.engine.pool.checkedout() == 0
    with db.rows() as alone:  # outside: a connection of its own, as before
        assert alone is not first


def test_a_revoked_token_is_refused_at_once(client, web_ctx, listing):
    headers, _ = listing
    assert client.get(LISTING, headers=headers).status_code == 200
    token = headers["Authorization"].split()[1]
    assert client.post("/api/v1/auth/logout", headers=headers).status_code in (200, 204)
    resp = client.get(LISTING, headers=headers)
    assert resp.status_code == 401
    assert resp.json()["error"]["status"] == 401
    web_ctx.db.dispose()
    assert client.get(LISTING, headers={"Authorization": f"Bearer {token}"}).status_code == 401


def test_a_disabled_account_is_refused_at_once(client, web_ctx, listing):
    from passerelle.access.accounts import Accounts
    from passerelle.access.schemas import UserPatch

    headers, user = listing
    assert client.get(LISTING, headers=headers).status_code == 200
    Accounts(web_ctx).update_user(None, user, UserPatch(active=False))
    assert client.get(LISTING, headers=headers).status_code == 401


@pytest.mark.postgres
def test_postgres_connection_dropped_while_idle_is_replaced(
    client, web_ctx, listing, app_db_url, monkeypatch
):
    """The server ends an idle pooled connection (a restart, an idle timeout): the next
    request pings it at checkout, the pool connects anew, and the request succeeds."""
    if not app_db_url.startswith("postgresql"):
        pytest.skip("PostgreSQL's pooled connections")
    import psycopg

    headers, _ = listing
    assert client.get(LISTING, headers=headers).status_code == 200
    engine = web_ctx.db.engine
    conns = [engine.connect() for _ in range(engine.pool.checkedin())]  # every pooled one
    pids = {c.exec_driver_sql("SELECT pg_backend_pid()").scalar_one() for c in conns}
    for c in conns:
        c.close()
    admin = app_db_url.split("?")[0].replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(admin, autocommit=True) as admin_conn:
        for pid in pids:
            admin_conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
    monkeypatch.setattr(dbmod, "IDLE_PING_SECONDS", 0.0)
    for _ in range(3):
        assert client.get(LISTING, headers=headers).status_code == 200


def test_shared_reads_take_a_slot_or_read_on_their_own(web_ctx):
    db = web_ctx.db
    slots = db.share_slots._value
    for _ in range(slots):  # every slot taken by other requests
        db.share_slots.acquire()
    try:
        with db.shared_reads():
            with db.rows() as conn:
                conn.exec_driver_sql("SELECT 1")
            assert db.engine.pool.checkedout() == 0  # nothing held between reads
    finally:
        for _ in range(slots):
            db.share_slots.release()


def test_a_session_gives_the_shared_connection_back_first(web_ctx):
    db = web_ctx.db
    with db.shared_reads():
        with db.rows() as conn:
            conn.exec_driver_sql("SELECT 1")
        assert db.engine.pool.checkedout() == 1
        with db.write() as session:
            session.connection()
            assert db.engine.pool.checkedout() == 1  # the write's, not two
        with db.rows() as conn:  # taken again
            conn.exec_driver_sql("SELECT 1")
        assert db.engine.pool.checkedout() == 1
    assert db.engine.pool.checkedout() == 0
    assert db.share_slots._value == dbmod._share_slots(db.engine)


def test_many_requests_on_a_small_pool_and_few_threads_do_not_wait_on_each_other(
    settings, clock, monkeypatch
):
    """More concurrent requests than pooled connections plus worker threads: requests that
    hold a shared connection between their thread-pool calls never hold them all, so those
    waiting for a connection in a worker thread get one (no wait until the pool's timeout)."""
    import asyncio
    import dataclasses
    import time

    import anyio
    import httpx

    from passerelle.web import create_app
    from tests.fixtures.appdb import RecordingMailer

    for name, rules in dbmod.DIALECTS.items():
        small = {**rules.engine_options, "pool_size": 2, "max_overflow": 1, "pool_timeout": 5}
        monkeypatch.setitem(dbmod.DIALECTS, name, dataclasses.replace(rules, engine_options=small))
    app = create_app(settings, clock=clock, mailer=RecordingMailer())
    ctx = app.state.services.ctx
    try:
        s = seed(ctx)
        headers = {"Authorization": f"Bearer {token_for(ctx, s.users[('bio', Role.APPLICANT)])}"}

        async def run() -> list[int]:
            anyio.to_thread.current_default_thread_limiter().total_tokens = 2
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                calls = [client.get(LISTING, headers=headers) for _ in range(24)]
                return [r.status_code for r in await asyncio.gather(*calls)]

        started = time.monotonic()
        assert asyncio.run(run()) == [200] * 24
        assert time.monotonic() - started < 5
    finally:
        ctx.db.dispose()


def test_a_session_inside_a_shared_read_block_leaves_that_block_its_connection(web_ctx):
    db = web_ctx.db
    with db.shared_reads(), db.rows() as conn:
        with db.read() as session:
            session.connection()
        assert conn.exec_driver_sql("SELECT 1").scalar_one() == 1
    assert db.engine.pool.checkedout() == 0
    assert db.share_slots._value == dbmod._share_slots(db.engine)
