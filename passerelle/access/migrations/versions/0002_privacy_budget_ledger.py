"""The privacy package's DP-budget ledger joins the app database.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 22:15:00

The tables (privacy_budget_spend, privacy_budget_account, privacy_noisy_answer) are declared by
passerelle.privacy.ledger, which provides these Alembic operations for exactly this purpose.
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    from passerelle.privacy.ledger import alembic_upgrade

    alembic_upgrade(op)


def downgrade() -> None:
    from passerelle.privacy.ledger import alembic_downgrade

    alembic_downgrade(op)
