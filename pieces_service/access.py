"""Who may act on which tenant: the business rules of SPEC §2 that are not SQL."""
from __future__ import annotations

import uuid

from sqlalchemy.engine import Connection

from . import db
from .auth import Principal
from .dao import ownership
from .extensions import abort


def list_tenant(principal: Principal, company_guid: uuid.UUID | None) -> uuid.UUID:
    """The tenant a list or audit query runs in.

    Anyone may name their own company; only SystemAdmin may name another one. SystemAdmin
    without `company_guid` lists its own tenant.
    """
    if company_guid is None or company_guid == principal.company_guid:
        return principal.company_guid
    if principal.is_system_admin:
        return company_guid
    abort(403, "User does not have access to the specified company.")


def may_write_tenant(principal: Principal, company_guid: uuid.UUID) -> bool:
    """Whether sync may write rows of `company_guid`."""
    return principal.is_system_admin or company_guid == principal.company_guid


def reaches_owner(principal: Principal, owner: uuid.UUID | None) -> bool:
    """Whether a GUID owned by `owner` (None: no such GUID), not visible in the caller's own
    tenant, is to be acted on in the owner's tenant: only SystemAdmin reaches other tenants."""
    return principal.is_system_admin and owner is not None and owner != principal.company_guid


def acting_tenant(conn: Connection, principal: Principal, entity: ownership.Entity,
                  guid: uuid.UUID) -> uuid.UUID:
    """The tenant a request on one GUID acts in: the caller's own; for SystemAdmin, the
    tenant owning the GUID, to which the transaction's RLS tenant is switched."""
    tenant = principal.company_guid
    if principal.is_system_admin:
        owner = ownership.guid_owner(conn, entity=entity, guid=guid)
        if reaches_owner(principal, owner):
            tenant = owner
            db.set_tenant(conn, tenant)
    return tenant
