"""Cascading soft delete and restore: set-based, one statement per level."""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.engine import Connection

from ..catalogue import Level
from . import load_queries

_Q = load_queries("hierarchy.sql")


def lock_active(conn: Connection, *, level: Level, tenant: uuid.UUID, guid: uuid.UUID) -> bool:
    """Lock the active `level` row `guid` of `tenant` FOR UPDATE; False when there is none."""
    return conn.exec_driver_sql(_Q[f"lock_active_{level.name}"],
                                {"tenant": tenant, "guid": guid}).first() is not None


def soft_delete(conn: Connection, *, level: Level, tenant: uuid.UUID,
                guid: uuid.UUID) -> int | None:
    """Delete the active `level` row `guid` of `tenant` and its active descendants with one
    shared deleted_at. Returns the rows affected, or None when there was no such active row."""
    params = {"tenant": tenant, "guid": guid}
    if conn.exec_driver_sql(_Q[f"delete_{level.name}"], params).first() is None:
        return None
    affected = 1
    for below in level.descendants:
        affected += conn.exec_driver_sql(_Q[f"delete_{below.plural}_of_{level.name}"],
                                         params).rowcount
    return affected


@dataclass(frozen=True)
class DeletedRow:
    deleted_at: datetime
    parents: dict[str, uuid.UUID | None]  # parent level name -> guid, top-down


def lock_deleted(conn: Connection, *, level: Level, tenant: uuid.UUID,
                 guid: uuid.UUID) -> DeletedRow | None:
    """The soft-deleted `level` row `guid` of `tenant`, locked FOR UPDATE; None when absent
    or not deleted."""
    row = conn.exec_driver_sql(_Q[f"lock_deleted_{level.name}"],
                               {"tenant": tenant, "guid": guid}).first()
    if row is None:
        return None
    return DeletedRow(row[0], dict(zip(level.parents, row[1:])))


def restore(conn: Connection, *, level: Level, tenant: uuid.UUID, guid: uuid.UUID,
            deleted_at: datetime) -> int:
    """Restore the (locked, deleted) row and exactly the descendants its cascade deleted
    (same deleted_at). Returns the rows affected."""
    params = {"tenant": tenant, "guid": guid, "deleted_at": deleted_at}
    affected = conn.exec_driver_sql(_Q[f"restore_{level.name}"], params).rowcount
    for below in level.descendants:
        affected += conn.exec_driver_sql(_Q[f"restore_{below.plural}_of_{level.name}"],
                                         params).rowcount
    return affected
