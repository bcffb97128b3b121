"""Full-text search over the catalogue: SQLite FTS5, PostgreSQL tsvector (GIN index).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 22:20:00

Both index `datasets.search_text` (lower-cased, accent-folded words written by the catalogue
service). On SQLite an FTS5 table kept in step by triggers (rowid = dataset id); on PostgreSQL
an expression index on to_tsvector('simple', search_text). One function per dialect.
"""

from __future__ import annotations

from collections.abc import Callable

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

SQLITE_UP = (
    "CREATE VIRTUAL TABLE dataset_search USING fts5(body, tokenize = 'unicode61')",
    "INSERT INTO dataset_search(rowid, body) SELECT id, search_text FROM datasets",
    "CREATE TRIGGER datasets_search_ai AFTER INSERT ON datasets BEGIN "
    "INSERT INTO dataset_search(rowid, body) VALUES (new.id, new.search_text); END",
    "CREATE TRIGGER datasets_search_ad AFTER DELETE ON datasets BEGIN "
    "DELETE FROM dataset_search WHERE rowid = old.id; END",
    "CREATE TRIGGER datasets_search_au AFTER UPDATE OF search_text ON datasets BEGIN "
    "DELETE FROM dataset_search WHERE rowid = old.id; "
    "INSERT INTO dataset_search(rowid, body) VALUES (new.id, new.search_text); END",
)
SQLITE_DOWN = (
    "DROP TRIGGER IF EXISTS datasets_search_au",
    "DROP TRIGGER IF EXISTS datasets_search_ad",
    "DROP TRIGGER IF EXISTS datasets_search_ai",
    "DROP TABLE IF EXISTS dataset_search",
)
POSTGRES_UP = (
    "CREATE INDEX ix_datasets_search_fts ON datasets "
    "USING GIN (to_tsvector('simple', search_text))",
)
POSTGRES_DOWN = ("DROP INDEX IF EXISTS ix_datasets_search_fts",)

STEPS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "sqlite": (SQLITE_UP, SQLITE_DOWN),
    "postgresql": (POSTGRES_UP, POSTGRES_DOWN),
}


def _run(pick: Callable[[tuple[tuple[str, ...], tuple[str, ...]]], tuple[str, ...]]) -> None:
    for statement in pick(STEPS[op.get_bind().dialect.name]):
        op.execute(statement)


def upgrade() -> None:
    _run(lambda s: s[0])


def downgrade() -> None:
    _run(lambda s: s[1])
