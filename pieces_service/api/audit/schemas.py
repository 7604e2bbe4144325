"""Query arguments and response shape of the audit trail."""
from __future__ import annotations

import marshmallow as ma

from ...catalogue import LEVELS
from ...web.extensions import Schema
from ..pieces.schemas import MAX_OFFSET


class AuditQueryArgs(Schema):
    """Query arguments of GET /api/v1/audit."""

    entity_guid = ma.fields.UUID(metadata={"description": "Only entries for this entity."})
    company_guid = ma.fields.UUID(
        metadata={"description": "Tenant to read (SystemAdmin: any; others: their own)."}
    )
    limit = ma.fields.Integer(load_default=100, validate=ma.validate.Range(min=1, max=1000))
    offset = ma.fields.Integer(load_default=0, validate=ma.validate.Range(min=0, max=MAX_OFFSET))


class AuditEntry(Schema):
    """One delete or restore."""

    id = ma.fields.Integer(required=True)
    entity_type = ma.fields.String(
        required=True, validate=ma.validate.OneOf(list(LEVELS))
    )
    entity_guid = ma.fields.UUID(required=True)
    action = ma.fields.String(required=True, validate=ma.validate.OneOf(["delete", "restore"]))
    actor = ma.fields.String(required=True, metadata={"description": "The token's `sub`"})
    company_guid = ma.fields.UUID(required=True)
    rows_affected = ma.fields.Integer(required=True)
    occurred_at = ma.fields.DateTime(required=True)
