"""How each provider speaks: error envelopes, rate-limit headers and waits, unknown-model replies,
parameter rejections — worded from the recorded replies (`recorded.py`; fixture names below).

A profile words every failure the engine decides. Where a provider's recordings cover a case the
reply is the recording with our model, limits and waits written in; where they do not, it is a
generic text in the provider's own envelope. Messages carry the `[simulated]` prefix (match them by
substring); no error body gets an extra field, so envelopes keep exactly the recorded keys.
Rate-limit headers report the script's `quota` (on every reply where the provider sends them on
every reply): a script without a quota has no budget to report and sends none. Waits: a quota
refusal announces what the provider would; a scripted `retry_after` is announced where the
provider puts waits (Retry-After, Gemini's RetryInfo) — Cerebras, which sends no Retry-After of its
own, sends one only when a script asks for it. `default` is the OpenAI-compatible behaviour (as
before profiles) for providers without a profile of their own.
"""

from __future__ import annotations

import math
import re
import time
import uuid
from datetime import UTC, datetime, timedelta
from email.utils import formatdate
from typing import TYPE_CHECKING, Any, ClassVar

from services.simulator.call import Call, Reply
from services.simulator.recorded import mark, template

if TYPE_CHECKING:
    from services.simulator.engine import Decision, Window

# Generic texts for statuses without a recording: (OpenAI code, message, Google status).
_STATUS_TEXT = {
    400: ("invalid_request_error", "Invalid request.", "INVALID_ARGUMENT"),
    401: ("invalid_api_key", "Invalid API key.", "UNAUTHENTICATED"),
    402: ("payment_required", "Payment required: the free credit is spent.", "FAILED_PRECONDITION"),
    403: ("permission_denied", "Access to this model is denied.", "PERMISSION_DENIED"),
    404: ("model_not_found", "The model `{model}` does not exist.", "NOT_FOUND"),
    408: ("request_timeout", "Request timeout.", "DEADLINE_EXCEEDED"),
    410: ("model_gone", "The model `{model}` has been removed.", "NOT_FOUND"),
    413: ("request_too_large", "Request too large for model `{model}`.", "INVALID_ARGUMENT"),
    422: ("unprocessable_entity", "Unprocessable request.", "INVALID_ARGUMENT"),
    429: ("rate_limit_exceeded", "Rate limit reached for model `{model}`.", "RESOURCE_EXHAUSTED"),
    500: ("internal_error", "Internal server error.", "INTERNAL"),
    502: ("bad_gateway", "Bad gateway.", "UNAVAILABLE"),
    503: ("service_unavailable", "The service is overloaded.", "UNAVAILABLE"),
    504: ("gateway_timeout", "Gateway timeout.", "DEADLINE_EXCEEDED"),
}
_CONTEXT_MESSAGE = (
    "This model's maximum context length is 8192 tokens. "
    "However, your messages resulted in 9100 tokens."
)
# Header name part of each quota window in OpenAI-style `x-ratelimit-*` headers.
_OPENAI_FAMILY = {
    "requests_minute": "requests",
    "requests_day": "requests-day",
    "tokens_minute": "tokens",
}
_GPT_OSS_EFFORTS = (None, "low", "medium", "high")
_RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"

Case = tuple[int, Any]


