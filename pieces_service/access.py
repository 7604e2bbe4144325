"""Who may act on which tenant: the rules of SPEC §2 that are not SQL. Pure: no I/O."""
from __future__ import annotations

import uuid

from .auth import Principal
from .errors import Forbidden

COMPANY_FORBIDDEN = "User does not have access to the specified company."


def list_tenant(principal: Principal, company_guid: uuid.UUID | None) -> uuid.UUID:
    """The tenant a list or audit query runs in.

    Anyone may name their own company; only SystemAdmin may name another one. SystemAdmin
    without `company_guid` lists its own tenant.
    """
    if company_guid is None or company_guid == principal.company_guid:
        return principal.company_guid
    if principal.is_system_admin:
        return company_guid
    raise Forbidden(COMPANY_FORBIDDEN)


def may_write_tenant(principal: Principal, company_guid: uuid.UUID) -> bool:
    """Whether sync may write rows of `company_guid`."""
    return principal.is_system_admin or company_guid == principal.company_guid


def reaches_owner(principal: Principal, owner: uuid.UUID | None) -> bool:
    """Whether a GUID owned by `owner` (None: no such GUID), not visible in the caller's own
    tenant, is to be acted on in the owner's tenant: only SystemAdmin reaches other tenants."""
    return principal.is_system_admin and owner is not None and owner != principal.company_guid
