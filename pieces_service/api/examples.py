"""Example payloads shown in the OpenAPI document (one place, reused by the resources)."""
from __future__ import annotations

_COMPANY = "3e0f6a52-8d41-4c8e-9a1e-0c7d2b5f9e10"
_PROJECT = "5f1c2a7e-0c4b-4f0a-9a57-2d8e61f0a001"
_COMPONENT = "6a2d3b8f-1d5c-4a1b-8b68-3e9f72a1b002"
_ASSEMBLY = "7b3e4c90-2e6d-4b2c-9c79-4fa083b2c003"
_PIECE = "8c4f5da1-3f7e-4c3d-8d8a-5ab194c3d004"

PIECE_RESPONSE = {
    "guid": _PIECE,
    "piece_id": "P1-W01-001",
    "project_guid": _PROJECT,
    "component_guid": _COMPONENT,
    "assembly_guid": _ASSEMBLY,
    "barcode": "2000000000017",
    "outer_length": 1480,
    "angle_left": 45,
    "angle_right": 45,
    "is_active": True,
    "deleted_at": None,
    "company_guid": _COMPANY,
    "created_at": "2026-11-22T07:00:00.123456+00:00",
}

PIECE_DETAIL = {
    **PIECE_RESPONSE,
    "updated_at": "2026-11-22T07:05:00.654321+00:00",
    "inner_length": 1392,
    "profile_width": 70,
    "profile_height": 82,
    "orientation": "Horizontal",
    "trolley": "T07",
    "cell": "12",
    "trolley_cell": "T07-12",
    "profile_code": "PF001",
    "profile_name": "Casement frame 70",
    "profile_color": "RAL9016",
}

PIECE_SYNC_BODY = {
    "pieces": [{
        "company_guid": _COMPANY,
        "project_guid": _PROJECT,
        "component_guid": _COMPONENT,
        "assembly_guid": _ASSEMBLY,
        "piece_id": "P1-W01-001",
        "barcode": "2000000000017",
        "outer_length": 1480,
        "angle_left": 45,
        "angle_right": 45,
        "profile_code": "PF001",
    }]
}

SYNC_BODIES = {
    "projects": {"projects": [{"company_guid": _COMPANY, "code": "P-2026-001",
                               "name": "Riverside flats"}]},
    "components": {"components": [{"company_guid": _COMPANY, "project_guid": _PROJECT,
                                   "code": "W01", "name": "Tilt-turn window"}]},
    "assemblies": {"assemblies": [{"company_guid": _COMPANY, "project_guid": _PROJECT,
                                   "component_guid": _COMPONENT, "code": "W01-A1",
                                   "name": "Sash"}]},
    "pieces": PIECE_SYNC_BODY,
}

SYNC_RESULT = {"inserted": 1, "updated": 0}

AUDIT_ENTRY = {
    "id": 42,
    "entity_type": "assembly",
    "entity_guid": _ASSEMBLY,
    "action": "delete",
    "actor": "user-17",
    "company_guid": _COMPANY,
    "rows_affected": 9,
    "occurred_at": "2026-11-22T07:10:00.000001+00:00",
}

RESTORE_CONFLICT = {
    "detail": f"Cannot restore piece {_PIECE}: its assembly {_ASSEMBLY} is deleted. "
              "Restore the assembly first."
}