def go_duration(seconds: float) -> str:
    """Seconds as an OpenAI/Groq-style reset duration: `7.66s`, `1m30s`, `2h0m5s`."""
    seconds = max(0.0, seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{secs:.2f}".rstrip("0").rstrip(".") + "s"
    if hours:
        return f"{int(hours)}h{int(minutes)}m{text}"
    if minutes:
        return f"{int(minutes)}m{text}"
    return text


def _status_text(status: int, model: str) -> tuple[str, str, str]:
    code, message, google = _STATUS_TEXT.get(status, ("error", f"HTTP {status}.", "UNKNOWN"))
    return code, message.replace("{model}", model), google


def _numbers(decision: Decision, **recorded: str) -> dict[str, str]:
    """Recorded texts → the same with the quota refusal's numbers, e.g. `limit="Limit 6000"` →
    `{"Limit 6000": "Limit 30"}`; nothing when no quota refused (scripted behaviours keep the
    recorded numbers)."""
    refusal = decision.refusal
    if refusal is None:
        return {}
    return {
        text: re.sub(r"\d+", str(getattr(refusal, name)), text) for name, text in recorded.items()
    }


class Profile:
    """The OpenAI-compatible way (`default`): `{"error": {message, type, code}}` envelopes,
    `x-ratelimit-*` headers for the scripted quota, Retry-After on a 429 with a wait."""

    name: ClassVar[str] = "default"
    # A request without any credential is refused (the provider's missing-key reply).
    requires_credential: ClassVar[bool] = False
    # Which 429s with a wait carry Retry-After: "always", "scripted" (only when the script sets
    # `retry_after`, which asks for the header), or "never" (the wait is in the body).
    retry_after_header: ClassVar[str] = "always"
    # SSE comment line sent while no content has been streamed yet.
    keepalive: ClassVar[str | None] = None
    # Whether replies carry `x-ratelimit-*` headers for a scripted quota (not where the provider
    # documents none or their format is unknown).
    rate_limit_headers: ClassVar[bool] = True
    # Streams carry usage in their finish chunk even without `stream_options.include_usage`.
    usage_in_final_chunk: ClassVar[bool] = False
    # A scripted HTTP status answered as one of this profile's recorded cases.
    statuses: ClassVar[dict[int, str]] = {}

    def rejected_parameter(self, call: Call) -> str:
        """The name of a request parameter this provider refuses, or ""."""
        return ""

    def reply(self, call: Call, decision: Decision) -> Reply:
        """The failure reply for `decision` (any behaviour that is not an answer)."""
        behaviour = decision.behaviour
        case = behaviour if isinstance(behaviour, str) else self.statuses.get(behaviour)
        if case is None:
            status, body = self.generic(int(behaviour), call, decision)
        else:
            status, body = getattr(self, case)(call, decision)
        headers = {**decision.headers, **self.limit_headers(decision)}
        wait = self.wait(decision)
        if status == 429 and wait is not None and self._says_retry_after(decision):
            headers["retry-after"] = self.retry_after(wait, decision.script.retry_after_format)
        return Reply(status, body, str(behaviour), headers)

    def _says_retry_after(self, decision: Decision) -> bool:
        if self.retry_after_header == "scripted":
            return decision.refusal is None and decision.retry_after is not None
        return self.retry_after_header == "always"

    def wait(self, decision: Decision) -> float | None:
        """The wait this reply announces."""
        return decision.wait

    def retry_after(self, seconds: float, form: str) -> str:
        if form == "http_date":
            return formatdate(time.time() + seconds, usegmt=True)
        return f"{seconds:g}"

    def limit_headers(self, decision: Decision) -> dict[str, str]:
        """Rate-limit headers: the refused window, else every scripted one; only for requests
        that reached the quota (as before profiles existed)."""
        budget = decision.budget
        if budget is None or not budget.counted or not self.rate_limit_headers:
            return {}
        refused = decision.refusal
        if refused is not None:
            names = ["tokens_minute" if refused.window == "too_large" else refused.window]
        else:
            names = [n for n in _OPENAI_FAMILY if getattr(budget, n).limit is not None]
        headers: dict[str, str] = {}
        for name in names:
            window: Window = getattr(budget, name)
            family = _OPENAI_FAMILY[name]
            headers[f"x-ratelimit-limit-{family}"] = str(window.reported_limit)
            headers[f"x-ratelimit-remaining-{family}"] = str(window.remaining)
            headers[f"x-ratelimit-reset-{family}"] = go_duration(window.reset)
        return headers

    def envelope(self, status: int, code: str, message: str) -> Any:
        return mark({"error": {"message": message, "type": code, "code": code}})

    def _wait_text(self, decision: Decision) -> str:
        wait = self.wait(decision)
        return f" Please try again in {go_duration(wait)}." if wait else ""

    def generic(self, status: int, call: Call, decision: Decision) -> Case:
        code, message, _ = _status_text(status, call.model)
        if status == 429:
            message += self._wait_text(decision)
        return status, self.envelope(status, code, message)

    def rate_limited(self, call: Call, decision: Decision) -> Case:
        message = f"Rate limit reached for model `{call.model}` on requests per minute (RPM)."
        return 429, self.envelope(429, "rate_limit_exceeded", message + self._wait_text(decision))

    def daily_quota(self, call: Call, decision: Decision) -> Case:
        message = f"Rate limit reached for model `{call.model}` on requests per day (RPD)."
        return 429, self.envelope(429, "rate_limit_exceeded", message + self._wait_text(decision))

    def tokens_per_minute(self, call: Call, decision: Decision) -> Case:
        message = f"Rate limit reached for model `{call.model}` on tokens per minute (TPM)."
        refusal = decision.refusal
        if refusal is not None:
            numbers = f"Limit {refusal.limit}, Used {refusal.used}, Requested {refusal.requested}"
            message = f"{message[:-1]}: {numbers}."
        return 429, self.envelope(429, "rate_limit_exceeded", message + self._wait_text(decision))

    def request_too_large(self, call: Call, decision: Decision) -> Case:
        return self.tokens_per_minute(call, decision)

    def queue_exceeded(self, call: Call, decision: Decision) -> Case:
        message = "The service is out of capacity right now. Please try again soon."
        return 429, self.envelope(429, "queue_exceeded", message)

    def context_length_exceeded(self, call: Call, decision: Decision) -> Case:
        return 400, self.envelope(400, "context_length_exceeded", _CONTEXT_MESSAGE)

    def content_filter(self, call: Call, decision: Decision) -> Case:
        message = "The prompt was filtered due to the content management policy."
        return 400, self.envelope(400, "content_filter", message)

    def echo_authorization(self, call: Call, decision: Decision) -> Case:
        message = f"Invalid API key provided: {call.credential}"
        return 401, self.envelope(401, "invalid_api_key", message)

    def invalid_parameter(self, call: Call, decision: Decision) -> Case:
        message = f"Unsupported value for parameter `{decision.detail}`."
        return 400, self.envelope(400, "invalid_request_error", message)

    def unauthorized(self, call: Call, decision: Decision) -> Case:
        return self.generic(401, call, decision)

    def no_credential(self, call: Call, decision: Decision) -> Case:
        return self.unauthorized(call, decision)

    def unknown_model(self, call: Call, decision: Decision) -> Case:
        return self.generic(404, call, decision)

    def no_free_tier(self, call: Call, decision: Decision) -> Case:
        return self.generic(402, call, decision)


class Groq(Profile):
    """Groq: `x-ratelimit-*-requests` is the DAILY request budget and `-tokens` the per-minute
    token budget, on every reply, resets as Go durations; integer `retry-after` only on 429; a
    request whose prompt + max_tokens exceeds the TPM gets HTTP 413 (groq/* fixtures)."""

    name = "groq"
    requires_credential = True
    usage_in_final_chunk = True  # and under x_groq.usage (groq/stream_success)
    statuses: ClassVar[dict[int, str]] = {
        401: "unauthorized",
        404: "unknown_model",
        413: "request_too_large",
        429: "rate_limited",
    }
    _ORG = "org_01j5b4pz9jff492fq686vypsx6"  # as recorded in groq/429_tpm

    def rejected_parameter(self, call: Call) -> str:
        # gpt-oss accepts low|medium|high only ("none" is a validation error, docs/providers.md).
        effort = call.body.get("reasoning_effort")
        if call.model.startswith("openai/gpt-oss") and effort not in _GPT_OSS_EFFORTS:
            return "reasoning_effort"
        return ""

    def invalid_parameter(self, call: Call, decision: Decision) -> Case:
        # Worded after Groq's recorded rejection for qwen ("`reasoning_effort` must be one of
        # `none` or `default`", Alishahryar1/free-claude-code#1348); gpt-oss's is not recorded.
        message = "`reasoning_effort` must be one of `low`, `medium`, or `high`"
        return 400, mark({"error": {"message": message, "type": "invalid_request_error"}})

    def retry_after(self, seconds: float, form: str) -> str:
        if form == "http_date":
            return super().retry_after(seconds, form)
        return str(math.ceil(seconds))

    def limit_headers(self, decision: Decision) -> dict[str, str]:
        budget = decision.budget
        if budget is None:
            return {}
        headers: dict[str, str] = {}
        for family, window in (("requests", budget.requests_day), ("tokens", budget.tokens_minute)):
            headers[f"x-ratelimit-limit-{family}"] = str(window.reported_limit)
            headers[f"x-ratelimit-remaining-{family}"] = str(window.remaining)
            headers[f"x-ratelimit-reset-{family}"] = go_duration(window.reset)
        return headers

    def unauthorized(self, call: Call, decision: Decision) -> Case:
        return template("groq/401_invalid_api_key")

    def unknown_model(self, call: Call, decision: Decision) -> Case:
        return template("groq/404_model_decommissioned", {"llama-3.3-70b-versatile": call.model})

    def rate_limited(self, call: Call, decision: Decision) -> Case:
        # Groq's RPM wording follows its recorded TPM message (groq/429_tpm).
        refusal = decision.refusal
        numbers = f": Limit {refusal.limit}, Used {refusal.used}, Requested 1." if refusal else "."
        message = (
            f"Rate limit reached for model `{call.model}` in organization `{self._ORG}` service "
            f"tier `on_demand` on requests per minute (RPM){numbers}{self._wait_text(decision)}"
        )
        body = {"error": {"message": message, "type": "requests", "code": "rate_limit_exceeded"}}
        return 429, mark(body)

    def tokens_per_minute(self, call: Call, decision: Decision) -> Case:
        wait = self.wait(decision)
        numbers = _numbers(
            decision, limit="Limit 6000", used="Used 5034", requested="Requested 1443"
        )
        if wait is not None:
            numbers["4.77s"] = go_duration(wait)
        return template("groq/429_tpm", {"llama-3.1-8b-instant": call.model, **numbers})

    def request_too_large(self, call: Call, decision: Decision) -> Case:
        numbers = _numbers(decision, limit="Limit 6000", requested="Requested 12328")
        return template(
            "groq/413_request_too_large_tpm", {"llama-3.1-8b-instant": call.model, **numbers}
        )

    def daily_quota(self, call: Call, decision: Decision) -> Case:
        numbers = _numbers(decision, limit="Limit 1000", used="Used 1000")
        return template("groq/429_rpd", {"openai/gpt-oss-120b": call.model, **numbers})


class Cerebras(Profile):
    """Cerebras: top-level error bodies (no `error` wrapper), `x-ratelimit-*-requests-day` and
    `-tokens-minute` with float-second resets on every reply; no Retry-After of its own (only one
    a script asks for with `retry_after`) (cerebras/*)."""

    name = "cerebras"
    requires_credential = True
    retry_after_header = "scripted"
    statuses: ClassVar[dict[int, str]] = {
        401: "unauthorized",
        403: "no_credential",
        404: "unknown_model",
        429: "rate_limited",
    }

    def rejected_parameter(self, call: Call) -> str:
        return "prediction" if "prediction" in call.body else ""

    def envelope(self, status: int, code: str, message: str) -> Any:
        return mark({"message": message, "type": code, "param": None, "code": code})

    def invalid_parameter(self, call: Call, decision: Decision) -> Case:
        # Message as recorded (opencues/opencues#430); type/param/code follow the envelope and the
        # `wrong_api_format` code a client reported for refused fields (docs/providers.md, item 12).
        body = {
            "message": '"prediction" is not currently supported',
            "type": "invalid_request_error",
            "param": "prediction",
            "code": "wrong_api_format",
        }
        return 400, mark(body)

    def limit_headers(self, decision: Decision) -> dict[str, str]:
        budget = decision.budget
        if budget is None:
            return {}
        day, tokens = budget.requests_day, budget.tokens_minute
        return {
            "x-ratelimit-limit-requests-day": str(day.reported_limit),
            "x-ratelimit-limit-tokens-minute": str(tokens.reported_limit),
            "x-ratelimit-remaining-requests-day": str(day.remaining),
            "x-ratelimit-remaining-tokens-minute": str(tokens.remaining),
            "x-ratelimit-reset-requests-day": repr(day.reset),
            "x-ratelimit-reset-tokens-minute": repr(tokens.reset),
        }

    def unauthorized(self, call: Call, decision: Decision) -> Case:
        return template("cerebras/401_wrong_api_key")

    def no_credential(self, call: Call, decision: Decision) -> Case:
        return template("cerebras/403_no_auth_header")

    def unknown_model(self, call: Call, decision: Decision) -> Case:
        return template("cerebras/404_model_not_found", {"llama-3.3-70b": call.model})

    def rate_limited(self, call: Call, decision: Decision) -> Case:
        return template("cerebras/429_requests_per_minute")

    def tokens_per_minute(self, call: Call, decision: Decision) -> Case:
        return template("cerebras/429_tokens_per_minute")

    def daily_quota(self, call: Call, decision: Decision) -> Case:
        return template("cerebras/429_daily")

    def queue_exceeded(self, call: Call, decision: Decision) -> Case:
        return template("cerebras/429_queue_exceeded")


class SambaNova(Profile):
    """SambaNova: OpenAI envelope plus `request_id`; 402 PAYMENT_METHOD_REQUIRED; rate limits say
    "Violated duration_s: N" (86400 = daily); reset header format unknown, so none is sent."""

    name = "sambanova"
    rate_limit_headers = False
    statuses: ClassVar[dict[int, str]] = {402: "no_free_tier", 429: "rate_limited"}

    def rejected_parameter(self, call: Call) -> str:
        top_p = call.body.get("top_p")
        return "top_p" if isinstance(top_p, int | float) and top_p > 1 else ""

    def envelope(self, status: int, code: str, message: str) -> Any:
        error = {"message": message, "type": "invalid_request_error", "param": None, "code": code}
        return mark({"error": error, "request_id": str(uuid.uuid4())})

    def _template(self, name: str, replace: dict[str, str] | None = None) -> Case:
        """A recording with a fresh `request_id` where it has one."""
        status, body = template(name, replace)
        if "request_id" in body:
            body["request_id"] = str(uuid.uuid4())
        return status, body

    def invalid_parameter(self, call: Call, decision: Decision) -> Case:
        value = call.body.get("top_p")
        return self._template("sambanova/400_invalid_parameter", {"got 100": f"got {value}"})

    def no_free_tier(self, call: Call, decision: Decision) -> Case:
        return self._template("sambanova/402_payment_method_required")

    def _violated(self, decision: Decision, seconds: int) -> Case:
        numbers = _numbers(decision, used="current usage: 196279", limit="limit: 200000")
        return self._template(
            "sambanova/429_daily_violated_duration",
            {"duration_s: 86400": f"duration_s: {seconds}", **numbers},
        )

    def daily_quota(self, call: Call, decision: Decision) -> Case:
        return self._violated(decision, 86400)

    def rate_limited(self, call: Call, decision: Decision) -> Case:
        # The per-minute wording is the daily recording with its window (60 s); not recorded.
        return self._violated(decision, 60)

    def tokens_per_minute(self, call: Call, decision: Decision) -> Case:
        return self._violated(decision, 60)


class HuggingFace(Profile):
    """HuggingFace router: unknown models are HTTP 400 `model_not_supported`; spent credits a 402
    with a bare string `error` (huggingface/*)."""

    name = "huggingface"
    rate_limit_headers = False
    statuses: ClassVar[dict[int, str]] = {402: "no_free_tier"}

    def envelope(self, status: int, code: str, message: str) -> Any:
        error = {"message": message, "type": "invalid_request_error", "param": None, "code": code}
        return mark({"error": error})

    def unknown_model(self, call: Call, decision: Decision) -> Case:
        return template(
            "huggingface/400_model_not_supported", {"HuggingFaceH4/zephyr-7b-beta": call.model}
        )

    def no_free_tier(self, call: Call, decision: Decision) -> Case:
        return template("huggingface/402_monthly_credits_exhausted")


class Cloudflare(Profile):
    """Cloudflare Workers AI: the v4 envelope `{"errors": [{code, message}], "success": false}`
    even on `/ai/v1`; numeric codes (5007 no such model, 4006 daily neurons, 3040 capacity…).
    Unrecorded statuses use the HTTP status as the code."""

    name = "cloudflare"
    rate_limit_headers = False
    statuses: ClassVar[dict[int, str]] = {
        403: "_paid_only",
        408: "_timeout",
        413: "request_too_large",
        429: "queue_exceeded",
    }

    def envelope(self, status: int, code: str, message: str) -> Any:
        return mark({"errors": [{"code": status, "message": message}], "success": False})

    def unknown_model(self, call: Call, decision: Decision) -> Case:
        return template(
            "cloudflare/400_no_such_model", {"@cf/meta/llama-3.1-8b-instruct": call.model}
        )

    def _paid_only(self, call: Call, decision: Decision) -> Case:
        return template("cloudflare/403_requires_workers_paid")

    def _timeout(self, call: Call, decision: Decision) -> Case:
        return template("cloudflare/408_timeout")

    def request_too_large(self, call: Call, decision: Decision) -> Case:
        return template("cloudflare/413_request_too_large")

    def daily_quota(self, call: Call, decision: Decision) -> Case:
        return template("cloudflare/429_daily_neurons_4006")

    def queue_exceeded(self, call: Call, decision: Decision) -> Case:
        return template("cloudflare/429_out_of_capacity")

    rate_limited = queue_exceeded
    tokens_per_minute = queue_exceeded


class OpenRouter(Profile):
    """OpenRouter: `{"error": {code: <HTTP status>, message, metadata?}}`; the `:free` daily cap
    carries `X-RateLimit-*` with a millisecond-epoch reset inside `metadata.headers`; upstream
    throttling sits in `metadata.raw`; streams send `: OPENROUTER PROCESSING` (openrouter/*)."""

    name = "openrouter"
    requires_credential = True
    rate_limit_headers = False
    keepalive = ": OPENROUTER PROCESSING"
    usage_in_final_chunk = True
    statuses: ClassVar[dict[int, str]] = {
        401: "no_credential",
        402: "no_free_tier",
        404: "unknown_model",
        429: "rate_limited",
    }

    def envelope(self, status: int, code: str, message: str) -> Any:
        return mark({"error": {"code": status, "message": message}})

    def no_credential(self, call: Call, decision: Decision) -> Case:
        return template("openrouter/401_missing_auth")

    def no_free_tier(self, call: Call, decision: Decision) -> Case:
        return template("openrouter/402_insufficient_credits")

    def unknown_model(self, call: Call, decision: Decision) -> Case:
        return template("openrouter/404_no_endpoints", {"stepfun/step-3.5-flash:free": call.model})

    def rate_limited(self, call: Call, decision: Decision) -> Case:
        return template(
            "openrouter/429_upstream_rate_limited", {"google/gemma-4-31b-it:free": call.model}
        )

    tokens_per_minute = rate_limited
    queue_exceeded = rate_limited

    def reply(self, call: Call, decision: Decision) -> Reply:
        reply = super().reply(call, decision)
        if decision.behaviour == "daily_quota":
            # The recording carries the cap's headers both in the body and as real headers.
            headers = reply.body["error"]["metadata"]["headers"]
            reply.headers.update({name.lower(): value for name, value in headers.items()})
        return reply

    def daily_quota(self, call: Call, decision: Decision) -> Case:
        status, body = template("openrouter/429_free_daily_50")
        headers = body["error"]["metadata"]["headers"]
        headers["X-RateLimit-Reset"] = str(self._reset_ms(decision))
        if decision.refusal:
            headers["X-RateLimit-Limit"] = str(decision.refusal.limit)
        return status, body

    def _reset_ms(self, decision: Decision) -> int:
        """The daily cap's reset as milliseconds since the epoch: after the wait, else UTC
        midnight (openrouter.ai free-variant docs)."""
        now = datetime.now(UTC)
        wait = decision.wait
        if wait is None:
            reset = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), UTC)
        else:
            reset = now + timedelta(seconds=wait)
        return int(reset.timestamp() * 1000)


