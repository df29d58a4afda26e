"""Per-minute prompt counts (the status page's totals), filled from the history already stored.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _count(name: str) -> sa.Column:
    return sa.Column(name, sa.BigInteger(), server_default="0", nullable=False)


def upgrade() -> None:
    """Creates `prompt_counts_minutely` and counts the stored prompt history into it."""
    op.create_table(
        "prompt_counts_minutely",
        sa.Column("bucket_start", sa.DateTime(timezone=True), nullable=False),
        _count("prompts"),
        _count("answered"),
        _count("failovers"),
        sa.PrimaryKeyConstraint("bucket_start", name=op.f("pk_prompt_counts_minutely")),
    )
    op.execute(
        """
        INSERT INTO prompt_counts_minutely (bucket_start, prompts, answered, failovers)
        SELECT date_trunc('minute', created_at, 'UTC'), count(*),
               count(*) FILTER (WHERE success), count(*) FILTER (WHERE success AND fallback_used)
        FROM prompt_history GROUP BY 1
        """
    )


def downgrade() -> None:
    """Drops the table."""
    op.drop_table("prompt_counts_minutely")
