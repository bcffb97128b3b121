"""Catalogue full text on PostgreSQL: a stored tsvector column with its GIN index.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 04:00:00

Migration 0003 indexed the expression to_tsvector('simple', search_text); a search still
computed that expression for every row it filtered when the planner chose a scan, and again for
every match it ranked (ts_rank), about 3 ms of the server's CPU per search over 200 datasets.
`datasets.search_vector` is generated from search_text and stored, so the filter and the rank
read it; its GIN index replaces the expression index. Not a model column: only PostgreSQL has
it (catalog/search.py names it in the PostgreSQL strategy). SQLite keeps its FTS5 table of
0003: nothing to do there. One step list per dialect.
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

POSTGRES_UP = (
    "ALTER TABLE datasets ADD COLUMN search_vector tsvector "
    "GENERATED ALWAYS AS (to_tsvector('simple', search_text)) STORED",
    "CREATE INDEX ix_datasets_search_vector ON datasets USING GIN (search_vector)",
    "DROP INDEX IF EXISTS ix_datasets_search_fts",
)
POSTGRES_DOWN = (
    "CREATE INDEX ix_datasets_search_fts ON datasets "
    "USING GIN (to_tsvector('simple', search_text))",
    "DROP INDEX IF EXISTS ix_datasets_search_vector",
    "ALTER TABLE datasets DROP COLUMN IF EXISTS search_vector",
)

STEPS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "sqlite": ((), ()),
    "postgresql": (POSTGRES_UP, POSTGRES_DOWN),
}


def upgrade() -> None:
    for statement in STEPS[op.get_bind().dialect.name][0]:
        op.execute(statement)


def downgrade() -> None:
    for statement in STEPS[op.get_bind().dialect.name][1]:
        op.execute(statement)
