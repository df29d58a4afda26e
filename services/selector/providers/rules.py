"""The one table of rules per provider: how to read its errors, what each reply means, how long
to wait, and whether it holds for the model or the whole account.

Each provider has the envelopes it answers with, the zone its daily quotas reset in, and an
ordered list of rules. `classify.py` walks the provider's own rules, then SHARED_RULES; the first
rule that matches decides. A rule matches when the status is one it names (any status if it names
none) and, if it names any signal (codes, text, quota id, spent header), at least one of them is
present. Its wait is the first of its wait sources that gives a number.

Every fact is from docs/providers.md (section named in the comment) and is pinned by a recorded
reply under tests/fixtures/providers/<provider>/<case>.json (the fixture named in the comment).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from aiselector.v1 import common_pb2
from services.selector.providers import envelopes, waits
from services.selector.providers.envelopes import Envelope, Reader
from services.selector.providers.errors import Scope

RATE_LIMITED = common_pb2.OUTCOME_RATE_LIMITED
QUOTA_EXHAUSTED = common_pb2.OUTCOME_QUOTA_EXHAUSTED
PERMANENT = common_pb2.OUTCOME_PERMANENT
BAD_REQUEST = common_pb2.OUTCOME_BAD_REQUEST
TRANSIENT = common_pb2.OUTCOME_TRANSIENT
MODEL, ACCOUNT = Scope.MODEL, Scope.ACCOUNT
UTC_ZONE = "UTC"


@dataclass(frozen=True)
class Reply:
    """A failed reply as the rules see it."""

    status: int
    headers: Mapping[str, str]  # lower-case names; the real headers over copies in the body
    envelope: Envelope
    now: datetime
    zone: str  # where the provider's day ends


Wait = Callable[[Reply], "float | None"]


@dataclass(frozen=True)
class Rule:
    """What a reply means when it matches: outcome, scope, and where the wait comes from."""

    outcome: int
    summary: str
    status: tuple[int, ...] = ()
    codes: tuple[str, ...] = ()  # any of these codes (case-insensitive)
    text: str = ""  # a regex searched (case-insensitive) in the provider's explanation
    quota_id: str = ""  # a regex searched in Gemini's quota ids
    spent: tuple[str, ...] = ()  # any `x-ratelimit-remaining-<kind>` is 0
    waits: tuple[Wait, ...] = ()
    scope: Scope = MODEL

    def matches(self, reply: Reply) -> bool:
        """Whether `reply` is what this rule describes."""
        if self.status and reply.status not in self.status:
            return False
        if not (self.codes or self.text or self.quota_id or self.spent):
            return True
        found = {code.lower() for code in reply.envelope.codes}
        return (
            any(code.lower() in found for code in self.codes)
            or bool(self.text and re.search(self.text, reply.envelope.text, re.IGNORECASE))
            or any(self.quota_id and re.search(self.quota_id, q) for q in reply.envelope.quota_ids)
            or any(waits.is_spent(reply.headers, kind) for kind in self.spent)
        )

    def wait(self, reply: Reply) -> float | None:
        """Seconds to wait, from the first wait source that gives one."""
        return next((w for w in (source(reply) for source in self.waits) if w is not None), None)


@dataclass(frozen=True)
class ProviderRules:
    """Everything the classifier needs to know about one provider."""

    envelopes: tuple[Reader, ...]
    rules: tuple[Rule, ...]
    # Where the provider's calendar day ends; UTC also where its daily windows roll.
    reset_zone: str = UTC_ZONE


# Wait sources: each reads one place a provider puts its wait.


def retry_after(reply: Reply) -> float | None:
    """`Retry-After`: delta-seconds or an HTTP date."""
    value = reply.headers.get("retry-after")
    return waits.parse_retry_after(value, reply.now) if value else None


def retry_delay(reply: Reply) -> float | None:
    """Gemini's `RetryInfo.retryDelay`."""
    return reply.envelope.retry_delay


def message_wait(reply: Reply) -> float | None:
    """The wait a message states: Groq's "try again in 9m38.016s", Gemini's "retry in 38.9s"."""
    return waits.message_retry_delay(reply.envelope.text)


def until_midnight(reply: Reply) -> float:
    """Until the next 00:00 in the provider's reset zone."""
    return waits.seconds_until_midnight(reply.now, reply.zone)


