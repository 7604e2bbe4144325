"""GET /api/v1/pieces and GET /api/v1/pieces/{piece_guid}."""
from __future__ import annotations

import base64
import binascii
import uuid
from datetime import datetime

from flask import Response, request, url_for
from flask.views import MethodView

from ... import access
from ...auth import READ_ROLES, require_roles
from ...dao import pieces
from ...extensions import Blueprint, ErrorSchema, abort
from .. import examples
from .schemas import PieceDetail, PieceDetailArgs, PieceListArgs, PieceResponse

blp = Blueprint("pieces", __name__, url_prefix="/api/v1/pieces",
                description="Production pieces: list and detail.")

JSON = "application/json"


def encode_cursor(last_key: str) -> str:
    """Opaque cursor for the row after `last_key` ("<created_at> <guid>")."""
    return base64.urlsafe_b64encode(last_key.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    """The (created_at, guid) keyset position in `cursor`; 422 when it is not one of ours."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created_at, guid = text.rsplit(" ", 1)
        return datetime.fromisoformat(created_at), uuid.UUID(guid)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        abort(422, "Validation error: cursor", errors={"cursor": ["Not a valid cursor."]})


def _check_parents(page: pieces.PiecePage, args: dict) -> None:
    """Raise the SPEC §4 error for the first parent filter that fails."""
    project, component, assembly = (
        args.get("project_guid"), args.get("component_guid"), args.get("assembly_guid")
    )
    if project and not page.project_found:
        abort(404, f"Project with GUID {project} not found or not accessible.")
    if component:
        if not page.component_found:
            abort(404, f"Component with GUID {component} not found or not accessible.")
        if project and page.component_project_guid != project:
            abort(400, f"Component {component} does not belong to project {project}.")
    if assembly:
        if not page.assembly_found:
            abort(404, f"Assembly with GUID {assembly} not found or not accessible.")
        if component and page.assembly_component_guid != component:
            abort(400, f"Assembly {assembly} does not belong to component {component}.")
        if project and page.assembly_project_guid != project:
            abort(400, f"Assembly {assembly} does not belong to project {project}.")


@blp.route("")
class PieceList(MethodView):
    @blp.arguments(PieceListArgs(), location="query", as_kwargs=True)
    @blp.response(200, PieceResponse(many=True), content_type=JSON,
                  example=[examples.PIECE_RESPONSE],
                  headers={"Link": {"description": 'Next page: `<url>; rel="next"`',
                                    "schema": {"type": "string"}}})
    @blp.alt_response(400, schema=ErrorSchema, description="Parent filters do not chain")
    @blp.alt_response(403, schema=ErrorSchema, description="company_guid not accessible")
    @blp.alt_response(404, schema=ErrorSchema, description="Parent filter not found")
    @require_roles(READ_ROLES)
    def get(self, *, principal, limit, offset, include_inactive, cursor=None,
            company_guid=None, project_guid=None, component_guid=None, assembly_guid=None):
        """List pieces

        Active pieces only unless `include_inactive=true`, ordered by `created_at`, then
        `guid`. Page with `limit`/`offset`, or follow the `Link: rel="next"` cursor, which
        costs the same at any depth.
        """
        tenant = access.list_tenant(principal, company_guid)
        after = decode_cursor(cursor) if cursor else None
        page = pieces.list_pieces(
            tenant=tenant, project_guid=project_guid, component_guid=component_guid,
            assembly_guid=assembly_guid, include_inactive=include_inactive,
            limit=limit, offset=offset, after=after,
        )
        _check_parents(page, {"project_guid": project_guid, "component_guid": component_guid,
                              "assembly_guid": assembly_guid})
        response = Response(page.body, status=200, mimetype=JSON)
        if page.row_count == limit and page.last_key:
            args = request.args.to_dict()
            args.pop("offset", None)
            args["cursor"] = encode_cursor(page.last_key)
            next_url = url_for("pieces.PieceList", _external=False, **args)
            response.headers["Link"] = f'<{next_url}>; rel="next"'
        return response


@blp.route("/<uuid:piece_guid>")
class PieceItem(MethodView):
    @blp.arguments(PieceDetailArgs(), location="query", as_kwargs=True)
    @blp.response(200, PieceDetail, content_type=JSON, example=examples.PIECE_DETAIL)
    @blp.alt_response(403, schema=ErrorSchema, description="Another tenant's piece")
    @blp.alt_response(404, schema=ErrorSchema, description="No such piece (or soft-deleted)")
    @require_roles(READ_ROLES)
    def get(self, piece_guid: uuid.UUID, *, principal, include_inactive):
        """Get one piece

        Every field of the list item plus `updated_at` and the manufacturing attributes.
        """
        tenant = principal.company_guid
        row = pieces.get_piece(tenant=tenant, guid=piece_guid, include_inactive=include_inactive)
        if row.body is None and access.reaches_owner(principal, row.owner_company_guid):
            # SystemAdmin reads any tenant's piece: read again in the owner's tenant.
            tenant = row.owner_company_guid
            row = pieces.get_piece(tenant=tenant, guid=piece_guid,
                                   include_inactive=include_inactive)
        if row.body is None:
            if row.owner_company_guid is not None and row.owner_company_guid != tenant:
                abort(403, "Access to this piece is forbidden.")
            abort(404, "Piece not found")
        if row.missing_fields:
            abort(500, f"Piece missing required fields: {row.missing_fields}")
        return Response(row.body, status=200, mimetype=JSON)
