"""POST /api/v1/sync/{projects,components,assemblies,pieces}: all-or-nothing bulk upsert."""
from __future__ import annotations

import dataclasses

from flask.views import MethodView

from ... import db
from ...auth import SYNC_ROLES, require_roles
from ...catalogue import LEVELS, Level
from ...domain import sync
from ...web import observability
from ...web.extensions import Blueprint, ErrorSchema
from .. import examples
from .schemas import BATCH_SCHEMAS, SyncResult

blp = Blueprint("sync", __name__, url_prefix="/api/v1/sync",
                description="Bulk ingest from external systems (idempotent upsert).")


def _register(level: Level) -> None:
    text = (
        f"Sync {level.plural}\n\nUpsert up to 1000 {level.plural}: by `guid`, else by natural "
        f"key (company_guid, {', '.join(level.natural_key)}). All or nothing; idempotent."
    )

    @blp.route(f"/{level.plural}", endpoint=f"sync_{level.plural}")
    class SyncView(MethodView):
        @blp.operation(f"sync{level.plural.title()}", text)
        @blp.arguments(BATCH_SCHEMAS[level.name](), example=examples.SYNC_BODIES[level.plural])
        @blp.response(200, SyncResult, example=examples.SYNC_RESULT)
        @blp.alt_response(400, schema=ErrorSchema, description="More than 1000 items")
        @blp.alt_response(403, schema=ErrorSchema, description="Another tenant's company/guid")
        @blp.alt_response(409, schema=ErrorSchema,
                          description="Conflicts with existing rows, or would move an active "
                                      "row under a deleted parent")
        @require_roles(SYNC_ROLES)
        def post(self, body, *, principal):
            with db.transaction(principal.company_guid, readonly=False) as conn:
                result = sync.sync_batch(conn, principal, level, body[level.plural])
            observability.record_sync_rows(level.plural, result.inserted, result.updated)
            return dataclasses.asdict(result)

    SyncView.__name__ = f"Sync{level.plural.title()}"


for _level in LEVELS.values():
    _register(_level)
