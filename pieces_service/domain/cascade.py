"""Soft delete and restore down Project -> Component -> Assembly -> Piece (SPEC §5), audited
in the same transaction, on the condition of the request's `If-Match` when it has one.

The order of the checks: the caller's role (the view, `403`), then absent, not in the
right state or another tenant's (`404`: no tag is compared for a row the caller may not
see, so a `412` never tells that a GUID exists), then `If-Match` (`412`), then restore's
parent rule (`409`), then the write. RFC 9110 §13.2.1: a precondition is evaluated before
the method's own processing, whose outcome the `409` is; and a client whose copy is stale
learns that first. The precondition is judged after the row is locked, on its
representation read in the same transaction, so a write that committed after the client's
GET is seen.
"""
from __future__ import annotations

import uuid
from typing import Callable

from flask import current_app
from sqlalchemy.engine import Connection

from .. import db
from ..auth import Principal
from ..catalogue import LEVELS, PIECE, Level
from ..dao import audit, hierarchy
from ..dao import pieces as pieces_dao
from ..dao import sync as sync_dao
from ..errors import Conflict, NotFound, PreconditionFailed
from .tenancy import acting_tenant

# The request's If-Match as `web.conditional.if_match` returns it: given a function that
# reads the current representation's body, whether the condition holds.
IfMatch = Callable[[Callable[[], str | None]], bool]


def soft_delete(conn: Connection, principal: Principal, level: Level, guid: uuid.UUID,
                if_match: IfMatch | None = None) -> int:
    """Delete the `level` row `guid` and its active descendants with one shared deleted_at,
    audited; return the rows affected. `NotFound` when absent, already deleted or another
    tenant's (for a caller who is not SystemAdmin); `PreconditionFailed` when `if_match`
    does not hold for the row as it is."""
    tenant = acting_tenant(conn, principal, level, guid)
    if if_match is not None:
        if not hierarchy.lock_active(conn, level=level, tenant=tenant, guid=guid):
            raise _not_found(level)
        _check(if_match, conn, level, tenant, guid, deleted=False)
    _allow_cascade_time(conn)
    affected = hierarchy.soft_delete(conn, level=level, tenant=tenant, guid=guid)
    if affected is None:
        raise _not_found(level)
    audit.record(conn, tenant=tenant, entity_type=level.name, entity_guid=guid,
                 action="delete", actor=principal.subject, rows_affected=affected)
    return affected


def restore(conn: Connection, principal: Principal, level: Level, guid: uuid.UUID,
            if_match: IfMatch | None = None) -> int:
    """Restore the `level` row `guid` and exactly the descendants its cascade deleted (same
    deleted_at), audited; return the rows affected. `NotFound` when absent, not deleted or
    another tenant's; `PreconditionFailed` when `if_match` does not hold for the deleted row
    as it is; `Conflict` naming the highest deleted ancestor when one is deleted."""
    tenant = acting_tenant(conn, principal, level, guid)
    row = hierarchy.lock_deleted(conn, level=level, tenant=tenant, guid=guid)
    if row is None:
        raise _not_found(level)
    if if_match is not None:
        _check(if_match, conn, level, tenant, guid, deleted=True)
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


def _not_found(level: Level) -> NotFound:
    return NotFound(f"{level.title} not found or forbidden")


def _check(if_match: IfMatch, conn: Connection, level: Level, tenant: uuid.UUID,
           guid: uuid.UUID, *, deleted: bool) -> None:
    """`PreconditionFailed` unless `if_match` holds for the locked row's representation: a
    piece's is its detail as `GET /api/v1/pieces/{guid}` serves it (with
    `include_inactive=true` once deleted), read in this transaction; the other levels have
    no GET, hence no representation: only `*` holds for them."""
    def body() -> str | None:
        if level is not PIECE:
            return None
        return pieces_dao.get_piece(db.TransactionReads(conn), tenant=tenant, guid=guid,
                                    include_inactive=deleted).body

    if not if_match(body):
        if level is PIECE:
            again = "?include_inactive=true" if deleted else ""
            raise PreconditionFailed(
                f"If-Match does not match piece {guid} as it is now; nothing was changed. "
                f"Its current ETag: GET /api/v1/pieces/{guid}{again}.")
        raise PreconditionFailed(
            f"If-Match does not match: a {level.name} has no readable representation, so "
            f"only `If-Match: *` can; nothing was changed.")


def _allow_cascade_time(conn: Connection) -> None:
    """A cascade writes every row below the entity (100,000 pieces take seconds): it runs
    under PIECES_CASCADE_TIMEOUT_MS instead of the per-request statement timeout."""
    db.set_statement_timeout(conn, current_app.config["PIECES"].cascade_timeout_ms)
