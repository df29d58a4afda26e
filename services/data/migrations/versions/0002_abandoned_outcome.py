"""Count abandoned attempts (ended by the request's deadline, not the model) in the buckets.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Adds `model_stats_hourly.abandoned_count`."""
    op.add_column(
        "model_stats_hourly",
        sa.Column("abandoned_count", sa.BigInteger(), server_default="0", nullable=False),
    )


def downgrade() -> None:
    """Drops `model_stats_hourly.abandoned_count`."""
    op.drop_column("model_stats_hourly", "abandoned_count")
