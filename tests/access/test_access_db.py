"""Migrations upgrade from empty and downgrade, on SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import inspect

from passerelle.access.db import Database
from passerelle.access.models import Base


def _tables(db: Database) -> set[str]:
    return set(inspect(db.engine).get_table_names()) - {"alembic_version"}


def test_upgrade_from_empty_then_downgrade_then_upgrade(app_db_url):
    db = Database(app_db_url)
    try:
        assert _tables(db) == set()
        db.upgrade()
        assert db.current_revision() is not None
        assert _tables(db) == set(Base.metadata.tables)
        db.downgrade()
        assert db.current_revision() is None
        assert _tables(db) == set()
        db.upgrade()
        assert _tables(db) == set(Base.metadata.tables)
    finally:
        db.dispose()


def test_migrations_match_the_models(db):
    """Autogenerate finds nothing to do: the migration history describes the models."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_migrations_ship_with_the_package():
    from pathlib import Path

    import passerelle.access.migrations as m

    versions = Path(m.__file__).parent / "versions"
    assert (versions / "__init__.py").exists()
    assert any(p.name.startswith("0001") for p in versions.glob("*.py"))
