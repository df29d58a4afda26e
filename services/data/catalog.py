"""The catalog in ModelStore: the idempotent upsert of the file's models (`catalog_file` reads it).

The file is the source of truth for catalog fields: `apply_catalog` inserts new models, rewrites
changed ones, and deactivates (never deletes) models that are no longer in the file, including
models added through `CreateModel`. It never touches counters, availability or listing state, nor
models that model discovery added (origin `discovered`, ADR 0010) unless the file names them: a
file entry makes such a model a catalog model.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from services.data.catalog_file import (
    ACCOUNT_LIMIT_FIELDS,
    ACCOUNT_LIMIT_KEYS,
    API_FORMATS,
    CATALOG_ORIGIN,
    DISCOVERED_ORIGIN,
    LIMIT_FIELDS,
    LIMIT_KEYS,
    LIMIT_PATHS,
    MODEL_FIELDS,
    ORIGINS,
    PROVIDER_FIELDS,
    SPEC_FIELDS,
    TAGS,
    Catalog,
    CatalogError,
    ModelSpec,
    load_catalog,
    parse_catalog,
    validate_spec,
)
from services.data.schema import AiModel

__all__ = [
    "ACCOUNT_LIMIT_FIELDS",
    "ACCOUNT_LIMIT_KEYS",
    "API_FORMATS",
    "CATALOG_ORIGIN",
    "DISCOVERED_ORIGIN",
    "LIMIT_FIELDS",
    "LIMIT_KEYS",
    "LIMIT_PATHS",
    "MODEL_FIELDS",
    "ORIGINS",
    "PROVIDER_FIELDS",
    "SPEC_FIELDS",
    "TAGS",
    "Catalog",
    "CatalogChanges",
    "CatalogError",
    "ModelSpec",
    "apply_catalog",
    "load_catalog",
    "parse_catalog",
    "spec_of",
    "validate_spec",
]


def spec_of(row: AiModel) -> ModelSpec:
    """The catalog fields of a stored model."""
    values = {name: getattr(row, name) for name in SPEC_FIELDS}
    values["tags"] = tuple(row.tags)
    return ModelSpec(**values)


# Serialises concurrent catalog applications (several replicas starting at once).
_APPLY_LOCK_KEY = 0x41495345


@dataclass(frozen=True)
class CatalogChanges:
    """What one application of the catalog changed."""

    created: tuple[str, ...] = ()
    updated: tuple[str, ...] = ()
    deactivated: tuple[str, ...] = ()


async def apply_catalog(session: AsyncSession, specs: Iterable[ModelSpec]) -> CatalogChanges:
    """Upserts `specs` by name; deactivates models not listed, except discovered ones.
    Re-applying changes nothing."""
    await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _APPLY_LOCK_KEY})
    existing = {row.name: row for row in (await session.scalars(select(AiModel))).all()}
    wanted = {spec.name: spec for spec in specs}
    created: list[str] = []
    updated: list[str] = []
    for name, spec in wanted.items():
        row = existing.get(name)
        if row is None:
            session.add(AiModel(**spec.columns()))
            created.append(name)
        elif spec_of(row) != spec:
            for column, value in spec.columns().items():
                setattr(row, column, value)
            row.updated_at = func.now()
            updated.append(name)
    deactivated = [
        name
        for name, row in existing.items()
        if name not in wanted and row.is_active and row.origin != DISCOVERED_ORIGIN
    ]
    for name in deactivated:
        existing[name].is_active = False
        existing[name].updated_at = func.now()
    await session.flush()
    return CatalogChanges(tuple(created), tuple(updated), tuple(deactivated))
