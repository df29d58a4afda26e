"""SQLAlchemy tables of the ModelStore: catalog, attempts, hourly statistics, prompt history,
per-minute prompt counts, and client keys with their usage."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    SmallInteger,
    String,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncAttrs
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.common import outcomes
from services.common.names import LATENCY_BOUNDS_MS

# Stable constraint names so that Alembic migrations can refer to them.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Column names of the histogram, one per bucket (the last is the overflow).
LATENCY_COLUMNS: tuple[str, ...] = (
    *(f"latency_le_{bound}_ms" for bound in LATENCY_BOUNDS_MS),
    f"latency_over_{LATENCY_BOUNDS_MS[-1]}_ms",
)
# Outcome classes as stored in `model_attempts.outcome`; each has a count column in the buckets.
OUTCOMES: tuple[str, ...] = outcomes.STORED_NAMES
# Outcomes that do not count as a model failure (the provider's limit, this prompt's fault, or a
# cause on our side).
NOT_FAILURES: frozenset[str] = outcomes.NOT_FAILURE_NAMES


def outcome_column(outcome: str) -> str:
    """Name of the bucket column counting `outcome`."""
    return f"{outcome}_count"


def _now() -> object:
    return func.now()


class Base(AsyncAttrs, DeclarativeBase):
    """Declarative base with the naming convention."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class AiModel(Base):
    """One catalog model: the seed's columns, catalog fields, lifetime counters, availability."""

    __tablename__ = "ai_models"
    __table_args__ = (
        Index("ix_ai_models_name", "name", unique=True),
        Index("ix_ai_models_provider", "provider"),
        Index("ix_ai_models_is_active", "is_active"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(255))
    provider: Mapped[str] = mapped_column(String(100))
    api_endpoint: Mapped[str] = mapped_column(String(500))
    success_count: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    failure_count: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    total_response_time: Mapped[Decimal] = mapped_column(
        Numeric(10, 3), default=Decimal(0), server_default="0"
    )
    request_count: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    last_checked: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True, server_default="true")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now())

    api_format: Mapped[str] = mapped_column(String(16))
    provider_model_id: Mapped[str] = mapped_column(String(255))
    api_key_env: Mapped[str] = mapped_column(String(100), default="", server_default="")
    base_url_env: Mapped[str] = mapped_column(String(100), default="", server_default="")
    requests_per_minute: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    requests_per_day: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    tokens_per_minute: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    tokens_per_day: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    context_tokens: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    max_output_tokens: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    timeout_ms: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    tags: Mapped[list[str]] = mapped_column(ARRAY(String(32)), default=list, server_default="{}")
    supports_json: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    reasoning: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    # Budgets the provider counts over every model of the account (provider + api_key_env).
    account_requests_per_minute: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    account_requests_per_day: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    account_tokens_per_minute: Mapped[int] = mapped_column(
        BigInteger, default=0, server_default="0"
    )
    account_tokens_per_day: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    # `reasoning_effort` sent to the model; NULL = the default (`low` for reasoning models).
    reasoning_effort: Mapped[str | None] = mapped_column(String(32))
    # `catalog` (the file decides) or `discovered` (added by model discovery; the file leaves it).
    origin: Mapped[str] = mapped_column(String(16), default="catalog", server_default="catalog")
    # Set by model discovery while the provider's list does not offer the model ('' = listed).
    unlisted_reason: Mapped[str] = mapped_column(Text, default="", server_default="")
    unlisted_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    cooldown_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    cooldown_reason: Mapped[str] = mapped_column(Text, default="", server_default="")
    cooldown_outcome: Mapped[str] = mapped_column(String(20), default="", server_default="")
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    circuit_opened_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class PromptHistory(Base):
    """One ProcessPrompt call and how it ended (the seed's columns plus caller and attempts)."""

    __tablename__ = "prompt_history"
    __table_args__ = (
        Index("ix_prompt_history_user_id", "user_id"),
        Index("ix_prompt_history_selected_model_id", "selected_model_id"),
        Index("ix_prompt_history_success", "success"),
        Index("ix_prompt_history_created_at", "created_at"),
        Index("ix_prompt_history_record_id", "record_id", unique=True),
        Index("ix_prompt_history_client_key_id", "client_key_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(String(255))
    prompt_text: Mapped[str] = mapped_column(Text)
    selected_model_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("ai_models.id", ondelete="SET NULL")
    )
    response_text: Mapped[str | None] = mapped_column(Text)
    response_time: Mapped[Decimal] = mapped_column(Numeric(10, 3))
    success: Mapped[bool] = mapped_column(Boolean)
    error_message: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now())

    record_id: Mapped[str] = mapped_column(String(128))
    caller: Mapped[str] = mapped_column(String(255), default="", server_default="")
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    fallback_used: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    requested_model: Mapped[str] = mapped_column(String(255), default="", server_default="")
    status_code: Mapped[str] = mapped_column(String(32), default="", server_default="")
    # The client key the request came with; NULL for anonymous and admin-token requests.
    client_key_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("client_keys.id", ondelete="SET NULL")
    )
    # Tokens the answering model reported (prompt + completion).
    tokens: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")


