"""Count wrong-format attempts (prose to a JSON-mode request, not a failure) in the buckets.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Adds `model_stats_hourly.wrong_format_count`."""
    op.add_column(
        "model_stats_hourly",
        sa.Column("wrong_format_count", sa.BigInteger(), server_default="0", nullable=False),
    )


def downgrade() -> None:
    """Drops `model_stats_hourly.wrong_format_count`."""
    op.drop_column("model_stats_hourly", "wrong_format_count")
