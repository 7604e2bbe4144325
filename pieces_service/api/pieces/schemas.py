"""Query arguments of the pieces endpoints, and the response shapes they document.

Responses are built as JSON by PostgreSQL; the response schemas here document them in
OpenAPI and are never used to dump rows.
"""
from __future__ import annotations

import marshmallow as ma

from ...extensions import Schema

# SPEC §7, in one place: the sync body schema and the detail document are built from these.
DIMENSION_ATTRIBUTES = (
    "outer_length", "inner_length", "angle_left", "angle_right", "assembly_width",
    "assembly_height", "reinforcement_length", "other_length", "bar_rest", "bar_length",
    "bar_cutting_tolerance", "profile_width", "profile_height", "welding_tolerance",
)
TEXT_ATTRIBUTES = (
    "barcode", "orientation", "trolley", "cell", "trolley_cell", "trolley_size",
    "parent_assembly_trolley_cell", "mullion_trolley_cell", "glazing_bead_trolley_cell",
    "operations", "component_code", "component_description", "info2", "info3", "client",
    "dealer", "project_description", "project_phase", "reinforcement_code", "hardware_info",
    "glass_info", "project_number", "component_number", "water_handle", "segment_order",
    "cutting_pattern", "fixing_mode", "material_type", "project_code_parent", "bar_id",
    "profile_code", "profile_name", "lamination", "gasket", "profile_color",
    "profile_type_ra", "profile_type", "profile_code_with_color",
)


MAX_OFFSET = 2**63 - 1


class PieceListArgs(Schema):
    """Query arguments of GET /api/v1/pieces."""

    project_guid = ma.fields.UUID(metadata={"description": "Only pieces of this project."})
    component_guid = ma.fields.UUID(metadata={"description": "Only pieces of this component."})
    assembly_guid = ma.fields.UUID(metadata={"description": "Only pieces of this assembly."})
    company_guid = ma.fields.UUID(
        metadata={"description": "Tenant to list (SystemAdmin: any; others: their own)."}
    )
    include_inactive = ma.fields.Boolean(
        load_default=False, metadata={"description": "Include soft-deleted pieces."}
    )
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


class PieceDetailArgs(Schema):
    """Query arguments of GET /api/v1/pieces/{piece_guid}."""

    include_inactive = ma.fields.Boolean(
        load_default=False, metadata={"description": "Allow fetching a soft-deleted piece."}
    )


class PieceResponse(Schema):
    """A piece in a list."""

    guid = ma.fields.UUID(required=True)
    piece_id = ma.fields.String(required=True)
    project_guid = ma.fields.UUID(required=True)
    component_guid = ma.fields.UUID(required=True)
    assembly_guid = ma.fields.UUID(allow_none=True)
    barcode = ma.fields.String(allow_none=True)
    outer_length = ma.fields.Integer(allow_none=True)
    angle_left = ma.fields.Integer(allow_none=True)
    angle_right = ma.fields.Integer(allow_none=True)
    is_active = ma.fields.Boolean(required=True)
    deleted_at = ma.fields.DateTime(allow_none=True)
    company_guid = ma.fields.UUID(required=True)
    created_at = ma.fields.DateTime(required=True)


# A piece with every manufacturing attribute (SPEC §7).
PieceDetail = PieceResponse.from_dict(
    {
        "updated_at": ma.fields.DateTime(allow_none=True),
        **{name: ma.fields.Integer(allow_none=True)
           for name in DIMENSION_ATTRIBUTES if name not in PieceResponse._declared_fields},
        **{name: ma.fields.String(allow_none=True)
           for name in TEXT_ATTRIBUTES if name not in PieceResponse._declared_fields},
    },
    name="PieceDetail",
)
