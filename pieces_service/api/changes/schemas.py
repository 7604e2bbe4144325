"""Query arguments of the change feed, and the page shapes it documents (one per level,
from the catalogue; pieces are PieceDetail)."""
from __future__ import annotations

import marshmallow as ma

from ...catalogue import LEVELS, Level
from ...web.extensions import Schema
from ..pieces.schemas import FIELD_OF_TYPE, PieceDetail


class ChangesArgs(Schema):
    """Query arguments of GET /api/v1/changes/<level>."""

    since = ma.fields.String(
        validate=ma.validate.Length(min=1, max=200),
        metadata={"description": "The `next` token of the previous page; leave out to start "
                                 "from the beginning (the initial full load)."},
    )
    limit = ma.fields.Integer(
        load_default=100, validate=ma.validate.Range(min=1, max=1000),
        metadata={"description": "Most rows per page, 1–1000."},
    )
    company_guid = ma.fields.UUID(
        metadata={"description": "Tenant to read (SystemAdmin: any; others: their own)."}
    )


def _entity(level: Level) -> type[Schema]:
    if level.name == "piece":
        return PieceDetail
    fields = {}
    for name in level.fields:
        column = level.column(name)
        field = FIELD_OF_TYPE[column.sql_type]
        fields[name] = field(allow_none=True) if column.nullable else field(required=True)
    schema = Schema.from_dict(fields, name=level.title)
    schema.__doc__ = f"A {level.name} as the change feed carries it."
    return schema


def _page(level: Level) -> type[Schema]:
    schema = Schema.from_dict({
        "changes": ma.fields.List(ma.fields.Nested(_entity(level)), required=True, metadata={
            "description": "Rows written since the token, oldest change first, each in full; "
                           "a soft delete is the row with is_active false (its tombstone)."}),
        "next": ma.fields.String(required=True, metadata={
            "description": "Token to poll with next (also in the Link header)."}),
    }, name=f"{level.title}Changes")
    schema.__doc__ = f"A page of the change feed of {level.plural}."
    return schema


CHANGE_PAGES = {level.name: _page(level) for level in LEVELS.values()}