def header(name: str, parse: waits.Format) -> Wait:
    """One header, in the format the provider documents."""
    return lambda reply: parse(reply.headers[name], reply.now) if name in reply.headers else None


def reset(kinds: tuple[str, ...], parse: waits.Format) -> Wait:
    """`x-ratelimit-reset-<kind>` of the spent limit among `kinds`, else the longest given."""
    return lambda reply: waits.spent_reset(reply.headers, kinds, parse, reply.now)


def fixed(seconds: float) -> Wait:
    """A wait the provider's documentation implies when the reply gives none."""
    return lambda reply: seconds


# Shared by every provider, after its own rules (docs/providers.md "One table of rules" 1-3, 17-18).
SHARED_RULES = (
    # Rule 1: the key is unusable, for every model on it (groq/401_invalid_api_key,
    # cerebras/401_wrong_api_key, mistral/401_invalid_api_key, openrouter/401_missing_auth,
    # gemini/400_api_key_invalid: Gemini says 400 INVALID_ARGUMENT + API_KEY_INVALID).
    Rule(PERMANENT, "API key rejected", status=(401,), scope=ACCOUNT),
    Rule(
        PERMANENT,
        "API key rejected",
        codes=("invalid_api_key", "wrong_api_key", "API_KEY_INVALID"),
        scope=ACCOUNT,
    ),
    # cerebras/403_no_auth_header: FastAPI's answer when no credentials arrived.
    Rule(PERMANENT, "credentials missing", status=(403,), text=r"not authenticated", scope=ACCOUNT),
    # Rule 2: payment (huggingface/402_monthly_credits_exhausted,
    # openrouter/402_insufficient_credits, sambanova/402_payment_method_required).
    Rule(PERMANENT, "payment required", status=(402,), scope=ACCOUNT),
    Rule(PERMANENT, "payment required", codes=("PAYMENT_METHOD_REQUIRED",), scope=ACCOUNT),
    # Rule 3: this model cannot be used, whatever the status says (groq/400_model_decommissioned,
    # huggingface/400_model_not_supported, cerebras/404_model_not_found).
    Rule(PERMANENT, "model not found at provider", codes=("model_not_found",)),
    Rule(
        PERMANENT,
        "model withdrawn or not served at provider",
        codes=("model_decommissioned", "model_not_supported"),
    ),
    # gemini/404_unknown_model, gemini/404_no_longer_available_to_new_users; SambaNova's 410
    # (model removed, docs/providers.md "SambaNova").
    Rule(PERMANENT, "model not found at provider", status=(404,)),
    Rule(PERMANENT, "model removed at provider", status=(410,)),
    Rule(PERMANENT, "access denied", status=(403,)),
    # A 5xx that says it is a rate limit is one (Google answers 503 RESOURCE_EXHAUSTED at times).
    Rule(
        RATE_LIMITED,
        "rate limited",
        status=(500, 502, 503, 504),
        codes=("rate_limit_exceeded", "RESOURCE_EXHAUSTED", "429"),
        waits=(retry_after, retry_delay, message_wait),
    ),
    # A 429 the provider's rules did not explain (openrouter/429_upstream_rate_limited).
    Rule(
        RATE_LIMITED,
        "rate limited",
        status=(429,),
        waits=(retry_after, retry_delay, message_wait),
    ),
    # Rule 17: this prompt only (gemini/400_context_too_long, sambanova/400_invalid_parameter,
    # cloudflare/413_request_too_large).
    Rule(BAD_REQUEST, "request rejected", status=(400, 422)),
    Rule(BAD_REQUEST, "request too large", status=(413,)),
    # Rule 18: server side (gemini/503_high_demand, cloudflare/408_timeout).
    Rule(TRANSIENT, "timed out at provider", status=(408,)),
    Rule(TRANSIENT, "server error", status=tuple(range(500, 600))),
    # Anything else (409, 3xx): nothing says the model or the prompt is at fault.
    Rule(TRANSIENT, "unexpected status"),
)

# Wording of per-day limits in messages of OpenAI-compatible providers without their own rules
# (GitHub's "per 86400s … UserByModelByDay", "requests per day (RPD)", "daily").
_DAILY_TEXT = r"per[ _-]?day|daily|\bRPD\b|\bTPD\b|PerDay|ByDay|per 86400"

