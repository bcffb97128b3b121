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
                    and (d[1].table.name not in metadata.tables or d[1].name in FULL_TEXT_INDEXES)
                )
            ]
            # PostgreSQL's stored tsvector (migration 0005) is not a model column.
            drift = [
                d
                for d in drift
                if not (
                    isinstance(d, tuple)
                    and d[0] == "remove_column"
                    and (d[2], d[3].name) == ("datasets", "search_vector")
                )
            ]
            assert drift == []


# Full-text indexes the migrations create outside the models (0003, 0005).
FULL_TEXT_INDEXES = {"ix_datasets_search_fts", "ix_datasets_search_vector"}


def _full_text_objects(db: Database) -> tuple[set[str], set[str]]:
    """datasets' columns and index names."""
    found = inspect(db.engine)
    columns = {c["name"] for c in found.get_columns("datasets")}
    indexes = {i["name"] for i in found.get_indexes("datasets")}
    return columns, indexes


def test_migration_0005_stored_tsvector_up_and_down(app_db_url):
    """On PostgreSQL 0005 adds the stored tsvector and its GIN index in place of 0003's
    expression index, and its downgrade puts them back; on SQLite it changes nothing (FTS5)."""
    from sqlalchemy import text

    from passerelle.catalog.search import search

    db = Database(app_db_url)
    try:
        db.upgrade("0004")
        before = _full_text_objects(db)
        with db.write() as s:  # a dataset from before 0005 is found after it
            s.execute(
                text(
                    "INSERT INTO organisations (id, name, type, country, created_at) "
                    "VALUES (1, 'CHU', 'hospital', 'FR', CURRENT_TIMESTAMP)"
                )
            )
            s.execute(
                text(
                    "INSERT INTO datasets (organisation_id, title, description, domains, "
                    "population, update_frequency, legal_basis, access_conditions, keywords, "
                    "contact_name, contact_email, health_categories, health_themes, published, "
                    "search_text, created_at, updated_at) VALUES (1, 'Oncologie', '', '[]', "
                    "'', 'never', '', '', '[]', '', 'dpo@chu.fr', '[]', '[]', TRUE, "
                    "' oncologie pediatrie ', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                )
            )
        db.upgrade("0005")
        columns, indexes = _full_text_objects(db)
        if db.dialect == "postgresql":
            assert "search_vector" in columns
            assert "ix_datasets_search_vector" in indexes
            assert "ix_datasets_search_fts" not in indexes
        else:
            assert (columns, indexes) == before
        with db.rows() as conn:
            query = search("onco", dialect=db.dialect)
            page = {**query.params, "offset": 0, "limit": 20}
            assert [r.title for r in conn.execute(query.statements.page, page)] == ["Oncologie"]
        db.downgrade("0004")
        assert _full_text_objects(db) == before
        db.upgrade()
    finally:
        db.dispose()


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
