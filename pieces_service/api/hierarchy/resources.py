"""Soft delete and restore, cascading down Project -> Component -> Assembly -> Piece.

DELETE /api/v1/{projects|components|assemblies|pieces}/{guid}
POST   /api/v1/{projects|components|assemblies|pieces}/{guid}/restore
"""
from __future__ import annotations

from flask import Response
from flask.views import MethodView

from ... import db
from ...auth import DELETE_RESTORE_ROLES, require_roles
from ...catalogue import LEVELS, PIECE, Level
from ...domain import cascade
from ...web import conditional, observability
from ...web.extensions import Blueprint, ErrorSchema
from .. import examples

blp = Blueprint("hierarchy", __name__, url_prefix="/api/v1",
                description="Soft delete and restore with cascade, audited.")

_PRECONDITION_FAILED = "If-Match does not match the current representation; nothing changed"


def _if_match_parameter(level: Level, action: str) -> dict:
    """The OpenAPI description of the `If-Match` header on `level`'s delete or restore."""
    if level is PIECE:
        query = "?include_inactive=true" if action == "restore" else ""
        description = (
            f"{action.title()} only if the piece is still as the client read it: the `ETag` "
            f"of `GET /api/v1/pieces/{{piece_guid}}{query}`, or `*` (the piece exists). Of "
            f"several tags any may match; a weak tag (`W/`) never does (strong comparison).")
        example = examples.PIECE_ETAG
    else:
        description = (
            f"Only `*` matches (the {level.name} exists): {level.a_name} has no GET, hence "
            f"no representation and no tag, so any other value is a `412`.")
        example = "*"
    return {"in": "header", "name": "If-Match", "required": False,
            "schema": {"type": "string"}, "example": example,
            "description": description + " Judged once the row is locked; on a mismatch "
                                         "nothing changes. Without it: no condition."}


def _register(level: Level) -> None:
    param = level.guid_column  # same name as GET's path parameter, one OpenAPI path each
    below = ", ".join(b.plural for b in level.descendants) or "nothing below it"
    delete_text = (
        f"Soft-delete {level.a_name}\n\nSets is_active=false and deleted_at=now() on the "
        f"{level.name} and its active descendants ({below}) in one transaction with one "
        f"shared deleted_at; audited. 404 `{level.title} not found or forbidden`. With "
        f"`If-Match`, only when it matches (checked after the 404), else 412 and nothing "
        f"changes."
    )
    restore_text = (
        f"Restore {level.a_name}\n\nBrings back the {level.name} and exactly the descendants "
        f"deleted by its cascade (same deleted_at); audited. 409 when a parent is deleted. "
        f"With `If-Match`, only when it matches (checked after the 404, before the 409), "
        f"else 412 and nothing changes."
    )

    @blp.route(f"/{level.plural}/<uuid:{param}>", endpoint=f"{level.name}_item")
    class ItemView(MethodView):
        @blp.operation(f"delete{level.title}", delete_text)
        @blp.doc(parameters=[_if_match_parameter(level, "delete")])
        @blp.response(204)
        @blp.alt_response(403, schema=ErrorSchema, description="Role may not delete")
        @blp.alt_response(404, schema=ErrorSchema,
                          description="Absent, already deleted, or another tenant's")
        @blp.alt_response(412, schema=ErrorSchema, description=_PRECONDITION_FAILED,
                          example=examples.PRECONDITION_FAILED)
        @require_roles(DELETE_RESTORE_ROLES)
        def delete(self, *, principal, **path):
            if_match = conditional.if_match()
            with db.transaction(principal.company_guid, readonly=False) as conn:
                affected = cascade.soft_delete(conn, principal, level, path[param], if_match)
            observability.record_cascade_rows(level.name, "delete", affected)
            return Response(status=204)

    @blp.route(f"/{level.plural}/<uuid:{param}>/restore", endpoint=f"{level.name}_restore")
    class RestoreView(MethodView):
        @blp.operation(f"restore{level.title}", restore_text)
        @blp.doc(parameters=[_if_match_parameter(level, "restore")])
        @blp.response(204)
        @blp.alt_response(403, schema=ErrorSchema, description="Role may not restore")
        @blp.alt_response(404, schema=ErrorSchema,
                          description="Absent, not deleted, or another tenant's")
        @blp.alt_response(409, schema=ErrorSchema, description="A parent is deleted",
                          example=examples.RESTORE_CONFLICT)
        @blp.alt_response(412, schema=ErrorSchema, description=_PRECONDITION_FAILED,
                          example=examples.PRECONDITION_FAILED)
        @require_roles(DELETE_RESTORE_ROLES)
        def post(self, *, principal, **path):
            if_match = conditional.if_match()
            with db.transaction(principal.company_guid, readonly=False) as conn:
                affected = cascade.restore(conn, principal, level, path[param], if_match)
            observability.record_cascade_rows(level.name, "restore", affected)
            return Response(status=204)

    ItemView.__name__ = f"{level.title}Item"
    RestoreView.__name__ = f"{level.title}Restore"


for _level in LEVELS.values():
    _register(_level)
