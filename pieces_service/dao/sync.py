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


def upsert(conn: Connection, *, table: Table, tenant: uuid.UUID, items: list[dict]) -> tuple[int, int]:
    """Upsert `items` (all of `tenant`) into `table`; return (inserted, updated)."""
    if not items:
        return 0, 0
    payload = orjson.dumps(items).decode()
    flags = [row[0] for row in conn.exec_driver_sql(
        _Q[f"upsert_{table}"], {"tenant": tenant, "items": payload}
    )]
    inserted = sum(1 for flag in flags if flag)
    return inserted, len(flags) - inserted
