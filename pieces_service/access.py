"""Who may act on which tenant: the business rules of SPEC §2 that are not SQL."""
from __future__ import annotations

import uuid

from .auth import Principal
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
