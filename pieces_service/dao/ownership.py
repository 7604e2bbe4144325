"""Who owns a GUID, across tenants (through the narrow `pieces_guid_owners` function)."""
from __future__ import annotations

import uuid
from typing import Iterable

from sqlalchemy.engine import Connection

from . import load_queries

_Q = load_queries("ownership.sql")


def guid_owner(conn: Connection, *, level: str, guid: uuid.UUID) -> uuid.UUID | None:
    """The tenant owning the `level` row `guid`, or None when no such row exists."""
    return conn.exec_driver_sql(_Q["guid_owner"], {"level": level, "guid": guid}).scalar()


def foreign_guids(conn: Connection, *, level: str, guids: Iterable[uuid.UUID],
                  tenant: uuid.UUID) -> set[uuid.UUID]:
    """The subset of `guids` (of `level` rows) that exist under another tenant than `tenant`."""
    rows = conn.exec_driver_sql(
        _Q["foreign_guids"], {"level": level, "guids": list(guids), "tenant": tenant})
    return {row[0] for row in rows}