# Any other OpenAI-compatible provider: OpenAI's envelope and headers, any shape we know of.
DEFAULT = ProviderRules(
    envelopes=envelopes.ALL_READERS,
    rules=(
        Rule(
            QUOTA_EXHAUSTED,
            "daily quota exhausted",
            status=(429,),
            text=_DAILY_TEXT,
            spent=("requests-day", "tokens-day"),
            waits=(
                retry_after,
                reset(("requests-day", "tokens-day"), waits.go_duration),
                message_wait,
                until_midnight,
            ),
        ),
        Rule(
            RATE_LIMITED,
            "rate limited",
            status=(429,),
            waits=(retry_after, reset(("requests", "tokens"), waits.go_duration), message_wait),
        ),
    ),
)

PROVIDERS: dict[str, ProviderRules] = {
    # docs/providers.md "Gemini": quotas per project and model; RPD resets at midnight Pacific.
    "gemini": ProviderRules(
        envelopes=(envelopes.error_object, envelopes.google_details),
        reset_zone="America/Los_Angeles",
        rules=(
            # gemini/429_limit_zero_no_free_tier: no free quota at all, the delay is meaningless.
            Rule(
                PERMANENT,
                "no free quota for this model (limit 0)",
                status=(429,),
                text=r"\blimit: 0(?!\d)",
            ),
            # gemini/429_daily_free_tier, 429_daily_flash_lite, 429_mixed_minute_and_day: any
            # PerDay violation is the daily quota; its retryDelay only points at the next minute.
            Rule(
                QUOTA_EXHAUSTED,
                "daily quota exhausted",
                status=(429,),
                quota_id=r"PerDay",
                waits=(until_midnight,),
            ),
            # gemini/429_per_minute_retryinfo, 429_per_minute: retryDelay, else the minute.
            Rule(
                RATE_LIMITED,
                "rate limited",
                status=(429,),
                quota_id=r"PerMinute",
                waits=(retry_delay, message_wait, fixed(60.0)),
            ),
        ),
    ),
    # docs/providers.md "Groq": -requests headers count per DAY, -tokens per MINUTE, resets are
    # Go durations; the daily windows roll, so the stated wait is right, not midnight.
    "groq": ProviderRules(
        envelopes=(envelopes.error_object,),
        rules=(
            # groq/413_request_too_large_tpm: prompt + max_tokens exceed the TPM; never succeeds.
            Rule(
                BAD_REQUEST,
                "request too large for the tokens-per-minute limit (prompt + max_tokens)",
                status=(413,),
            ),
            # groq/429_rpd, groq/429_tpd.
            Rule(
                QUOTA_EXHAUSTED,
                "daily quota exhausted",
                status=(429,),
                text=r"per day|\(RPD\)|\(TPD\)",
                spent=("requests",),
                waits=(
                    retry_after,
                    message_wait,
                    header("x-ratelimit-reset-requests", waits.go_duration),
                ),
            ),
            # groq/429_tpm.
            Rule(
                RATE_LIMITED,
                "rate limited",
                status=(429,),
                waits=(
                    retry_after,
                    message_wait,
                    header("x-ratelimit-reset-tokens", waits.go_duration),
                ),
            ),
        ),
    ),
    # docs/providers.md "Cerebras": top-level bodies; -requests-day and -tokens-minute headers
    # in float seconds; no Retry-After documented.
    "cerebras": ProviderRules(
        envelopes=(envelopes.top_level, envelopes.detail),
        rules=(
            # cerebras/429_queue_exceeded: provider busy, clears within seconds; no wait given.
            Rule(
                RATE_LIMITED,
                "provider busy (queue full)",
                status=(429,),
                codes=("queue_exceeded",),
                waits=(retry_after,),
            ),
            # cerebras/429_daily: the daily request budget is spent.
            Rule(
                QUOTA_EXHAUSTED,
                "daily quota exhausted",
                status=(429,),
                spent=("requests-day",),
                text=r"per day|daily",
                waits=(header("x-ratelimit-reset-requests-day", waits.float_seconds), retry_after),
            ),
            # cerebras/429_requests_per_minute, 429_tokens_per_minute: the minute reset, never -day.
            Rule(
                RATE_LIMITED,
                "rate limited",
                status=(429,),
                waits=(
                    retry_after,
                    reset(("tokens-minute", "requests-minute"), waits.float_seconds),
                ),
            ),
        ),
    ),
    # docs/providers.md "SambaNova": OpenAI envelope; reset header format not found.
    "sambanova": ProviderRules(
        envelopes=(envelopes.error_object,),
        rules=(
            # sambanova/429_daily_violated_duration: a window of a day or longer. No reset is
            # known, so none is claimed: the live state applies its daily default.
            Rule(
                QUOTA_EXHAUSTED,
                "daily quota exhausted",
                status=(429,),
                text=r"duration_s:\s*(?:86400|\d{6,})\b",
                spent=("requests-day",),
                waits=(
                    retry_after,
                    header("x-ratelimit-reset-requests-day", waits.seconds_or_epoch),
                ),
            ),
            Rule(
                RATE_LIMITED,
                "rate limited",
                status=(429,),
                waits=(
                    retry_after,
                    header("x-ratelimit-reset-requests", waits.seconds_or_epoch),
                    message_wait,
                ),
            ),
        ),
    ),
    # docs/providers.md "HuggingFace router": object or string envelope.
    "huggingface": ProviderRules(
        envelopes=(envelopes.error_object, envelopes.error_string),
        rules=(
            # huggingface/400_model_not_supported_string: the older envelope has no code.
            Rule(
                PERMANENT,
                "model withdrawn or not served at provider",
                text=r"is not supported by any provider",
            ),
        ),
    ),
    # docs/providers.md "Cloudflare Workers AI": v4 envelope with numeric codes (errors.mdx).
    "cloudflare": ProviderRules(
        envelopes=(envelopes.errors_list,),
        rules=(
            # cloudflare/400_no_such_model (5007); 3042 invalid model name; 5028 deprecated model.
            Rule(PERMANENT, "model not found at provider", codes=("5007", "3042", "5028")),
            # cloudflare/403_requires_workers_paid.
            Rule(PERMANENT, "model requires a paid plan", codes=("5035",)),
            # cloudflare/429_daily_neurons_4006, 429_daily_neurons_3036: the 10,000 neurons/day
            # hold for the whole account and reset at 00:00 UTC.
            Rule(
                QUOTA_EXHAUSTED,
                "daily free allocation used up",
                status=(429,),
                codes=("3036", "4006"),
                text=r"daily free allocation",
                waits=(retry_after, until_midnight),
                scope=ACCOUNT,
            ),
            # cloudflare/429_out_of_capacity (3040): capacity, not quota.
            Rule(
                RATE_LIMITED,
                "provider out of capacity",
                status=(429,),
                codes=("3040",),
                waits=(retry_after,),
            ),
        ),
    ),
    # docs/providers.md "OpenRouter": numeric error.code, metadata.raw/limit_source/headers;
    # `:free` limits hold for the whole account; X-RateLimit-Reset is a millisecond epoch.
    "openrouter": ProviderRules(
        envelopes=(envelopes.error_object, envelopes.openrouter_metadata),
        rules=(
            # openrouter/404_no_endpoints; "no longer available as a free model".
            Rule(
                PERMANENT,
                "model has no free endpoint",
                text=r"No endpoints found|no longer available as a free model",
            ),
            # openrouter/429_free_daily_50, 429_free_daily_via_provider_raw.
            Rule(
                QUOTA_EXHAUSTED,
                "free-model daily cap reached",
                status=(429,),
                codes=("openrouter_free_tier_daily",),
                text=r"free-models-per-day",
                waits=(header("x-ratelimit-reset", waits.ms_epoch), retry_after, until_midnight),
                scope=ACCOUNT,
            ),
            # openrouter/429_free_per_minute: 20 requests/minute over all `:free` models.
            Rule(
                RATE_LIMITED,
                "free-model per-minute cap reached",
                status=(429,),
                text=r"free-models-per-min",
                waits=(retry_after, header("x-ratelimit-reset", waits.ms_epoch)),
                scope=ACCOUNT,
            ),
        ),
    ),
}


def rules_for(provider: str, api_format: int = common_pb2.API_FORMAT_OPENAI) -> ProviderRules:
    """The rules of `provider`; Gemini's for an unnamed Gemini-format provider, else the default."""
    if provider in PROVIDERS:
        return PROVIDERS[provider]
    if api_format == common_pb2.API_FORMAT_GEMINI:
        return PROVIDERS["gemini"]
    return DEFAULT


def daily_reset_zone(provider: str, api_format: int = common_pb2.API_FORMAT_OPENAI) -> str:
    """The IANA time zone whose midnight ends `provider`'s day (Gemini: America/Los_Angeles;
    UTC for the others, also where daily windows roll)."""
    return rules_for(provider, api_format).reset_zone
