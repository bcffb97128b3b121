"""The app database: engine, sessions and migrations (SQLite by default, PostgreSQL in production).

SQLite writers take the write lock when their transaction begins (BEGIN IMMEDIATE), so the
audit chain's head is read and extended by one writer at a time; PostgreSQL locks the chain's
checkpoint row instead (see audit.py). Readers never take the write lock.

Core reads (`rows`) on PostgreSQL run in autocommit: no BEGIN and ROLLBACK round trips around a
read (under READ COMMITTED each statement had its own snapshot anyway), and psycopg prepares a
statement run often on a connection (a ROLLBACK would have cleared its cache). Inside
`shared_reads()` (the web app: one per request) the reads share one pooled connection, taken at
the first read and returned at the end. A pooled PostgreSQL connection is pinged only when it
has been idle in the pool for a while, not at every checkout (see `_ping_when_idle`).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import Session, sessionmaker

from passerelle.config import Settings, get_settings
from passerelle.errors import ConfigError

MIGRATIONS = Path(__file__).parent / "migrations"


def _sqlite_setup(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # SQLAlchemy emits BEGIN itself (below)
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        immediate = conn.get_execution_options().get("write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


# A pooled connection idle for longer than this is pinged when next checked out.
IDLE_PING_SECONDS = 10.0


def _ping_when_idle(engine: Engine) -> None:
    """Ping a pooled connection at checkout only if it sat idle in the pool for more than
    IDLE_PING_SECONDS (SQLAlchemy's pool_pre_ping pings at every checkout: a round trip per
    request under load). A failed ping discards the connection and the pool connects anew; a
    connection lost while in use fails its statement, and SQLAlchemy then invalidates every
    connection the pool holds from before, so the next checkouts reconnect."""

    @event.listens_for(engine, "checkin")
    def _checkin(_dbapi_conn: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checkout(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get("idle_since")
        if idle_since is None or time.monotonic() - idle_since <= IDLE_PING_SECONDS:
            return
        try:
            engine.dialect.do_ping(dbapi_conn)
        except engine.dialect.loaded_dbapi.Error as exc:
            raise DisconnectionError("a pooled connection failed its ping") from exc


@dataclass(frozen=True)
class DialectRules:
    """What differs per database: engine set-up and options, and how reads run."""

    setup: Callable[[Engine], None]
    engine_options: dict[str, Any] = field(default_factory=dict)
    read_options: dict[str, Any] = field(default_factory=dict)  # execution options of `rows`


# Per-dialect rules, one table instead of branches.
DIALECTS: dict[str, DialectRules] = {
    "sqlite": DialectRules(_sqlite_setup),
    "postgresql": DialectRules(
        _ping_when_idle,
        # Enough connections that a worker's concurrent requests do not overflow the pool: an
        # overflow connection is closed when returned, and a new backend per request costs
        # far more than the request.
        engine_options={"pool_size": 20, "max_overflow": 20},
        read_options={"isolation_level": "AUTOCOMMIT"},
    ),
}


def json_loads(text: str | bytes) -> Any:
    """JSON columns parsed by orjson; what it refuses (NaN, huge integers) by the json module."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def normalize_url(url: str) -> str:
    """postgresql:// and postgres:// mean psycopg 3; sqlite:/// stays as it is."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def make_engine(url: str) -> Engine:
    url = normalize_url(url)
    try:
        parsed = make_url(url)
    except Exception:
        raise ConfigError("app_db_url is not a valid database URL") from None
    rules = DIALECTS.get(parsed.get_backend_name())
    if rules is None:
        raise ConfigError(f"app database backend {parsed.get_backend_name()!r} is not supported")
    if parsed.get_backend_name() == "sqlite" and parsed.database:
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(parsed, json_deserializer=json_loads, **rules.engine_options)
    rules.setup(engine)
    return engine


def _share_slots(engine: Engine) -> int:
    """How many requests may hold a shared read connection at once: the pool's size, below
    what it may open with its overflow (none without a sized pool)."""
    size = getattr(engine.pool, "size", None)
    if not callable(size):
        return 0
    overflow = getattr(engine.pool, "_max_overflow", 0)
    return int(size()) if overflow > 0 else max(int(size()) - 1, 0)


class SharedReads:
    """The reads of one request: one pooled connection, taken at the first read and held
    until the request ends, or until the request opens a session (`read` or `write`: then it
    holds one connection at a time, never one while waiting for another).

    A request holds its connection between the thread-pool calls of its dependencies and its
    endpoint, so at most `Database.share_slots` requests (fewer than the pool's connections)
    hold one at a time; the others read on a connection of their own per block, as without
    sharing. Requests waiting for a connection in the thread pool then never wait on requests
    that wait for a thread while holding every connection."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._conn: Connection | None = None
        self._slot = False
        self.in_use = 0  # `rows()` blocks open on the connection

    def connection(self) -> Connection | None:
        """The shared connection, or None when every slot is taken (read on your own)."""
        if self._conn is None:
            if not self._slot and not self.db.share_slots.acquire(blocking=False):
                return None
            self._slot = True
            self._conn = self.db.read_connection()
        return self._conn

    def release(self) -> None:
        if self.in_use:  # a session opened inside a `rows()` block: keep it until the block ends
            return
        conn, self._conn = self._conn, None
        try:
            if conn is not None:
                conn.close()
        finally:
            if self._slot:
                self._slot = False
                self.db.share_slots.release()


# The current request's shared reads (set by `Database.shared_reads`; worker threads running
# the request's code see it, as anyio copies the context into them).
_SHARED_READS: ContextVar[SharedReads | None] = ContextVar("passerelle_shared_reads", default=None)


class Database:
    """One engine and its two kinds of session: read (no write lock) and write."""

    def __init__(self, url: str) -> None:
        self.url = normalize_url(url)
        self.engine = make_engine(self.url)
        self._read = sessionmaker(self.engine, expire_on_commit=False)
        self._reads = self.engine.execution_options(**DIALECTS[self.dialect].read_options)
        self._write = sessionmaker(
            self.engine.execution_options(write=True), expire_on_commit=False
        )
        self.share_slots = threading.BoundedSemaphore(_share_slots(self.engine))

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> Database:
        return cls((settings or get_settings()).default_app_db_url())

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def _release_shared(self) -> None:
        """Before a session takes its connection: the request's shared one goes back."""
        shared = _SHARED_READS.get()
        if shared is not None and shared.db is self:
            shared.release()

    @contextmanager
    def read(self) -> Iterator[Session]:
        self._release_shared()
        with self._read() as session:
            yield session

    def read_connection(self) -> Connection:
        """A pooled connection for reads (autocommit on PostgreSQL); the caller closes it."""
        return self._reads.connect()

    @contextmanager
    def rows(self) -> Iterator[Connection]:
        """A read on a bare connection, for Core statements: no ORM session to set up and tear
        down. Rolled back when the block ends, like `read` (on PostgreSQL in autocommit: no
        transaction, each statement reads what is committed when it starts). Inside
        `shared_reads()` the connection is the shared one."""
        shared = _SHARED_READS.get()
        conn = shared.connection() if shared is not None and shared.db is self else None
        if conn is None:
            with self.read_connection() as own:
                yield own
            return
        shared.in_use += 1  # type: ignore[union-attr]
        try:
            with conn.begin() as transaction:
                yield conn
                transaction.rollback()  # a read: nothing to commit
        finally:
            shared.in_use -= 1  # type: ignore[union-attr]

    @contextmanager
    def shared_reads(self) -> Iterator[None]:
        """Within the block, `rows()` reads share one pooled connection, returned at the end
        (each `rows()` block is still its own read transaction)."""
        shared = SharedReads(self)
        token = _SHARED_READS.set(shared)
        try:
            yield
        finally:
            _SHARED_READS.reset(token)
            shared.release()

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A transaction that commits when the block ends without error, else rolls back."""
        self._release_shared()
        with self._write() as session, session.begin():
            yield session

    def upgrade(self, revision: str = "head") -> None:
        with self.engine.begin() as conn:
            command.upgrade(alembic_config(conn), revision)

    def downgrade(self, revision: str = "base") -> None:
        with self.engine.begin() as conn:
            command.downgrade(alembic_config(conn), revision)

    def current_revision(self) -> str | None:
        from alembic.runtime.migration import MigrationContext

        with self.engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    def dispose(self) -> None:
        self.engine.dispose()


def alembic_config(connection: Any = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg
