"""Client keys: the keys' hashes and limits, their usage per day, and the key of each history row.

Revision ID: 0007
Revises: 0005
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Creates `client_keys` and `client_key_usage`; adds `prompt_history.client_key_id` and
    `tokens` (existing rows: no key, 0 tokens)."""
    op.create_table(
        "client_keys",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("key_prefix", sa.String(16), nullable=False),
        sa.Column("key_sha256", sa.String(64), nullable=False),
        sa.Column("requests_per_minute", sa.Integer(), server_default="0", nullable=False),
        sa.Column("requests_per_day", sa.Integer(), server_default="0", nullable=False),
        sa.Column("tokens_per_day", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("bucket_requests", sa.Float(), server_default="0", nullable=False),
        sa.Column("bucket_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("granted_day", sa.Date(), nullable=True),
        sa.Column("granted_requests", sa.Integer(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_client_keys")),
    )
    op.create_index("ix_client_keys_key_sha256", "client_keys", ["key_sha256"], unique=True)
    op.create_table(
        "client_key_usage",
        sa.Column("client_key_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("requests", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("tokens", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("failures", sa.BigInteger(), server_default="0", nullable=False),
        sa.ForeignKeyConstraint(
            ["client_key_id"],
            ["client_keys.id"],
            name=op.f("fk_client_key_usage_client_key_id_client_keys"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("client_key_id", "day", name=op.f("pk_client_key_usage")),
    )
    op.add_column("prompt_history", sa.Column("client_key_id", sa.Integer(), nullable=True))
    op.add_column(
        "prompt_history", sa.Column("tokens", sa.BigInteger(), server_default="0", nullable=False)
    )
    op.create_foreign_key(
        op.f("fk_prompt_history_client_key_id_client_keys"),
        "prompt_history",
        "client_keys",
        ["client_key_id"],
        ["id"],
        ondelete="SET NULL",
    )
    op.create_index("ix_prompt_history_client_key_id", "prompt_history", ["client_key_id"])


def downgrade() -> None:
    """Drops what upgrade added."""
    op.drop_index("ix_prompt_history_client_key_id", table_name="prompt_history")
    op.drop_constraint(
        op.f("fk_prompt_history_client_key_id_client_keys"), "prompt_history", type_="foreignkey"
    )
    op.drop_column("prompt_history", "tokens")
    op.drop_column("prompt_history", "client_key_id")
    op.drop_table("client_key_usage")
    op.drop_index("ix_client_keys_key_sha256", table_name="client_keys")
    op.drop_table("client_keys")
