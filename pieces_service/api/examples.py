"""Example payloads shown in the OpenAPI document, built from the catalogue's examples (one
place, reused by the resources)."""
from __future__ import annotations

from ..catalogue import DETAIL_FIELDS, LEVELS, LIST_FIELDS, PIECE_ATTRIBUTES

_COMPANY = "3e0f6a52-8d41-4c8e-9a1e-0c7d2b5f9e10"
_GUIDS = {
    "project": "5f1c2a7e-0c4b-4f0a-9a57-2d8e61f0a001",
    "component": "6a2d3b8f-1d5c-4a1b-8b68-3e9f72a1b002",
    "assembly": "7b3e4c90-2e6d-4b2c-9c79-4fa083b2c003",
    "piece": "8c4f5da1-3f7e-4c3d-8d8a-5ab194c3d004",
}
_CREATED_AT = "2026-11-22T07:00:00.123456+00:00"

_PIECE_VALUES = {
    "guid": _GUIDS["piece"],
    "company_guid": _COMPANY,
    **{f"{name}_guid": _GUIDS[name] for name in LEVELS["piece"].parents},
    **{a.name: a.example for a in PIECE_ATTRIBUTES},
    "is_active": True,
    "deleted_at": None,
    "created_at": _CREATED_AT,
    "updated_at": "2026-11-22T07:05:00.654321+00:00",
}
PIECE_RESPONSE = {name: _PIECE_VALUES[name] for name in LIST_FIELDS}
PIECE_DETAIL = {name: _PIECE_VALUES[name] for name in DETAIL_FIELDS}


def _entity(level) -> dict:
    """A row of `level` as reads return it (for pieces: PieceDetail)."""
    if level.name == "piece":
        return PIECE_DETAIL
    values = {**_PIECE_VALUES, "guid": _GUIDS[level.name],
              **{a.name: a.example for a in level.attributes}}
    return {name: values[name] for name in level.fields}


# A page of each level's change feed; the token is opaque (its shape, not a valid one).
CHANGES = {level.name: {"changes": [_entity(level)],
                        "next": "AQMBPg9qUo1BTI6aHgx9K1-eEAAAAAAAABKNjE9doT98TD2NilqxlMPQBHa"
                                "r1IAi9v6GGq0Hc7h3Zw"}
           for level in LEVELS.values()}


def _sync_item(level) -> dict:
    """An item of `level` with its parents and every attribute that has an example."""
    return {
        "company_guid": _COMPANY,
        **{f"{name}_guid": _GUIDS[name] for name in level.parents},
        **{a.name: a.example for a in level.attributes if a.example is not None},
    }


SYNC_BODIES = {level.plural: {level.plural: [_sync_item(level)]} for level in LEVELS.values()}
SYNC_RESULT = {"inserted": 1, "updated": 0, "unchanged": 0}

AUDIT_ENTRY = {
    "id": 42,
    "entity_type": "assembly",
    "entity_guid": _GUIDS["assembly"],
    "action": "delete",
    "actor": "user-17",
    "company_guid": _COMPANY,
    "rows_affected": 9,
    "occurred_at": "2026-11-22T07:10:00.000001+00:00",
}

PIECE_ETAG = '"3f1c9e2a7b5d4c8e9a0b1c2d3e4f5a6b"'

PRECONDITION_FAILED = {
    "detail": f"If-Match does not match piece {_GUIDS['piece']} as it is now; nothing was "
              f"changed. Its current ETag: GET /api/v1/pieces/{_GUIDS['piece']}."
}

RESTORE_CONFLICT = {
    "detail": f"Cannot restore piece {_GUIDS['piece']}: its assembly {_GUIDS['assembly']} is "
              "deleted. Restore the assembly first."
}