class Gemini(Profile):
    """Gemini: Google's `{"error": {code, message, status, details}}`; no rate-limit headers; waits
    in `RetryInfo.retryDelay`. A daily 429 names a `PerDay` quota id and still carries a SHORT
    retryDelay — the next per-minute window, not the day's end (gemini/* fixtures)."""

    name = "gemini"
    retry_after_header = "never"
    rate_limit_headers = False
    statuses: ClassVar[dict[int, str]] = {
        404: "unknown_model",
        429: "rate_limited",
        503: "queue_exceeded",
    }

    def envelope(self, status: int, code: str, message: str) -> Any:
        google = _STATUS_TEXT.get(status, ("", "", "UNKNOWN"))[2]
        return mark({"error": {"code": status, "message": message, "status": google}})

    def wait(self, decision: Decision) -> float | None:
        refusal, budget = decision.refusal, decision.budget
        if refusal is not None and refusal.window == "requests_day" and budget is not None:
            return float(max(1, math.ceil(budget.requests_minute.reset)))
        return decision.wait

    def generic(self, status: int, call: Call, decision: Decision) -> Case:
        _, message, _ = _status_text(status, call.model)
        return status, self.envelope(status, "", message)

    def unauthorized(self, call: Call, decision: Decision) -> Case:
        return template("gemini/400_api_key_invalid")

    def unknown_model(self, call: Call, decision: Decision) -> Case:
        return template("gemini/404_unknown_model", {"gemini-1.5-flash": call.model})

    def context_length_exceeded(self, call: Call, decision: Decision) -> Case:
        return template("gemini/400_context_too_long")

    def content_filter(self, call: Call, decision: Decision) -> Case:
        status, body = template("gemini/prompt_blocked")
        return status, {**body, "simulated": True}  # a 200 answer, not an error envelope

    def queue_exceeded(self, call: Call, decision: Decision) -> Case:
        return template("gemini/503_high_demand")

    def no_free_tier(self, call: Call, decision: Decision) -> Case:
        return template("gemini/429_limit_zero_no_free_tier", {"gemini-2.5-pro": call.model})

    def rate_limited(self, call: Call, decision: Decision) -> Case:
        wait = self.wait(decision)
        if wait is None:
            model = "gemini-2.5-flash-preview-image"
            return template("gemini/429_per_minute", {model: call.model})
        status, body = template("gemini/429_per_minute_retryinfo", {"gemini-3.5-flash": call.model})
        return status, _with_wait(body, "20.04466179s", wait)

    tokens_per_minute = rate_limited

    def daily_quota(self, call: Call, decision: Decision) -> Case:
        numbers = _numbers(decision, limit="limit: 20")
        status, body = template(
            "gemini/429_daily_free_tier", {"gemini-3.5-flash": call.model, **numbers}
        )
        if decision.refusal:
            for detail in body["error"]["details"]:
                for violation in detail.get("violations", []):
                    violation["quotaValue"] = str(decision.refusal.limit)
        return status, _with_wait(body, "38.90923309s", self.wait(decision))


def _with_wait(body: dict[str, Any], recorded: str, wait: float | None) -> dict[str, Any]:
    """A recorded Google 429 `body` saying `wait` (in its message and RetryInfo), or no wait."""
    error = body["error"]
    details = [d for d in error["details"] if d["@type"] != _RETRY_INFO]
    if wait is None:
        error["message"] = error["message"].replace(f"\nPlease retry in {recorded}.", "")
    else:
        # The message gives the exact wait, RetryInfo whole seconds ("38.90923309s" and "38s").
        error["message"] = error["message"].replace(recorded, f"{wait:.10g}s")
        delay = f"{int(wait)}s" if wait >= 1 else f"{wait:.3g}s"
        details.append({"@type": _RETRY_INFO, "retryDelay": delay})
    error["details"] = details
    return body


PROFILES: dict[str, Profile] = {
    profile.name: profile
    for profile in (
        Profile(),
        Groq(),
        Cerebras(),
        SambaNova(),
        HuggingFace(),
        Cloudflare(),
        OpenRouter(),
        Gemini(),
    )
}


def profile_named(name: str) -> Profile:
    """The profile called `name` (validated by the scenario)."""
    return PROFILES[name]
