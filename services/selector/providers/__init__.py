"""Provider adapters: call one model over its wire format and classify every failure.

target = resolve_target(model, os.environ)          # MissingCredentials if a key is unset
client = await ProviderClient.open(max_connections=512)
result = await client.complete(target, ChatRequest(prompt="…"), timeout=20)
# ChatResult on success; ProviderError(outcome, http_status, retry_after, message) otherwise
"""

from services.selector.providers.client import ProviderClient
from services.selector.providers.errors import MissingCredentials, ProviderError
from services.selector.providers.messages import ChatRequest, ChatResult
from services.selector.providers.target import Target, resolve_target
from services.selector.providers.wire import REASONING_MIN_OUTPUT_TOKENS

__all__ = [
    "REASONING_MIN_OUTPUT_TOKENS",
    "ChatRequest",
    "ChatResult",
    "MissingCredentials",
    "ProviderClient",
    "ProviderError",
    "Target",
    "resolve_target",
]
