"""Request bodies of the sync endpoints (SPEC §6), derived from the catalogue."""
from __future__ import annotations

import marshmallow as ma

from ...catalogue import LEVELS, Attribute, Level
from ...errors import BadRequest
from ...web.extensions import Schema
from ..fields import Code, Int32, Text
from .fast_validation import FastItemLoader

MAX_ITEMS = 1000


def _attribute_field(attribute: Attribute) -> ma.fields.Field:
    if attribute.kind == "code":
        return Code()
    if attribute.kind == "integer":
        return Int32(load_default=None, allow_none=True)
    return Text(load_default=None, allow_none=True)


def item_schema(level: Level) -> type[Schema]:
    """The schema of one sync item of `level`: guid?, company_guid, its parents, its
    attributes."""
    fields: dict[str, ma.fields.Field] = {
        "guid": ma.fields.UUID(load_default=None),
        "company_guid": ma.fields.UUID(required=True),
    }
    for parent in level.parents:
        fields[f"{parent}_guid"] = (ma.fields.UUID(load_default=None, allow_none=True)
                                    if parent in level.optional_parents
                                    else ma.fields.UUID(required=True))
    fields.update((a.name, _attribute_field(a)) for a in level.attributes)
    return Schema.from_dict(fields, name=f"{level.title}Item")


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
                loaded = self._fast_loader().load_many(items)
                if loaded is not None:
                    return {self.ITEMS_KEY: loaded}
        return super().load(data, *args, **kwargs)

    @classmethod
    def _fast_loader(cls) -> FastItemLoader:
        loader = _Batch._fast_loaders.get(cls)
        if loader is None:
            item = cls._declared_fields[cls.ITEMS_KEY].inner.schema
            loader = _Batch._fast_loaders[cls] = FastItemLoader(item)
        return loader

    @ma.pre_load
    def _bounded(self, data, **kwargs):
        items = data.get(self.ITEMS_KEY) if isinstance(data, dict) else None
        if isinstance(items, list) and len(items) > MAX_ITEMS:
            raise BadRequest(f"At most {MAX_ITEMS} {self.ITEMS_KEY} per request, "
                             f"got {len(items)}.")
        return data


def batch_schema(level: Level) -> type[_Batch]:
    """The body schema of `POST /api/v1/sync/<level.plural>`."""
    return type(f"{level.title}Batch", (_Batch,), {
        "ITEMS_KEY": level.plural,
        level.plural: ma.fields.List(ma.fields.Nested(item_schema(level)), required=True),
    })


BATCH_SCHEMAS: dict[str, type[_Batch]] = {name: batch_schema(level)
                                          for name, level in LEVELS.items()}
ProjectBatch, ComponentBatch, AssemblyBatch, PieceBatch = BATCH_SCHEMAS.values()


class SyncResult(Schema):
    inserted = ma.fields.Integer(required=True, metadata={"description": "Rows created"})
    updated = ma.fields.Integer(
        required=True, metadata={"description": "Existing rows whose values changed"}
    )
    unchanged = ma.fields.Integer(
        required=True,
        metadata={"description": "Items that matched a stored row and changed nothing; "
                                 "inserted + updated + unchanged is the batch size"},
    )
