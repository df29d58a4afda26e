"""The catalog file as data: `ModelSpec`, its validation, and the parsed `catalog.yaml`.

The one reading of the file: ModelStore applies it (`services/data/catalog.py`), the simulator and
the stack point its providers at the simulator (`services/simulator/environ.py`). Pure: no
database, no network.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import yaml

API_FORMATS = ("openai", "gemini")
# Capability tags a model may declare and a request may require.
TAGS = ("json", "code", "russian", "reasoning", "long-context")
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]*/[A-Za-z0-9][A-Za-z0-9._:/@-]*$")
REASONING_EFFORT_PATTERN = re.compile(r"^[A-Za-z0-9_-]{0,32}$")
# Where a model comes from: the catalog file (or CreateModel), or model discovery.
CATALOG_ORIGIN = "catalog"
DISCOVERED_ORIGIN = "discovered"
ORIGINS = (CATALOG_ORIGIN, DISCOVERED_ORIGIN)
ENV_PATTERN = re.compile(r"^[A-Z][A-Z0-9_]*$")
PROVIDER_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]*$")
# YAML keys of `limits` → ModelSpec fields.
LIMIT_KEYS = {
    "rpm": "requests_per_minute",
    "rpd": "requests_per_day",
    "tpm": "tokens_per_minute",
    "tpd": "tokens_per_day",
    "context": "context_tokens",
    "max_output": "max_output_tokens",
    "timeout_ms": "timeout_ms",
}
# YAML keys of a provider's `account_limits` → ModelSpec fields (the same limits, per account).
ACCOUNT_LIMIT_KEYS = {key: f"account_{LIMIT_KEYS[key]}" for key in ("rpm", "rpd", "tpm", "tpd")}
_INT32_MAX = 2**31 - 1


class CatalogError(ValueError):
    """The catalog file is invalid; the message names the entry and the field."""


@dataclass(frozen=True)
class ModelSpec:
    """The catalog fields of one model (everything but id, counters, times and availability)."""

    name: str
    provider: str
    api_endpoint: str
    api_format: str
    provider_model_id: str
    api_key_env: str = ""
    base_url_env: str = ""
    requests_per_minute: int = 0
    requests_per_day: int = 0
    tokens_per_minute: int = 0
    tokens_per_day: int = 0
    context_tokens: int = 0
    max_output_tokens: int = 0
    timeout_ms: int = 0
    tags: tuple[str, ...] = field(default_factory=tuple)
    supports_json: bool = False
    reasoning: bool = False
    is_active: bool = True
    account_requests_per_minute: int = 0
    account_requests_per_day: int = 0
    account_tokens_per_minute: int = 0
    account_tokens_per_day: int = 0
    reasoning_effort: str | None = None
    origin: str = CATALOG_ORIGIN

    def columns(self) -> dict[str, Any]:
        """Column values of `ai_models` for this spec."""
        values = asdict(self)
        values["tags"] = list(self.tags)
        return values


SPEC_FIELDS = tuple(f.name for f in fields(ModelSpec))
LIMIT_FIELDS = tuple(LIMIT_KEYS.values())
ACCOUNT_LIMIT_FIELDS = tuple(ACCOUNT_LIMIT_KEYS.values())
# ModelSpec limit field → its path in the proto `Model` (how a problem with it is named).
LIMIT_PATHS = {
    **{name: f"limits.{name}" for name in LIMIT_FIELDS},
    **{name: name.replace("account_", "account_limits.", 1) for name in ACCOUNT_LIMIT_FIELDS},
}


def validate_spec(spec: ModelSpec) -> list[tuple[str, str]]:
    """(field, description) for each field of `spec` that breaks a rule; empty when valid."""
    problems: list[tuple[str, str]] = []
    if not NAME_PATTERN.match(spec.name) or len(spec.name) > 255:
        problems.append(("name", "must look like `provider/model-id` (at most 255 characters)"))
    if not PROVIDER_PATTERN.match(spec.provider) or len(spec.provider) > 100:
        problems.append(("provider", "must be lower-case letters, digits and dashes"))
    elif NAME_PATTERN.match(spec.name) and not spec.name.startswith(spec.provider + "/"):
        problems.append(("name", f"must start with the provider, `{spec.provider}/`"))
    if not re.match(r"^https?://", spec.api_endpoint) or len(spec.api_endpoint) > 500:
        problems.append(("api_endpoint", "must be an http(s) URL of at most 500 characters"))
    if spec.api_format not in API_FORMATS:
        problems.append(("api_format", f"must be one of {', '.join(API_FORMATS)}"))
    if not spec.provider_model_id or len(spec.provider_model_id) > 255:
        problems.append(("provider_model_id", "must be 1..255 characters"))
    for name in ("api_key_env", "base_url_env"):
        value = getattr(spec, name)
        if value and (not ENV_PATTERN.match(value) or len(value) > 100):
            problems.append((name, "must be an environment variable name like `GROQ_API_KEY`"))
    for name, path in LIMIT_PATHS.items():
        value = getattr(spec, name)
        limit = 2**62 if name.endswith(("tokens_per_minute", "tokens_per_day")) else _INT32_MAX
        if not 0 <= value <= limit:
            problems.append((path, "must be zero (not declared) or positive"))
    unknown = sorted(set(spec.tags) - set(TAGS))
    if unknown:
        problems.append(("tags", f"unknown {', '.join(unknown)}; known: {', '.join(TAGS)}"))
    if len(set(spec.tags)) != len(spec.tags):
        problems.append(("tags", "must not repeat a tag"))
    if spec.reasoning_effort is not None and not REASONING_EFFORT_PATTERN.match(
        spec.reasoning_effort
    ):
        problems.append(("reasoning_effort", "must be at most 32 letters, digits, `_` or `-`"))
    if spec.origin not in ORIGINS:
        problems.append(("origin", f"must be one of {', '.join(ORIGINS)}"))
    return problems


_KINDS = {int: "an integer", str: "a string", bool: "true or false", list: "a list"}


def _expect(mapping: Mapping[str, Any], key: str, kind: type, where: str, default: Any) -> Any:
    value = mapping.get(key, default)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise CatalogError(f"{where}: field `{key}` must be {_KINDS[kind]}, got {value!r}")
    return value


def _limits(
    raw: Any, where: str, name: str = "limits", keys: Mapping[str, str] = LIMIT_KEYS
) -> dict[str, int]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise CatalogError(f"{where}: field `{name}` must be a mapping")
    unknown = sorted(set(raw) - set(keys))
    if unknown:
        raise CatalogError(
            f"{where}: unknown field `{name}.{unknown[0]}` (known: {', '.join(keys)})"
        )
    return {keys[key]: _expect(raw, key, int, f"{where} {name}", 0) for key in keys if key in raw}


# Fields a `providers:` and a `models:` entry may have (the catalog header documents each).
PROVIDER_FIELDS = {
    "name",
    "api_format",
    "api_endpoint",
    "api_key_env",
    "base_url_env",
    "limits",
    "account_limits",
    "active",
}
MODEL_FIELDS = {
    "name",
    "provider",
    "provider_model_id",
    "limits",
    "tags",
    "supports_json",
    "reasoning",
    "reasoning_effort",
    "active",
}


def _check_keys(entry: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(entry) - allowed)
    if unknown:
        raise CatalogError(f"{where}: unknown field `{unknown[0]}`")


@dataclass(frozen=True)
class Catalog:
    """A validated catalog file: its models, and its providers (the defaults of models that model
    discovery adds later)."""

    models: tuple[ModelSpec, ...]
    providers: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def discovered(self, provider: str, provider_model_id: str, context_tokens: int) -> ModelSpec:
        """The spec of a model `provider` lists but the file lacks, as conservative as the file
        allows: the provider's defaults, the listed context unless the provider declares a smaller
        one, no tags, no JSON mode, not a reasoning model; origin `discovered`, named
        `provider/<id>` (a leading `@` dropped: Cloudflare's ids start with it).

        Raises KeyError when the file has no such provider, CatalogError when the spec is invalid.
        """
        entry = self.providers[provider]
        default_context = _limits(entry.get("limits"), "").get("context_tokens", 0)
        limits = {}
        if context_tokens > 0 and not 0 < default_context <= context_tokens:
            limits["context"] = context_tokens
        name = f"{provider}/{provider_model_id.lstrip('@')}"
        spec = _model_spec(
            {"name": name, "provider_model_id": provider_model_id, "limits": limits},
            f"discovered model `{name}`",
            provider,
            entry,
        )
        return replace(spec, origin=DISCOVERED_ORIGIN)


def _model_spec(
    entry: Mapping[str, Any], where: str, provider_name: str, provider: Mapping[str, Any]
) -> ModelSpec:
    """The validated spec of one `models:` entry of `provider`; raises CatalogError."""
    pwhere = f"provider `{provider_name}`"
    limits = {
        **_limits(provider.get("limits"), pwhere),
        **_limits(entry.get("limits"), where),
        **_limits(provider.get("account_limits"), pwhere, "account_limits", ACCOUNT_LIMIT_KEYS),
    }
    provider_active = _expect(provider, "active", bool, pwhere, True)
    active = _expect(entry, "active", bool, where, provider_active)
    if active and not provider_active:
        raise CatalogError(
            f"{where}: field `active` is true, but its provider is inactive "
            f"(`active: false` in {pwhere})"
        )
    tags = _expect(entry, "tags", list, where, [])
    if not all(isinstance(tag, str) for tag in tags):
        raise CatalogError(f"{where}: field `tags` must be a list of strings")
    effort = entry.get("reasoning_effort")
    if effort is not None and not isinstance(effort, str):
        raise CatalogError(f"{where}: field `reasoning_effort` must be a string, got {effort!r}")
    spec = ModelSpec(
        name=_expect(entry, "name", str, where, ""),
        provider=provider_name,
        api_endpoint=_expect(provider, "api_endpoint", str, pwhere, ""),
        api_format=_expect(provider, "api_format", str, pwhere, ""),
        provider_model_id=_expect(entry, "provider_model_id", str, where, ""),
        api_key_env=_expect(provider, "api_key_env", str, pwhere, ""),
        base_url_env=_expect(provider, "base_url_env", str, pwhere, ""),
        tags=tuple(tags),
        supports_json=_expect(entry, "supports_json", bool, where, False),
        reasoning=_expect(entry, "reasoning", bool, where, False),
        reasoning_effort=effort,
        is_active=active,
        **limits,
    )
    problems = validate_spec(spec)
    if problems:
        field_name, description = problems[0]
        raise CatalogError(f"{where}: field `{field_name}` {description}")
    return spec


def parse_catalog(document: Any) -> Catalog:
    """Validates a parsed catalog document; raises CatalogError."""
    if not isinstance(document, Mapping):
        raise CatalogError("catalog: must be a mapping with `providers` and `models`")
    raw_providers = _expect(document, "providers", list, "catalog", None)
    raw_models = _expect(document, "models", list, "catalog", None)
    providers: dict[str, Mapping[str, Any]] = {}
    for index, entry in enumerate(raw_providers):
        if not isinstance(entry, Mapping):
            raise CatalogError(f"providers[{index}]: must be a mapping")
        name = _expect(entry, "name", str, f"providers[{index}]", "")
        where = f"provider `{name}`" if name else f"providers[{index}]"
        _check_keys(entry, PROVIDER_FIELDS, where)
        if name in providers:
            raise CatalogError(f"{where}: field `name` is repeated")
        providers[name] = entry
    specs: list[ModelSpec] = []
    seen: set[str] = set()
    for index, entry in enumerate(raw_models):
        if not isinstance(entry, Mapping):
            raise CatalogError(f"models[{index}]: must be a mapping")
        name = _expect(entry, "name", str, f"models[{index}]", "")
        where = f"model `{name}`" if name else f"models[{index}]"
        _check_keys(entry, MODEL_FIELDS, where)
        if name in seen:
            raise CatalogError(f"{where}: field `name` is repeated")
        seen.add(name)
        provider_name = _expect(entry, "provider", str, where, "")
        if provider_name not in providers:
            raise CatalogError(f"{where}: field `provider` names no provider: {provider_name!r}")
        specs.append(_model_spec(entry, where, provider_name, providers[provider_name]))
    return Catalog(tuple(specs), providers)


def load_catalog(path: Path) -> Catalog:
    """Reads and validates the catalog file; raises CatalogError naming the entry and field."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise CatalogError(f"{path}: cannot read the catalog: {error.strerror}") from error
    except yaml.YAMLError as error:
        raise CatalogError(f"{path}: not valid YAML: {error}") from error
    try:
        return parse_catalog(document)
    except CatalogError as error:
        raise CatalogError(f"{path}: {error}") from error


@dataclass(frozen=True)
class ProviderEntry:
    """A `providers:` entry of the file: where and how its models are called."""

    name: str
    api_format: str
    api_endpoint: str
    api_key_env: str
    base_url_env: str
    active: bool

    @property
    def endpoint_variables(self) -> tuple[str, ...]:
        """The `{VARIABLE}` placeholders of the endpoint (Cloudflare's account id)."""
        return tuple(PLACEHOLDER.findall(self.api_endpoint))


PLACEHOLDER = re.compile(r"\{([A-Z][A-Z0-9_]*)\}")


def provider_entries(catalog: Catalog) -> tuple[ProviderEntry, ...]:
    """The providers of a validated catalog, in file order."""
    return tuple(
        ProviderEntry(
            name=name,
            api_format=_expect(entry, "api_format", str, f"provider `{name}`", "openai"),
            api_endpoint=_expect(entry, "api_endpoint", str, f"provider `{name}`", ""),
            api_key_env=_expect(entry, "api_key_env", str, f"provider `{name}`", ""),
            base_url_env=_expect(entry, "base_url_env", str, f"provider `{name}`", ""),
            active=_expect(entry, "active", bool, f"provider `{name}`", True),
        )
        for name, entry in catalog.providers.items()
    )
