"""Environment variables that point the Selector's providers at a running simulator."""

from __future__ import annotations

from typing import Protocol

# Provider name (the simulator URL segment) → (base URL variable, credential variables).
PROVIDER_VARIABLES: dict[str, tuple[str, tuple[str, ...]]] = {
    "gemini": ("GEMINI_BASE_URL", ("GOOGLE_AI_STUDIO_API_KEY",)),
    "groq": ("GROQ_BASE_URL", ("GROQ_API_KEY",)),
    "cerebras": ("CEREBRAS_BASE_URL", ("CEREBRAS_API_KEY",)),
    "sambanova": ("SAMBANOVA_BASE_URL", ("SAMBANOVA_API_KEY",)),
    "huggingface": ("HUGGINGFACE_BASE_URL", ("HUGGINGFACE_API_KEY",)),
    "cloudflare": ("CLOUDFLARE_BASE_URL", ("CLOUDFLARE_API_TOKEN", "CLOUDFLARE_ACCOUNT_ID")),
    "openrouter": ("OPENROUTER_BASE_URL", ("OPENROUTER_API_KEY",)),
    "github": ("GITHUB_MODELS_BASE_URL", ("GITHUB_MODELS_TOKEN",)),
    "ollama": ("OLLAMA_BASE_URL", ()),
}
SIMULATED_CREDENTIAL = "simulated-credential"


class _HasBaseUrl(Protocol):
    def base_url(self, provider: str) -> str: ...


def simulated_environ(simulator: _HasBaseUrl) -> dict[str, str]:
    """Base URL overrides for every known provider plus a placeholder value for each credential."""
    environ: dict[str, str] = {}
    for provider, (base_variable, credentials) in PROVIDER_VARIABLES.items():
        environ[base_variable] = simulator.base_url(provider)
        environ.update(dict.fromkeys(credentials, SIMULATED_CREDENTIAL))
    return environ
