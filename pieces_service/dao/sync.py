"""Bulk upserts for sync: one statement per entity batch, items passed as one JSON array."""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Iterable, Literal

import orjson
from sqlalchemy.engine import Connection

from . import load_queries

Table = Literal["projects", "components", "assemblies", "pieces"]

_Q = load_queries("sync.sql")


@dataclass(frozen=True)
class ParentRow:
    kind: str
    guid: uuid.UUID
    project_guid: uuid.UUID
    component_guid: uuid.UUID | None
    is_active: bool
    deleted_at: datetime | None


def lock_parents(
    conn: Connection,
    *,
    tenant: uuid.UUID,
    project_guids: Iterable[uuid.UUID] = (),
    component_guids: Iterable[uuid.UUID] = (),
    assembly_guids: Iterable[uuid.UUID] = (),
) -> dict[tuple[str, uuid.UUID], ParentRow]:
    """The named parents that exist in `tenant`, keyed by (kind, guid), locked FOR SHARE."""
    rows = conn.exec_driver_sql(
        _Q["lock_parents"],
        {
            "tenant": tenant,
            "project_guids": sorted(set(project_guids)),
            "component_guids": sorted(set(component_guids)),
            "assembly_guids": sorted(set(assembly_guids)),
        },
    )
    return {(row.kind, row.guid): ParentRow(*row) for row in rows}


_NATURAL_KEY = {
    "projects": "projects_natural_key",
    "components": "components_natural_key",
    "assemblies": "assemblies_natural_key",
    "pieces": "pieces_natural_key",
}


def _items_json(items: list[dict]) -> str:
    """The items as the JSON array json_populate_recordset reads, without their null values:
    an absent key populates NULL just as an explicit null does, and PostgreSQL has less text
    to parse (BENCHMARKS.md, lever 10)."""
    return orjson.dumps(
        [{key: value for key, value in item.items() if value is not None} for item in items]
    ).decode()


def upsert(conn: Connection, *, table: Table, tenant: uuid.UUID,
           items: list[dict]) -> tuple[int, int]:
    """Upsert `items` (all of `tenant`) into `table`; return (inserted, updated).

    Items with a guid conflict on it; items without one on their natural key. Each group is
    one statement whose conflict checks are direct unique-index probes (a join to resolve
    natural keys would let a stale row estimate for a new tenant turn into a scan per item).
    """
    with_guid = [item for item in items if item.get("guid") is not None]
    without_guid = [item for item in items if item.get("guid") is None]
    inserted = updated = 0
    for group, target in ((with_guid, "(guid)"),
                          (without_guid, f"ON CONSTRAINT {_NATURAL_KEY[table]}")):
        if not group:
            continue
        sql = _Q[f"upsert_{table}"].format(conflict_target=target)
        flags = [row[0] for row in conn.exec_driver_sql(
            sql, {"tenant": tenant, "items": _items_json(group)})]
        added = sum(1 for flag in flags if flag)
        inserted += added
        updated += len(flags) - added
    return inserted, updated
