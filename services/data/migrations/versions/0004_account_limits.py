"""Budgets counted per provider account (provider + key variable) as well as per model.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = (
    ("account_requests_per_minute", sa.Integer()),
    ("account_requests_per_day", sa.Integer()),
    ("account_tokens_per_minute", sa.BigInteger()),
    ("account_tokens_per_day", sa.BigInteger()),
)


def upgrade() -> None:
    """Adds the `ai_models.account_*` limits (0 = not declared)."""
    for name, kind in _COLUMNS:
        op.add_column("ai_models", sa.Column(name, kind, server_default="0", nullable=False))


def downgrade() -> None:
    """Drops the `ai_models.account_*` limits."""
    for name, _ in reversed(_COLUMNS):
        op.drop_column("ai_models", name)
