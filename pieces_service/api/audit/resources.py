"""GET /api/v1/audit: the tenant's delete/restore trail, newest first."""
from __future__ import annotations

from flask import Response
from flask.views import MethodView

from ... import db
from ...auth import AUDIT_ROLES, require_roles
from ...domain import audit
from ...web.extensions import Blueprint, ErrorSchema
from .. import examples
from .schemas import AuditEntry, AuditQueryArgs

blp = Blueprint("audit", __name__, url_prefix="/api/v1/audit",
                description="Audit trail of deletes and restores.")


@blp.route("")
class AuditList(MethodView):
    @blp.operation("listAuditEntries")
    @blp.arguments(AuditQueryArgs(), location="query", as_kwargs=True)
    @blp.response(200, AuditEntry(many=True), content_type="application/json",
                  example=[examples.AUDIT_ENTRY])
    @blp.alt_response(403, schema=ErrorSchema, description="Role or company not accessible")
    @require_roles(AUDIT_ROLES)
    def get(self, *, principal, limit, offset, entity_guid=None, company_guid=None):
        """List audit entries

        SystemAdmin and CompanyAdmin only; tenant-scoped like every list (`company_guid`
        for SystemAdmin). Newest first.
        """
        with db.reads() as reads:
            body = audit.entries(reads, principal, company_guid=company_guid,
                                 entity_guid=entity_guid, limit=limit, offset=offset)
        return Response(body, status=200, mimetype="application/json")
