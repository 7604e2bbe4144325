"""GET /api/v1/pieces, GET /api/v1/pieces/export and GET /api/v1/pieces/{piece_guid}."""
from __future__ import annotations

import csv
import io
import json
import uuid

from flask import Response, request
from flask.views import MethodView

from ... import db
from ...auth import READ_ROLES, require_roles
from ...catalogue import DETAIL_FIELDS
from ...domain import export, pieces
from ...errors import NotAcceptable
from ...web import admission, conditional, observability, prefer
from ...web.links import next_link
from ...web.extensions import Blueprint, ErrorSchema
from .. import examples
from .schemas import (PieceDetail, PieceDetailArgs, PieceExportArgs, PieceListArgs,
                      PieceResponse)

blp = Blueprint("pieces", __name__, url_prefix="/api/v1/pieces",
                description="Production pieces: list, export and detail.")

JSON = "application/json"


# The list's Prefer header, declared on the path (the path has only GET): an operation's own
# `parameters` doc would replace those its query schema declares.
_PREFER = {
    "in": "header", "name": "Prefer", "required": False,
    "schema": {"type": "string", "enum": ["count=exact", "count=planned"]},
    "description": "`count=exact`: the total the filters match, from the page's own "
                   "snapshot (costs a count of those rows). `count=planned`: the planner's "
                   "estimate (costs nothing on any size). Answered in `Content-Range`; "
                   "never counted unless asked.",
}


@blp.route("", parameters=[_PREFER])
class PieceList(MethodView):
    @blp.operation("listPieces")
    @blp.arguments(PieceListArgs(), location="query", as_kwargs=True)
    @blp.response(200, PieceResponse(many=True), content_type=JSON,
                  example=[examples.PIECE_RESPONSE],
                  headers={
                      "Link": {"description": 'Next page: `<url>; rel="next"`',
                               "schema": {"type": "string"}},
                      "Content-Range": {
                          "description": "With `Prefer: count=…`: `<first>-<last>/<total>` "
                                         "(0-based positions of the page's rows), `*/<total>` "
                                         "for an empty page or a cursor page under a planned "
                                         "count.",
                          "schema": {"type": "string", "example": "0-99/12345"}},
                      "Preference-Applied": {
                          "description": "The count preference honoured, e.g. `count=exact`.",
                          "schema": {"type": "string"}},
                  })
    @blp.alt_response(400, schema=ErrorSchema, description="Parent filters do not chain")
    @blp.alt_response(403, schema=ErrorSchema, description="company_guid not accessible")
    @blp.alt_response(404, schema=ErrorSchema, description="Parent filter not found")
    @require_roles(READ_ROLES)
    def get(self, *, principal, **query):
        """List pieces

        Active pieces only unless `include_inactive=true`, ordered by `created_at`, then
        `guid`. Page with `limit`/`offset`, or follow the `Link: rel="next"` cursor, which
        costs the same at any depth. The `ETag` comes from the change stamps of the page's
        rows: a matching `If-None-Match` is a `304`, answered without building the page.
        """
        count = prefer.preference("count")
        query = pieces.ListQuery(**query, count=count if count in pieces.COUNTS else None)
        held = request.if_none_match.contains_weak if request.if_none_match else None
        with db.reads() as reads:
            page = pieces.list_page(reads, principal, query, held)
        response = (conditional.not_modified(page.etag) if page.body is None
                    else _page_response(page, query.count))
        response.vary.add("Prefer")  # the same URL answers with and without a count
        return response


def _page_response(page: pieces.Page, count_mode: str | None) -> Response:
    """The 200 of a list page: its tag, its count when asked for, the next page's link."""
    response = Response(page.body, status=200, mimetype=JSON)
    if page.count:
        response.headers["Content-Range"] = _content_range(page.count)
        response.headers["Preference-Applied"] = f"count={count_mode}"
    if page.etag:
        response.set_etag(page.etag)
    elif page.count:  # tagged by the body's hash: the count must change the tag too
        response.set_etag(conditional.etag_for(
            page.body.encode() + response.headers["Content-Range"].encode()))
    if page.next_cursor:
        args = request.args.to_dict()
        args.pop("offset", None)
        args["cursor"] = page.next_cursor
        response.headers["Link"] = next_link(args)
    return response


def _content_range(count: pieces.Count) -> str:
    """PostgREST's `Content-Range` for a counted page: `0-99/12345`, or `*/12345` when the
    page is empty or its start is not known."""
    if count.rows and count.first is not None:
        return f"{count.first}-{count.first + count.rows - 1}/{count.total}"
    return f"*/{count.total}"


