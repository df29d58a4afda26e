"""The living catalog: where a model comes from, what discovery concluded, its reasoning effort.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Adds `ai_models.reasoning_effort`, `origin` (existing models: `catalog`),
    `unlisted_reason` and `unlisted_since`."""
    op.add_column("ai_models", sa.Column("reasoning_effort", sa.String(32), nullable=True))
    op.add_column(
        "ai_models",
        sa.Column("origin", sa.String(16), server_default="catalog", nullable=False),
    )
    op.add_column(
        "ai_models", sa.Column("unlisted_reason", sa.Text(), server_default="", nullable=False)
    )
    op.add_column(
        "ai_models", sa.Column("unlisted_since", sa.DateTime(timezone=True), nullable=True)
    )


def downgrade() -> None:
    """Drops the four columns."""
    for name in ("unlisted_since", "unlisted_reason", "origin", "reasoning_effort"):
        op.drop_column("ai_models", name)
