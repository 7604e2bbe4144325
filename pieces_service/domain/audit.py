"""Reading the audit trail: tenant-scoped like every list."""
from __future__ import annotations

import uuid

from .. import access
from ..auth import Principal
from ..dao import audit as audit_dao
from ..db import OneMessageReads


def entries(reads: OneMessageReads, principal: Principal, *, company_guid: uuid.UUID | None,
            entity_guid: uuid.UUID | None, limit: int, offset: int) -> str:
    """A page of the trail of the tenant `principal` may list (`company_guid`: SystemAdmin's
    choice), newest first, as JSON."""
    tenant = access.list_tenant(principal, company_guid)
    return audit_dao.list_entries(reads, tenant=tenant, entity_guid=entity_guid, limit=limit,
                                  offset=offset)
