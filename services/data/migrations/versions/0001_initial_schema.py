"""Initial schema: ai_models, prompt_history, model_attempts, model_stats_hourly.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Creates the four tables and their indexes."""
    op.create_table(
        "ai_models",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("provider", sa.String(length=100), nullable=False),
        sa.Column("api_endpoint", sa.String(length=500), nullable=False),
        sa.Column("success_count", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("failure_count", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column(
            "total_response_time",
            sa.Numeric(precision=10, scale=3),
            server_default="0",
            nullable=False,
        ),
        sa.Column("request_count", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("last_checked", sa.DateTime(timezone=True), nullable=True),
        sa.Column("is_active", sa.Boolean(), server_default="true", nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("api_format", sa.String(length=16), nullable=False),
        sa.Column("provider_model_id", sa.String(length=255), nullable=False),
        sa.Column("api_key_env", sa.String(length=100), server_default="", nullable=False),
        sa.Column("base_url_env", sa.String(length=100), server_default="", nullable=False),
        sa.Column("requests_per_minute", sa.Integer(), server_default="0", nullable=False),
        sa.Column("requests_per_day", sa.Integer(), server_default="0", nullable=False),
        sa.Column("tokens_per_minute", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("tokens_per_day", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("context_tokens", sa.Integer(), server_default="0", nullable=False),
        sa.Column("max_output_tokens", sa.Integer(), server_default="0", nullable=False),
        sa.Column("timeout_ms", sa.Integer(), server_default="0", nullable=False),
        sa.Column(
            "tags", postgresql.ARRAY(sa.String(length=32)), server_default="{}", nullable=False
        ),
        sa.Column("supports_json", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("reasoning", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("cooldown_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cooldown_reason", sa.Text(), server_default="", nullable=False),
        sa.Column("cooldown_outcome", sa.String(length=20), server_default="", nullable=False),
        sa.Column("consecutive_failures", sa.Integer(), server_default="0", nullable=False),
        sa.Column("circuit_opened_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ai_models")),
    )
    op.create_index("ix_ai_models_is_active", "ai_models", ["is_active"], unique=False)
    op.create_index("ix_ai_models_name", "ai_models", ["name"], unique=True)
    op.create_index("ix_ai_models_provider", "ai_models", ["provider"], unique=False)
    op.create_table(
        "model_attempts",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("attempt_id", sa.String(length=64), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("start_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("latency_ms", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(length=20), nullable=False),
        sa.Column("http_status", sa.SmallInteger(), server_default="0", nullable=False),
        sa.Column("source", sa.String(length=8), nullable=False),
        sa.Column("request_id", sa.String(length=128), server_default="", nullable=False),
        sa.Column("tokens", sa.Integer(), server_default="0", nullable=False),
        sa.Column("error", sa.Text(), server_default="", nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["ai_models.id"],
            name=op.f("fk_model_attempts_model_id_ai_models"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_attempts")),
    )
    op.create_index("ix_model_attempts_attempt_id", "model_attempts", ["attempt_id"], unique=True)
    op.create_index(
        "ix_model_attempts_model_id_start_time",
        "model_attempts",
        ["model_id", "start_time"],
        unique=False,
    )
    op.create_index("ix_model_attempts_start_time", "model_attempts", ["start_time"], unique=False)
    op.create_table(
        "model_stats_hourly",
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("bucket_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("success_count", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("rate_limited_count", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("quota_exhausted_count", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("transient_count", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("timeout_count", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("permanent_count", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("bad_request_count", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("bad_answer_count", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("success_latency_ms_sum", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("latency_le_100_ms", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("latency_le_250_ms", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("latency_le_500_ms", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("latency_le_1000_ms", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("latency_le_2000_ms", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("latency_le_4000_ms", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("latency_le_8000_ms", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("latency_le_15000_ms", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("latency_le_30000_ms", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("latency_le_60000_ms", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("latency_over_60000_ms", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("tokens", sa.BigInteger(), server_default="0", nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["ai_models.id"],
            name=op.f("fk_model_stats_hourly_model_id_ai_models"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("model_id", "bucket_start", name=op.f("pk_model_stats_hourly")),
    )
    op.create_table(
        "prompt_history",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("user_id", sa.String(length=255), nullable=False),
        sa.Column("prompt_text", sa.Text(), nullable=False),
        sa.Column("selected_model_id", sa.Integer(), nullable=True),
        sa.Column("response_text", sa.Text(), nullable=True),
        sa.Column("response_time", sa.Numeric(precision=10, scale=3), nullable=False),
        sa.Column("success", sa.Boolean(), nullable=False),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("record_id", sa.String(length=128), nullable=False),
        sa.Column("caller", sa.String(length=255), server_default="", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("fallback_used", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("requested_model", sa.String(length=255), server_default="", nullable=False),
        sa.Column("status_code", sa.String(length=32), server_default="", nullable=False),
        sa.ForeignKeyConstraint(
            ["selected_model_id"],
            ["ai_models.id"],
            name=op.f("fk_prompt_history_selected_model_id_ai_models"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_prompt_history")),
    )
    op.create_index("ix_prompt_history_created_at", "prompt_history", ["created_at"], unique=False)
    op.create_index("ix_prompt_history_record_id", "prompt_history", ["record_id"], unique=True)
    op.create_index(
        "ix_prompt_history_selected_model_id", "prompt_history", ["selected_model_id"], unique=False
    )
    op.create_index("ix_prompt_history_success", "prompt_history", ["success"], unique=False)
    op.create_index("ix_prompt_history_user_id", "prompt_history", ["user_id"], unique=False)


def downgrade() -> None:
    """Drops everything `upgrade` created."""
    op.drop_index("ix_prompt_history_user_id", table_name="prompt_history")
    op.drop_index("ix_prompt_history_success", table_name="prompt_history")
    op.drop_index("ix_prompt_history_selected_model_id", table_name="prompt_history")
    op.drop_index("ix_prompt_history_record_id", table_name="prompt_history")
    op.drop_index("ix_prompt_history_created_at", table_name="prompt_history")
    op.drop_table("prompt_history")
    op.drop_table("model_stats_hourly")
    op.drop_index("ix_model_attempts_start_time", table_name="model_attempts")
    op.drop_index("ix_model_attempts_model_id_start_time", table_name="model_attempts")
    op.drop_index("ix_model_attempts_attempt_id", table_name="model_attempts")
    op.drop_table("model_attempts")
    op.drop_index("ix_ai_models_provider", table_name="ai_models")
    op.drop_index("ix_ai_models_name", table_name="ai_models")
    op.drop_index("ix_ai_models_is_active", table_name="ai_models")
    op.drop_table("ai_models")
