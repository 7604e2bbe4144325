"""Soft delete and restore, cascading down Project -> Component -> Assembly -> Piece.

DELETE /api/v1/{projects|components|assemblies|pieces}/{guid}
POST   /api/v1/{projects|components|assemblies|pieces}/{guid}/restore
"""
from __future__ import annotations

import uuid

from flask import Response
from flask.views import MethodView

from ... import access, db, observability
from ...auth import DELETE_RESTORE_ROLES, Principal, require_roles
from ...dao import audit, hierarchy
from ...extensions import Blueprint, ErrorSchema, abort
from .. import examples

blp = Blueprint("hierarchy", __name__, url_prefix="/api/v1",
                description="Soft delete and restore with cascade, audited.")

# entity -> (URL segment, name in messages)
ENTITIES = {
    "project": ("projects", "Project"),
    "component": ("components", "Component"),
    "assembly": ("assemblies", "Assembly"),
    "piece": ("pieces", "Piece"),
}
_KIND_OF_COLUMN = {"project_guid": "project", "component_guid": "component",
                   "assembly_guid": "assembly"}


def soft_delete_entity(principal: Principal, entity: str, guid: uuid.UUID) -> int:
    """Delete `entity` `guid` and its active descendants, audited, in one transaction."""
    with db.transaction(principal.company_guid, readonly=False) as conn:
        tenant = access.acting_tenant(conn, principal, entity, guid)
        affected = hierarchy.soft_delete(conn, entity=entity, tenant=tenant, guid=guid)
        if affected is None:
            abort(404, f"{ENTITIES[entity][1]} not found or forbidden")
        audit.record(conn, tenant=tenant, entity_type=entity, entity_guid=guid,
                     action="delete", actor=principal.subject, rows_affected=affected)
    observability.record_cascade_rows(entity, "delete", affected)
    return affected


def restore_entity(principal: Principal, entity: str, guid: uuid.UUID) -> int:
    """Restore `entity` `guid` and the descendants its cascade deleted, audited; 409 when
    an ancestor is itself deleted."""
    name = ENTITIES[entity][1]
    with db.transaction(principal.company_guid, readonly=False) as conn:
        tenant = access.acting_tenant(conn, principal, entity, guid)
        row = hierarchy.lock_deleted(conn, entity=entity, tenant=tenant, guid=guid)
        if row is None:
            abort(404, f"{name} not found or forbidden")
        ancestors = hierarchy.lock_ancestors(conn, tenant=tenant, parents=row.parents)
        for column, parent_guid in row.parents.items():  # top-down: name the highest
            if parent_guid is None:
                continue
            kind = _KIND_OF_COLUMN[column]
            parent = ancestors.get((kind, parent_guid))
            if parent is None or not parent.is_active:
                parent_name = ENTITIES[kind][1]
                abort(409, f"Cannot restore {name.lower()} {guid}: its {kind} {parent_guid} "
                           f"is deleted. Restore the {parent_name.lower()} first.")
        affected = hierarchy.restore(conn, entity=entity, tenant=tenant, guid=guid,
                                     deleted_at=row.deleted_at)
        audit.record(conn, tenant=tenant, entity_type=entity, entity_guid=guid,
                     action="restore", actor=principal.subject, rows_affected=affected)
    observability.record_cascade_rows(entity, "restore", affected)
    return affected


def _register(entity: str) -> None:
    segment, name = ENTITIES[entity]
    param = f"{entity}_guid"  # same name as GET's path parameter, one OpenAPI path each

    @blp.route(f"/{segment}/<uuid:{param}>", endpoint=f"{entity}_item")
    class ItemView(MethodView):
        @blp.response(204)
        @blp.alt_response(403, schema=ErrorSchema, description="Role may not delete")
        @blp.alt_response(404, schema=ErrorSchema,
                          description="Absent, already deleted, or another tenant's")
        @require_roles(DELETE_RESTORE_ROLES)
        def delete(self, *, principal, **path):
            soft_delete_entity(principal, entity, path[param])
            return Response(status=204)

    @blp.route(f"/{segment}/<uuid:{param}>/restore", endpoint=f"{entity}_restore")
    class RestoreView(MethodView):
        @blp.response(204)
        @blp.alt_response(403, schema=ErrorSchema, description="Role may not restore")
        @blp.alt_response(404, schema=ErrorSchema,
                          description="Absent, not deleted, or another tenant's")
        @blp.alt_response(409, schema=ErrorSchema, description="A parent is deleted",
                          example=examples.RESTORE_CONFLICT)
        @require_roles(DELETE_RESTORE_ROLES)
        def post(self, *, principal, **path):
            restore_entity(principal, entity, path[param])
            return Response(status=204)

    descendants = ", ".join(hierarchy.LEVELS[entity].descendants) or "nothing below it"
    ItemView.delete.__doc__ = (
        f"Soft-delete a {entity}\n\nSets is_active=false and deleted_at=now() on the "
        f"{entity} and its active descendants ({descendants}) in one transaction with one "
        f"shared deleted_at; audited. 404 `{name} not found or forbidden`."
    )
    RestoreView.post.__doc__ = (
        f"Restore a {entity}\n\nBrings back the {entity} and exactly the descendants deleted "
        f"by its cascade (same deleted_at); audited. 409 when a parent is deleted."
    )
    ItemView.__name__ = f"{name}Item"
    RestoreView.__name__ = f"{name}Restore"


for _entity in ENTITIES:
    _register(_entity)
