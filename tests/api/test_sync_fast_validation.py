"""The sync fast path accepts exactly what marshmallow accepts, with the same result."""
from __future__ import annotations

import uuid

import pytest

from pieces_service.api.sync.schemas import (AssemblyBatch, ComponentBatch, PieceBatch,
                                             ProjectBatch, item_schema)
from pieces_service.catalogue import PIECE

PieceItem = item_schema(PIECE)

BATCHES = [ProjectBatch, ComponentBatch, AssemblyBatch, PieceBatch]


def valid_piece(**overrides):
    item = {"company_guid": str(uuid.uuid4()), "project_guid": str(uuid.uuid4()),
            "component_guid": str(uuid.uuid4()), "assembly_guid": None, "piece_id": "P-1",
            "outer_length": 1480, "angle_left": 45, "barcode": "ü-123", "profile_code": "PF"}
    item.update(overrides)
    return item


@pytest.mark.parametrize("batch", BATCHES)
def test_every_sync_schema_has_a_fast_path(batch):
    assert batch._fast_loader().plan is not None


@pytest.mark.parametrize("item", [
    valid_piece(),
    valid_piece(guid=str(uuid.uuid4()), assembly_guid=str(uuid.uuid4())),
    valid_piece(outer_length=2**31 - 1, angle_left=-(2**31), info2="x" * 1000),
    valid_piece(piece_id="x" * 255),
])
def test_fast_path_matches_marshmallow_on_valid_items(item):
    fast = PieceBatch._fast_loader().load(item)
    assert fast is not None
    assert fast == PieceItem().load(item)


@pytest.mark.parametrize("item", [
    valid_piece(outer_length=2**31),
    valid_piece(outer_length=1.5),
    valid_piece(outer_length=True),
    valid_piece(outer_length="12"),
    valid_piece(piece_id=""),
    valid_piece(piece_id="x" * 256),
    valid_piece(info2="x" * 1001),
    valid_piece(barcode="a\x00b"),
    valid_piece(barcode="\ud800"),
    valid_piece(company_guid="not-a-uuid"),
    valid_piece(company_guid=None),
    valid_piece(unknown_field=1),
    {k: v for k, v in valid_piece().items() if k != "piece_id"},
    "not an object",
])
def test_fast_path_defers_anything_doubtful_to_marshmallow(item):
    assert PieceBatch._fast_loader().load(item) is None


def test_batch_load_uses_marshmallow_errors_for_bad_items():
    from marshmallow import ValidationError

    with pytest.raises(ValidationError) as info:
        PieceBatch().load({"pieces": [valid_piece(), valid_piece(outer_length="x")]})
    assert "outer_length" in info.value.messages["pieces"][1]