# The export's representations: media type in Accept -> (format, Content-Type sent).
EXPORT_TYPES = {
    "application/x-ndjson": ("ndjson", "application/x-ndjson"),
    "text/csv": ("csv", "text/csv; charset=utf-8"),
}


def _export_type() -> tuple[str, str]:
    """The export's format and Content-Type for the request's Accept: NDJSON when it names
    none (or any, `*/*`), CSV for `text/csv`; 406 when it allows neither."""
    accept = request.accept_mimetypes
    if not accept:
        return EXPORT_TYPES["application/x-ndjson"]
    best = accept.best_match(EXPORT_TYPES)
    if best is None:
        raise NotAcceptable("Not acceptable: the export is available as application/x-ndjson "
                            "(the default) or text/csv.")
    return EXPORT_TYPES[best]


def _csv_example() -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(DETAIL_FIELDS)
    writer.writerow(["" if value is None else str(value).lower() if isinstance(value, bool)
                     else value for value in examples.PIECE_DETAIL.values()])
    return out.getvalue()


_EXPORT_CONTENT = {
    "application/x-ndjson": {
        "schema": {"type": "string", "description": "One PieceDetail JSON object per line, "
                                                    "each line ending in \\n."},
        "example": json.dumps(examples.PIECE_DETAIL, separators=(",", ":")) + "\n",
    },
    "text/csv": {
        "schema": {"type": "string", "description": "A header record of the PieceDetail "
                                                    "field names, then one record per piece "
                                                    "(RFC 4180, CRLF line ends)."},
        "example": _csv_example(),
    },
}


@blp.route("/export")
class PieceExport(MethodView):
    @blp.operation("exportPieces")
    @blp.arguments(PieceExportArgs(), location="query", as_kwargs=True)
    @blp.doc(responses={"200": {
        "description": "Every matching piece with every PieceDetail field, streamed in list "
                       "order. Complete only when the chunked body ends properly: an export "
                       "cut by its time limit (PIECES_EXPORT_TIMEOUT_S) or a failure ends "
                       "without the terminating chunk.",
        "content": _EXPORT_CONTENT,
        "headers": {"Vary": {"description": "Accept", "schema": {"type": "string"}}},
    }})
    @blp.alt_response(400, schema=ErrorSchema, description="Parent filters do not chain")
    @blp.alt_response(403, schema=ErrorSchema, description="company_guid not accessible")
    @blp.alt_response(404, schema=ErrorSchema, description="Parent filter not found")
    @blp.alt_response(406, schema=ErrorSchema,
                      description="Accept allows neither application/x-ndjson nor text/csv")
    @blp.alt_response(503, schema=ErrorSchema, description="Database unavailable")
    @require_roles(READ_ROLES)
    def get(self, *, principal, **query):
        """Export pieces

        The list's filters (`project_guid`, `component_guid`, `assembly_guid`,
        `include_inactive`, `company_guid`) without paging: every matching piece, in list
        order (`created_at`, then `guid`), with every PieceDetail field (or those `fields`
        names). NDJSON by default,
        CSV with `Accept: text/csv`. Errors (400/403/404/406/503) come before the first
        byte, as JSON.
        """
        fmt, content_type = _export_type()
        body = export.start(principal, export.ExportQuery(**query), fmt,
                            log_context=observability.log_context())
        return Response(admission.hold(observability.carry_trace(body)), status=200,
                        content_type=content_type,
                        direct_passthrough=True, headers={"Vary": "Accept"})


@blp.route("/<uuid:piece_guid>")
class PieceItem(MethodView):
    @blp.operation("getPiece")
    @blp.arguments(PieceDetailArgs(), location="query", as_kwargs=True)
    @blp.response(200, PieceDetail, content_type=JSON, example=examples.PIECE_DETAIL)
    @blp.alt_response(403, schema=ErrorSchema, description="Another tenant's piece")
    @blp.alt_response(404, schema=ErrorSchema, description="No such piece (or soft-deleted)")
    @require_roles(READ_ROLES)
    def get(self, piece_guid: uuid.UUID, *, principal, include_inactive, fields=None):
        """Get one piece

        Every field of the list item plus `updated_at` and the manufacturing attributes, or
        just those `fields` names.
        """
        with db.reads() as reads:
            body = pieces.detail(reads, principal, piece_guid, include_inactive, fields)
        return Response(body, status=200, mimetype=JSON)
