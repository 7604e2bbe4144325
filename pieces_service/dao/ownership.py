"""Who owns a GUID, across tenants (through the narrow `pieces_guid_owners` function)."""
from __future__ import annotations

import uuid
from typing import Iterable, Literal

from sqlalchemy.engine import Connection

from . import load_queries

Entity = Literal["project", "component", "assembly", "piece"]

_Q = load_queries("ownership.sql")


def guid_owner(conn: Connection, *, entity: Entity, guid: uuid.UUID) -> uuid.UUID | None:
    """The tenant owning `guid`, or None when no such row exists."""
    return conn.exec_driver_sql(_Q["guid_owner"], {"entity": entity, "guid": guid}).scalar()


def foreign_guids(
    conn: Connection, *, entity: Entity, guids: Iterable[uuid.UUID], tenant: uuid.UUID
) -> set[uuid.UUID]:
    """The subset of `guids` that exist under another tenant than `tenant`."""
    rows = conn.exec_driver_sql(
        _Q["foreign_guids"], {"entity": entity, "guids": list(guids), "tenant": tenant}
    )
    return {row[0] for row in rows}
