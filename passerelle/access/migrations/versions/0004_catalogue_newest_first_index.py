"""Catalogue browsing: an index in the order the search lists datasets (newest first).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28 22:55:00

Without a full-text query the catalogue is listed by `updated_at DESC, id DESC`; with this
index a page is read from the index's end instead of sorting every dataset.
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_datasets_updated_at_id", "datasets", ["updated_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_datasets_updated_at_id", table_name="datasets")
