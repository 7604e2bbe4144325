"""Which tenant a request on one GUID acts in (the owner probe, for SystemAdmin)."""
from __future__ import annotations

import uuid

from sqlalchemy.engine import Connection

from .. import access, db
from ..auth import Principal
from ..catalogue import Level
from ..dao import ownership


def acting_tenant(conn: Connection, principal: Principal, level: Level,
                  guid: uuid.UUID) -> uuid.UUID:
    """The tenant a write on `level` row `guid` acts in: the caller's own; for SystemAdmin,
    the tenant owning the GUID, to which the transaction's RLS tenant is switched."""
    if not principal.is_system_admin:
        return principal.company_guid
    owner = ownership.guid_owner(conn, level=level.name, guid=guid)
    if access.reaches_owner(principal, owner):
        db.set_tenant(conn, owner)
        return owner
    return principal.company_guid
