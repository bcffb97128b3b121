"""Migrations upgrade from empty and downgrade, on SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import inspect

from passerelle.access.db import Database
from passerelle.access.models import Base


def _tables(db: Database) -> set[str]:
    """Tables of the models (not Alembic's, not SQLite FTS5's own dataset_search* tables)."""
    names = set(inspect(db.engine).get_table_names()) - {"alembic_version"}
    return {n for n in names if not n.startswith("dataset_search")}


def _expected() -> set[str]:
    from passerelle.privacy.ledger import metadata as ledger

    return set(Base.metadata.tables) | set(ledger.tables)


def test_upgrade_from_empty_then_downgrade_then_upgrade(app_db_url):
    db = Database(app_db_url)
    try:
        assert _tables(db) == set()
        db.upgrade()
        assert db.current_revision() is not None
        assert _tables(db) == _expected()
        db.downgrade()
        assert db.current_revision() is None
        assert _tables(db) == set()
        db.upgrade()
        assert _tables(db) == _expected()
    finally:
        db.dispose()


def test_migrations_match_the_models(db):
    """Autogenerate finds nothing to do: the migration history describes the models."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from passerelle.privacy.ledger import metadata as ledger

    with db.engine.connect() as conn:
        for metadata in (Base.metadata, ledger):
            diff = compare_metadata(MigrationContext.configure(conn), metadata)
            # Tables of the other metadata show up as "remove_table": only real drift counts.
            drift = [
                d for d in diff if not (d[0] == "remove_table" and d[1].name not in metadata.tables)
            ]
            drift = [
                d
                for d in drift
                if not (
                    isinstance(d, tuple)
                    and d[0] == "remove_index"
                    and (
                        d[1].table.name not in metadata.tables
                        or d[1].name == "ix_datasets_search_fts"  # migration 0003, full text
                    )
                )
            ]
            assert drift == []


def test_migrations_ship_with_the_package():
    from pathlib import Path

    import passerelle.access.migrations as m

    versions = Path(m.__file__).parent / "versions"
    assert (versions / "__init__.py").exists()
    assert any(p.name.startswith("0001") for p in versions.glob("*.py"))


def test_the_privacy_ledger_lives_in_the_app_database(db):
    """Migration 0002 created the DP-budget ledger; the privacy package finds its tables."""
    from passerelle.privacy.ledger import create_ledger_tables

    create_ledger_tables(db.engine)  # nothing left to create
    assert {"privacy_budget_spend", "privacy_budget_account", "privacy_noisy_answer"} <= _tables(db)
