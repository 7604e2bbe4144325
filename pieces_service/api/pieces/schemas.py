"""Query arguments of the pieces endpoints, and the response shapes they document.

Responses are built as JSON by PostgreSQL; the response schemas here document them in
OpenAPI (derived from the catalogue) and are never used to dump rows.
"""
from __future__ import annotations

import marshmallow as ma

from ...catalogue import DETAIL_FIELDS, LIST_FIELDS, REQUIRED_DETAIL_FIELDS, piece_column
from ...web.extensions import Schema
from ..fields import FieldSet, Text

MAX_OFFSET = 2**63 - 1


def _fields(choices, what: str) -> FieldSet:
    return FieldSet(choices, metadata={
        "description": f"Comma-separated: only these fields of each {what}, in the "
                       f"representation's order (the SQL reads only those columns). Any of: "
                       f"{', '.join(choices)}. Default: all. An unknown name is a 422.",
        "example": "guid,piece_id,barcode"})

FIELD_OF_TYPE = {
    "uuid": ma.fields.UUID,
    "text": ma.fields.String,
    "integer": ma.fields.Integer,
    "boolean": ma.fields.Boolean,
    "timestamptz": ma.fields.DateTime,
}


class PieceFilterArgs(Schema):
    """The list's filters (SPEC §4), shared by the list and the export."""

    project_guid = ma.fields.UUID(metadata={"description": "Only pieces of this project."})
    component_guid = ma.fields.UUID(metadata={"description": "Only pieces of this component."})
    assembly_guid = ma.fields.UUID(metadata={"description": "Only pieces of this assembly."})
    company_guid = ma.fields.UUID(
        metadata={"description": "Tenant to read (SystemAdmin: any; others: their own)."}
    )
    include_inactive = ma.fields.Boolean(
        load_default=False, metadata={"description": "Include soft-deleted pieces."}
    )


class PieceListArgs(PieceFilterArgs):
    """Query arguments of GET /api/v1/pieces."""

    barcode = Text(metadata={"description": "Only the pieces with exactly this barcode (a "
                                            "scanner's lookup; combines with the others)."})
    piece_id = Text(metadata={"description": "Only the pieces with exactly this piece_id."})

    limit = ma.fields.Integer(
        load_default=100, validate=ma.validate.Range(min=1, max=1000),
        metadata={"description": "Page size, 1–1000."},
    )
    offset = ma.fields.Integer(
        # PostgreSQL's OFFSET is a bigint; anything larger is a 422, not a database error.
        load_default=0, validate=ma.validate.Range(min=0, max=MAX_OFFSET),
        metadata={"description": "Rows to skip (prefer `cursor` for deep pages)."},
    )
    cursor = ma.fields.String(
        validate=ma.validate.Length(min=1, max=200),
        metadata={"description": "Opaque keyset cursor from a previous page's "
                                 "`Link: <…>; rel=\"next\"` header."},
    )
    fields = _fields(LIST_FIELDS, "piece")


class PieceDetailArgs(Schema):
    """Query arguments of GET /api/v1/pieces/{piece_guid}."""

    include_inactive = ma.fields.Boolean(
        load_default=False, metadata={"description": "Allow fetching a soft-deleted piece."}
    )
    fields = _fields(DETAIL_FIELDS, "piece")


class PieceExportArgs(PieceFilterArgs):
    """Query arguments of GET /api/v1/pieces/export: the list's filters, and no window (every
    matching piece is exported)."""

    fields = _fields(DETAIL_FIELDS, "exported piece (JSON object or CSV record)")


def _response_field(name: str) -> ma.fields.Field:
    column = piece_column(name)
    if name in REQUIRED_DETAIL_FIELDS:
        return FIELD_OF_TYPE[column.sql_type](required=True)
    return FIELD_OF_TYPE[column.sql_type](allow_none=True)


PieceResponse = Schema.from_dict({name: _response_field(name) for name in LIST_FIELDS},
                                 name="PieceResponse")
PieceResponse.__doc__ = "A piece in a list."
PieceDetail = Schema.from_dict({name: _response_field(name) for name in DETAIL_FIELDS},
                               name="PieceDetail")
PieceDetail.__doc__ = "A piece with every manufacturing attribute (SPEC §7)."
