"""The audit trail of deletes and restores."""
from __future__ import annotations

import uuid
from typing import Literal

from sqlalchemy.engine import Connection

from . import load_queries, prepared_for

_Q = load_queries("audit.sql")


def record(conn: Connection, *, tenant: uuid.UUID, entity_type: str, entity_guid: uuid.UUID,
           action: Literal["delete", "restore"], actor: str, rows_affected: int) -> None:
    """Write one audit row in the caller's transaction."""
    conn.exec_driver_sql(_Q["record"], {
        "tenant": tenant, "entity_type": entity_type, "entity_guid": entity_guid,
        "action": action, "actor": actor, "rows_affected": rows_affected,
    })


def list_entries(reads, *, tenant: uuid.UUID, entity_guid: uuid.UUID | None,
                 limit: int, offset: int) -> str:
    """A page of `tenant`'s audit rows, newest first, as JSON text (`reads`: a
    `db.OneMessageReads`, one round trip)."""
    params = {"tenant": tenant, "entity_guid": entity_guid, "limit": limit, "offset": offset}
    return reads.fetch_one(tenant, prepared_for(_Q["list_entries"], params), params)[0]
