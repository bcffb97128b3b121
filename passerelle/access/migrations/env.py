"""Alembic environment: runs on the connection Database.upgrade() passes in."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from passerelle.access.models import Base

config = context.config
target_metadata = Base.metadata


def run() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        from passerelle.access.db import normalize_url
        from passerelle.config import get_settings

        url = config.get_main_option("sqlalchemy.url") or get_settings().default_app_db_url()
        with create_engine(normalize_url(url)).begin() as conn:
            _migrate(conn)
    else:
        _migrate(connection)


def _migrate(connection: object) -> None:
    context.configure(
        connection=connection,  # type: ignore[arg-type]
        target_metadata=target_metadata,
        render_as_batch=True,  # SQLite alters tables by copying them
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run()
