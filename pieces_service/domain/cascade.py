"""Soft delete and restore down Project -> Component -> Assembly -> Piece (SPEC §5), audited
in the same transaction."""
from __future__ import annotations

import uuid

from flask import current_app
from sqlalchemy.engine import Connection

from .. import db
from ..auth import Principal
from ..catalogue import LEVELS, Level
from ..dao import audit, hierarchy
from ..dao import sync as sync_dao
from ..errors import Conflict, NotFound
from .tenancy import acting_tenant


def soft_delete(conn: Connection, principal: Principal, level: Level, guid: uuid.UUID) -> int:
    """Delete the `level` row `guid` and its active descendants with one shared deleted_at,
    audited; return the rows affected. `NotFound` when absent, already deleted or another
    tenant's (for a caller who is not SystemAdmin)."""
    tenant = acting_tenant(conn, principal, level, guid)
    _allow_cascade_time(conn)
    affected = hierarchy.soft_delete(conn, level=level, tenant=tenant, guid=guid)
    if affected is None:
        raise NotFound(f"{level.title} not found or forbidden")
    audit.record(conn, tenant=tenant, entity_type=level.name, entity_guid=guid,
                 action="delete", actor=principal.subject, rows_affected=affected)
    return affected


def restore(conn: Connection, principal: Principal, level: Level, guid: uuid.UUID) -> int:
    """Restore the `level` row `guid` and exactly the descendants its cascade deleted (same
    deleted_at), audited; return the rows affected. `NotFound` when absent, not deleted or
    another tenant's; `Conflict` naming the highest deleted ancestor when one is deleted."""
    tenant = acting_tenant(conn, principal, level, guid)
    row = hierarchy.lock_deleted(conn, level=level, tenant=tenant, guid=guid)
    if row is None:
        raise NotFound(f"{level.title} not found or forbidden")
    # FOR SHARE: a concurrent cascade delete of an ancestor waits for this transaction (or
    # this one waits for it and then sees the ancestor deleted).
    ancestors = sync_dao.lock_parents(conn, tenant=tenant, guids={
        name: [parent] for name, parent in row.parents.items() if parent is not None})
    for name, parent_guid in row.parents.items():  # top-down: name the highest
        if parent_guid is None:
            continue
        parent = ancestors.get((name, parent_guid))
        if parent is None or not parent.is_active:
            raise Conflict(f"Cannot restore {level.name} {guid}: its {name} {parent_guid} is "
                           f"deleted. Restore the {LEVELS[name].title.lower()} first.")
    _allow_cascade_time(conn)
    affected = hierarchy.restore(conn, level=level, tenant=tenant, guid=guid,
                                 deleted_at=row.deleted_at)
    audit.record(conn, tenant=tenant, entity_type=level.name, entity_guid=guid,
                 action="restore", actor=principal.subject, rows_affected=affected)
    return affected


def _allow_cascade_time(conn: Connection) -> None:
    """A cascade writes every row below the entity (100,000 pieces take seconds): it runs
    under PIECES_CASCADE_TIMEOUT_MS instead of the per-request statement timeout."""
    db.set_statement_timeout(conn, current_app.config["PIECES"].cascade_timeout_ms)