class ModelAttempt(Base):
    """One call to one model, from a user prompt or a probe; unique by the client's attempt id."""

    __tablename__ = "model_attempts"
    __table_args__ = (
        Index("ix_model_attempts_attempt_id", "attempt_id", unique=True),
        Index("ix_model_attempts_model_id_start_time", "model_id", "start_time"),
        Index("ix_model_attempts_start_time", "start_time"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    attempt_id: Mapped[str] = mapped_column(String(64))
    model_id: Mapped[int] = mapped_column(Integer, ForeignKey("ai_models.id", ondelete="CASCADE"))
    start_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    latency_ms: Mapped[int] = mapped_column(Integer)
    outcome: Mapped[str] = mapped_column(String(20))
    http_status: Mapped[int] = mapped_column(SmallInteger, default=0, server_default="0")
    source: Mapped[str] = mapped_column(String(8))
    request_id: Mapped[str] = mapped_column(String(128), default="", server_default="")
    tokens: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    error: Mapped[str] = mapped_column(Text, default="", server_default="")


def _count() -> Mapped[int]:
    return mapped_column(BigInteger, default=0, server_default="0")


class ModelStatsHourly(Base):
    """One model's attempts in one hour: counts per outcome, latency histogram, tokens."""

    __tablename__ = "model_stats_hourly"

    model_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("ai_models.id", ondelete="CASCADE"), primary_key=True
    )
    bucket_start: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    success_count: Mapped[int] = _count()
    rate_limited_count: Mapped[int] = _count()
    quota_exhausted_count: Mapped[int] = _count()
    transient_count: Mapped[int] = _count()
    timeout_count: Mapped[int] = _count()
    permanent_count: Mapped[int] = _count()
    bad_request_count: Mapped[int] = _count()
    bad_answer_count: Mapped[int] = _count()
    abandoned_count: Mapped[int] = _count()
    wrong_format_count: Mapped[int] = _count()
    success_latency_ms_sum: Mapped[int] = _count()
    latency_le_100_ms: Mapped[int] = _count()
    latency_le_250_ms: Mapped[int] = _count()
    latency_le_500_ms: Mapped[int] = _count()
    latency_le_1000_ms: Mapped[int] = _count()
    latency_le_2000_ms: Mapped[int] = _count()
    latency_le_4000_ms: Mapped[int] = _count()
    latency_le_8000_ms: Mapped[int] = _count()
    latency_le_15000_ms: Mapped[int] = _count()
    latency_le_30000_ms: Mapped[int] = _count()
    latency_le_60000_ms: Mapped[int] = _count()
    latency_over_60000_ms: Mapped[int] = _count()
    tokens: Mapped[int] = _count()


class ClientKey(Base):
    """A key issued to one calling application: its SHA-256 only, its limits, and the shared state
    those limits are counted in (a requests-per-minute bucket and today's granted requests)."""

    __tablename__ = "client_keys"
    __table_args__ = (Index("ix_client_keys_key_sha256", "key_sha256", unique=True),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100))
    key_prefix: Mapped[str] = mapped_column(String(16))
    key_sha256: Mapped[str] = mapped_column(String(64))
    requests_per_minute: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    requests_per_day: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    tokens_per_day: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now())
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Requests left in the per-minute bucket at `bucket_at` (it refills at rpm/60 per second).
    bucket_requests: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    bucket_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Requests granted on `granted_day` (UTC), for the per-day limit.
    granted_day: Mapped[date | None] = mapped_column(Date)
    granted_requests: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class ClientKeyUsage(Base):
    """What one client key used on one day (UTC), counted as its history rows are recorded."""

    __tablename__ = "client_key_usage"

    client_key_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("client_keys.id", ondelete="CASCADE"), primary_key=True
    )
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    requests: Mapped[int] = _count()
    tokens: Mapped[int] = _count()
    failures: Mapped[int] = _count()


class PromptCountsMinutely(Base):
    """Prompt records of one UTC minute: received, answered, answered after a failover."""

    __tablename__ = "prompt_counts_minutely"

    bucket_start: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    prompts: Mapped[int] = _count()
    answered: Mapped[int] = _count()
    failovers: Mapped[int] = _count()


class SharedBudget(Base):
    """One budget counter shared by Selector replicas: its row is locked while a slice of it is
    granted, so that grants are decided one after the other (ADR 0016)."""

    __tablename__ = "shared_budgets"

    counter: Mapped[str] = mapped_column(String(200), primary_key=True)
    limit_value: Mapped[int] = mapped_column(BigInteger)


class SharedBudgetGrant(Base):
    """A slice of a counter granted to one replica: `amount` counts in the window until
    `count_until` (a sliding window: the lease's end plus the window; a day: the day's end)."""

    __tablename__ = "shared_budget_grants"
    __table_args__ = (Index("ix_shared_budget_grants_counter", "counter", "count_until"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    counter: Mapped[str] = mapped_column(String(200))
    holder: Mapped[str] = mapped_column(String(100))
    amount: Mapped[int] = mapped_column(BigInteger)
    lease_until: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    count_until: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class SharedSignal(Base):
    """A cooldown or circuit change one replica learned, for every replica to apply; read by id
    (the primary key) from where each replica left off."""

    __tablename__ = "shared_signals"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    holder: Mapped[str] = mapped_column(String(100))
    model_id: Mapped[int] = mapped_column(Integer)
    kind: Mapped[int] = mapped_column(SmallInteger)
    account: Mapped[str] = mapped_column(String(200), default="", server_default="")
    outcome: Mapped[int] = mapped_column(SmallInteger, default=0, server_default="0")
    until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    reason: Mapped[str] = mapped_column(Text, default="", server_default="")
    circuit_opened_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    failed_trials: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now())


class SharedTrial(Base):
    """Which replica makes a model's half-open trial, until when."""

    __tablename__ = "shared_trials"

    model_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    holder: Mapped[str] = mapped_column(String(100))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
