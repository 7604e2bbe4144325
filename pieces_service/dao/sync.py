"""Bulk upserts for sync: one statement per group of a batch, items passed as one JSON array."""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Iterable, Mapping

import orjson
from psycopg2.errorcodes import INSUFFICIENT_PRIVILEGE
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from ..catalogue import LEVELS, Level
from . import load_queries

_Q = load_queries("sync.sql")
# The levels that have rows below them: those lock_parents reads.
PARENT_LEVELS = tuple(name for name, level in LEVELS.items() if level.descendants)


@dataclass(frozen=True)
class ParentRow:
    """A locked parent: its level, guid, its own chain of parents, and whether it is active."""

    level: str
    guid: uuid.UUID
    project_guid: uuid.UUID
    component_guid: uuid.UUID | None
    assembly_guid: uuid.UUID | None
    is_active: bool
    deleted_at: datetime | None


def lock_parents(conn: Connection, *, tenant: uuid.UUID,
                 guids: Mapping[str, Iterable[uuid.UUID]]) -> dict[tuple[str, uuid.UUID],
                                                                    ParentRow]:
    """The named parents ({level name: guids}) that exist in `tenant`, keyed by
    (level name, guid), locked FOR SHARE."""
    rows = conn.exec_driver_sql(_Q["lock_parents"], {
        "tenant": tenant,
        **{f"{name}_guids": sorted(set(guids.get(name, ()))) for name in PARENT_LEVELS},
    })
    return {(row.level, row.guid): ParentRow(*row) for row in rows}


def _items_json(items: list[dict]) -> str:
    """The items as the JSON array json_populate_recordset reads, without their null values:
    an absent key populates NULL just as an explicit null does, and PostgreSQL has less text
    to parse (BENCHMARKS.md, lever 10)."""
    return orjson.dumps(
        [{key: value for key, value in item.items() if value is not None} for item in items]
    ).decode()


class ForeignRowRefused(Exception):
    """Row-level security refused the upsert: an item's guid is another tenant's row."""


def upsert(conn: Connection, *, level: Level, tenant: uuid.UUID, items: list[dict],
           by_guid: bool) -> tuple[set[uuid.UUID], set[uuid.UUID]]:
    """Upsert `items` (all of `tenant`; all with a guid when `by_guid`, none otherwise) into
    `level`'s table in one statement; return the guids (inserted, updated). Items that
    matched a row and changed nothing are in neither.

    By guid, the statement runs after a savepoint sent in the same message; when row-level
    security refuses it because a guid belongs to another tenant (also one inserted by a
    transaction that committed while this one waited for it), the transaction is rolled
    back to the savepoint, still usable, and `ForeignRowRefused` is raised. (PostgreSQL 15
    refuses so; 16 skips such a row, which then is in neither set.)
    """
    name = f"upsert_{level.plural}_by_{'guid' if by_guid else 'natural_key'}"
    params = {"tenant": tenant, "items": _items_json(items)}
    if not by_guid:
        return _written(conn.exec_driver_sql(_Q[name], params))
    try:
        return _written(conn.exec_driver_sql(f"{_Q['savepoint_upsert']};\n{_Q[name]}", params))
    except DBAPIError as exc:
        if getattr(exc.orig, "pgcode", None) != INSUFFICIENT_PRIVILEGE:
            raise
        conn.exec_driver_sql(_Q["rollback_upsert"])
        raise ForeignRowRefused() from exc


def _written(rows) -> tuple[set[uuid.UUID], set[uuid.UUID]]:
    inserted: set[uuid.UUID] = set()
    updated: set[uuid.UUID] = set()
    for guid, was_inserted in rows:
        (inserted if was_inserted else updated).add(guid)
    return inserted, updated


def existing_active(conn: Connection, *, level: Level, tenant: uuid.UUID,
                    items: list[tuple[int, dict]]) -> dict[int, bool]:
    """For the (index, item) pairs: {index: is_active} of the stored row each would update
    (by guid, else by natural key), locked FOR UPDATE; items matching no row are absent."""
    keys = [{"idx": index, "guid": item.get("guid"),
             **{name: item.get(name) for name in level.natural_key}}
            for index, item in items]
    rows = conn.exec_driver_sql(_Q[f"existing_{level.plural}"],
                                {"tenant": tenant, "items": orjson.dumps(keys).decode()})
    return {index: is_active for index, is_active in rows}
