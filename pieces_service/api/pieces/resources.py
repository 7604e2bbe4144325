"""GET /api/v1/pieces and GET /api/v1/pieces/{piece_guid}."""
from __future__ import annotations

import uuid

from flask import Response, request, url_for
from flask.views import MethodView

from ... import db
from ...auth import READ_ROLES, require_roles
from ...domain import pieces
from ...web.extensions import Blueprint, ErrorSchema
from .. import examples
from .schemas import PieceDetail, PieceDetailArgs, PieceListArgs, PieceResponse

blp = Blueprint("pieces", __name__, url_prefix="/api/v1/pieces",
                description="Production pieces: list and detail.")

JSON = "application/json"


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
    def get(self, *, principal, **query):
        """List pieces

        Active pieces only unless `include_inactive=true`, ordered by `created_at`, then
        `guid`. Page with `limit`/`offset`, or follow the `Link: rel="next"` cursor, which
        costs the same at any depth.
        """
        with db.reads() as reads:
            page = pieces.list_page(reads, principal, pieces.ListQuery(**query))
        response = Response(page.body, status=200, mimetype=JSON)
        if page.next_cursor:
            args = request.args.to_dict()
            args.pop("offset", None)
            args["cursor"] = page.next_cursor
            response.headers["Link"] = f'<{url_for("pieces.PieceList", **args)}>; rel="next"'
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
        with db.reads() as reads:
            body = pieces.detail(reads, principal, piece_guid, include_inactive)
        return Response(body, status=200, mimetype=JSON)
