"""Shared state of Selector replicas: budget counters and their grants, signals, trial claims.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-09
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Creates `shared_budgets`, `shared_budget_grants`, `shared_signals` and `shared_trials`."""
    op.create_table(
        "shared_budgets",
        sa.Column("counter", sa.String(200), nullable=False),
        sa.Column("limit_value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("counter", name=op.f("pk_shared_budgets")),
    )
    op.create_table(
        "shared_budget_grants",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("counter", sa.String(200), nullable=False),
        sa.Column("holder", sa.String(100), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("count_until", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_shared_budget_grants")),
    )
    op.create_index(
        "ix_shared_budget_grants_counter", "shared_budget_grants", ["counter", "count_until"]
    )
    op.create_table(
        "shared_signals",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("holder", sa.String(100), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.SmallInteger(), nullable=False),
        sa.Column("account", sa.String(200), server_default="", nullable=False),
        sa.Column("outcome", sa.SmallInteger(), server_default="0", nullable=False),
        sa.Column("until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reason", sa.Text(), server_default="", nullable=False),
        sa.Column("circuit_opened_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("consecutive_failures", sa.Integer(), server_default="0", nullable=False),
        sa.Column("failed_trials", sa.Integer(), server_default="0", nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_shared_signals")),
    )
    op.create_table(
        "shared_trials",
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("holder", sa.String(100), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("model_id", name=op.f("pk_shared_trials")),
    )


def downgrade() -> None:
    """Drops what upgrade added."""
    op.drop_table("shared_trials")
    op.drop_table("shared_signals")
    op.drop_index("ix_shared_budget_grants_counter", table_name="shared_budget_grants")
    op.drop_table("shared_budget_grants")
    op.drop_table("shared_budgets")
