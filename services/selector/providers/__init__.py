"""Provider adapters: call one model over its wire format and classify every failure.

target = resolve_target(model, os.environ)          # MissingCredentials if a key is unset
client = await ProviderClient.open(max_connections=512)
result = await client.complete(target, ChatRequest.from_prompt("…"), timeout=20)
# ChatResult on success; ProviderError(outcome, http_status, retry_after, scope, message) otherwise
result = await client.stream(target, request, on_text=send, first_token_timeout=15,
                             idle_timeout=10, deadline=deadline)  # the answer piece by piece
daily_reset_zone("gemini")                          # "America/Los_Angeles": where its day ends
output_limit(0, reasoning=True)                     # 2048: the output tokens a request asks for
"""

from services.selector.providers.client import ProviderClient
from services.selector.providers.errors import MissingCredentials, ProviderError, Scope
from services.selector.providers.messages import ChatRequest, ChatResult, Message
from services.selector.providers.rules import daily_reset_zone
from services.selector.providers.target import Target, resolve_target, resolve_targets
from services.selector.providers.wire import REASONING_MIN_OUTPUT_TOKENS, output_limit

__all__ = [
    "REASONING_MIN_OUTPUT_TOKENS",
    "ChatRequest",
    "ChatResult",
    "Message",
    "MissingCredentials",
    "ProviderClient",
    "ProviderError",
    "Scope",
    "Target",
    "daily_reset_zone",
    "output_limit",
    "resolve_target",
    "resolve_targets",
]
