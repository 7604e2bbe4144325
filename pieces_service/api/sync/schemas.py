"""Request bodies of the sync endpoints (SPEC §6)."""
from __future__ import annotations

import marshmallow as ma

from ...extensions import Schema, abort
from ...fields import Code, Int32, Text
from ..pieces.schemas import DIMENSION_ATTRIBUTES, TEXT_ATTRIBUTES
from .fast_validation import FastItemLoader

MAX_ITEMS = 1000


class ProjectItem(Schema):
    guid = ma.fields.UUID(load_default=None)
    company_guid = ma.fields.UUID(required=True)
    code = Code()
    name = Text(load_default=None, allow_none=True)


class ComponentItem(ProjectItem):
    project_guid = ma.fields.UUID(required=True)


class AssemblyItem(ComponentItem):
    component_guid = ma.fields.UUID(required=True)


PieceItem = Schema.from_dict(
    {
        "guid": ma.fields.UUID(load_default=None),
        "company_guid": ma.fields.UUID(required=True),
        "project_guid": ma.fields.UUID(required=True),
        "component_guid": ma.fields.UUID(required=True),
        "assembly_guid": ma.fields.UUID(load_default=None, allow_none=True),
        "piece_id": Code(),
        **{name: Int32(load_default=None, allow_none=True) for name in DIMENSION_ATTRIBUTES},
        **{name: Text(load_default=None, allow_none=True) for name in TEXT_ATTRIBUTES},
    },
    name="PieceItem",
)


class _Batch(Schema):
    """`{"<ITEMS_KEY>": [item, …]}` with at most MAX_ITEMS items (more is a 400, SPEC §6).

    Plainly valid batches take the fast path (see fast_validation); anything else, and every
    error message, comes from marshmallow.
    """

    ITEMS_KEY = ""
    _fast_loaders: dict[type, FastItemLoader] = {}

    def load(self, data, *args, **kwargs):
        if isinstance(data, dict) and set(data) == {self.ITEMS_KEY} and not args \
                and not kwargs.get("many") and not kwargs.get("partial"):
            items = data[self.ITEMS_KEY]
            if isinstance(items, list) and len(items) <= MAX_ITEMS:
                loader = self._fast_loader()
                loaded = loader.load_many(items)
                if loaded is not None:
                    return {self.ITEMS_KEY: loaded}
        return super().load(data, *args, **kwargs)

    @classmethod
    def _fast_loader(cls) -> FastItemLoader:
        loader = _Batch._fast_loaders.get(cls)
        if loader is None:
            item_schema = cls._declared_fields[cls.ITEMS_KEY].inner.schema
            loader = _Batch._fast_loaders[cls] = FastItemLoader(item_schema)
        return loader

    @ma.pre_load
    def _bounded(self, data, **kwargs):
        items = data.get(self.ITEMS_KEY) if isinstance(data, dict) else None
        if isinstance(items, list) and len(items) > MAX_ITEMS:
            abort(400, f"At most {MAX_ITEMS} {self.ITEMS_KEY} per request, got {len(items)}.")
        return data


class ProjectBatch(_Batch):
    ITEMS_KEY = "projects"
    projects = ma.fields.List(ma.fields.Nested(ProjectItem), required=True)


class ComponentBatch(_Batch):
    ITEMS_KEY = "components"
    components = ma.fields.List(ma.fields.Nested(ComponentItem), required=True)


class AssemblyBatch(_Batch):
    ITEMS_KEY = "assemblies"
    assemblies = ma.fields.List(ma.fields.Nested(AssemblyItem), required=True)


class PieceBatch(_Batch):
    ITEMS_KEY = "pieces"
    pieces = ma.fields.List(ma.fields.Nested(PieceItem), required=True)


class SyncResult(Schema):
    inserted = ma.fields.Integer(required=True, metadata={"description": "Rows created"})
    updated = ma.fields.Integer(
        required=True, metadata={"description": "Existing rows whose values changed"}
    )
