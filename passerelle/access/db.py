"""The app database: engine, sessions and migrations (SQLite by default, PostgreSQL in production).

SQLite writers take the write lock when their transaction begins (BEGIN IMMEDIATE), so the
audit chain's head is read and extended by one writer at a time; PostgreSQL locks the chain's
checkpoint row instead (see audit.py). Readers never take the write lock.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
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


def _postgres_setup(engine: Engine) -> None:
    return None


# Per-dialect set-up, one table instead of branches.
DIALECT_SETUP: dict[str, Callable[[Engine], None]] = {
    "sqlite": _sqlite_setup,
    "postgresql": _postgres_setup,
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
    setup = DIALECT_SETUP.get(parsed.get_backend_name())
    if setup is None:
        raise ConfigError(f"app database backend {parsed.get_backend_name()!r} is not supported")
    if parsed.get_backend_name() == "sqlite" and parsed.database:
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    kwargs: dict[str, Any] = {"json_deserializer": json_loads}
    if parsed.get_backend_name() == "postgresql":
        kwargs.update(pool_size=10, max_overflow=20, pool_pre_ping=True)
    engine = create_engine(parsed, **kwargs)
    setup(engine)
    return engine


class Database:
    """One engine and its two kinds of session: read (no write lock) and write."""

    def __init__(self, url: str) -> None:
        self.url = normalize_url(url)
        self.engine = make_engine(self.url)
        self._read = sessionmaker(self.engine, expire_on_commit=False)
        self._write = sessionmaker(
            self.engine.execution_options(write=True), expire_on_commit=False
        )

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> Database:
        return cls((settings or get_settings()).default_app_db_url())

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self._read() as session:
            yield session

    @contextmanager
    def rows(self) -> Iterator[Connection]:
        """A read transaction on a bare connection, for Core statements: no ORM session to
        set up and tear down (rolled back when the block ends, like `read`)."""
        with self.engine.connect() as conn:
            yield conn

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A transaction that commits when the block ends without error, else rolls back."""
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
