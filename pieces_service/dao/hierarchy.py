"""Cascading soft delete and restore: set-based, one statement per level."""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy.engine import Connection

from . import load_queries
from .sync import ParentRow, lock_parents

Entity = Literal["project", "component", "assembly", "piece"]

_Q = load_queries("hierarchy.sql")


@dataclass(frozen=True)
class Level:
    table: str
    parent_columns: tuple[str, ...]  # ancestors' GUID columns, top-down
    descendants: tuple[str, ...]     # tables below, top-down
    own_column: str                  # this entity's GUID column in descendant tables


LEVELS: dict[str, Level] = {
    "project": Level("projects", (), ("components", "assemblies", "pieces"), "project_guid"),
    "component": Level("components", ("project_guid",), ("assemblies", "pieces"),
                       "component_guid"),
    "assembly": Level("assemblies", ("project_guid", "component_guid"), ("pieces",),
                      "assembly_guid"),
    "piece": Level("pieces", ("project_guid", "component_guid", "assembly_guid"), (), ""),
}


def soft_delete(conn: Connection, *, entity: Entity, tenant: uuid.UUID,
                guid: uuid.UUID) -> int | None:
    """Delete the active `entity` `guid` of `tenant` and its active descendants with one
    shared deleted_at. Returns the rows affected, or None when there was no such active row."""
    level = LEVELS[entity]
    params = {"tenant": tenant, "guid": guid}
    root = conn.exec_driver_sql(_Q["delete_root"].format(table=level.table), params).first()
    if root is None:
        return None
    affected = 1
    for table in level.descendants:
        sql = _Q["delete_descendants"].format(table=table, parent_column=level.own_column)
        affected += conn.exec_driver_sql(sql, params).rowcount
    return affected


@dataclass(frozen=True)
class DeletedRow:
    deleted_at: datetime
    parents: dict[str, uuid.UUID | None]  # parent column -> guid, top-down


def lock_deleted(conn: Connection, *, entity: Entity, tenant: uuid.UUID,
                 guid: uuid.UUID) -> DeletedRow | None:
    """The soft-deleted `entity` `guid` of `tenant`, locked FOR UPDATE; None when absent
    or not deleted."""
    level = LEVELS[entity]
    columns = ",\n       ".join(level.parent_columns) or "NULL AS no_parent"
    sql = _Q["lock_deleted_root"].format(table=level.table, parent_columns=columns)
    row = conn.exec_driver_sql(sql, {"tenant": tenant, "guid": guid}).first()
    if row is None:
        return None
    return DeletedRow(row[0], dict(zip(level.parent_columns, row[1:])))


def lock_ancestors(conn: Connection, *, tenant: uuid.UUID,
                   parents: dict[str, uuid.UUID | None]) -> dict[tuple[str, uuid.UUID], ParentRow]:
    """The given ancestors, locked FOR SHARE so a concurrent cascade delete of one of them
    waits for this transaction (or this one waits for it and then sees it deleted)."""
    def one(column):
        guid = parents.get(column)
        return [guid] if guid is not None else []

    return lock_parents(conn, tenant=tenant, project_guids=one("project_guid"),
                        component_guids=one("component_guid"),
                        assembly_guids=one("assembly_guid"))


def restore(conn: Connection, *, entity: Entity, tenant: uuid.UUID, guid: uuid.UUID,
            deleted_at: datetime) -> int:
    """Restore the (locked, deleted) row and exactly the descendants its cascade deleted
    (same deleted_at). Returns the rows affected."""
    level = LEVELS[entity]
    params = {"tenant": tenant, "guid": guid, "deleted_at": deleted_at}
    affected = conn.exec_driver_sql(_Q["restore_root"].format(table=level.table),
                                    params).rowcount
    for table in level.descendants:
        sql = _Q["restore_descendants"].format(table=table, parent_column=level.own_column)
        affected += conn.exec_driver_sql(sql, params).rowcount
    return affected
