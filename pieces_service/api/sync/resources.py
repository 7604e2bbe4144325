"""POST /api/v1/sync/{projects,components,assemblies,pieces}: all-or-nothing bulk upsert."""
from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass

from flask.views import MethodView
from sqlalchemy.exc import IntegrityError

from ... import access, db, observability
from ...auth import SYNC_ROLES, Principal, require_roles
from ...dao import ownership
from ...dao import sync as sync_dao
from ...extensions import Blueprint, ErrorSchema, abort
from .. import examples
from .schemas import AssemblyBatch, ComponentBatch, PieceBatch, ProjectBatch, SyncResult

blp = Blueprint("sync", __name__, url_prefix="/api/v1/sync",
                description="Bulk ingest from external systems (idempotent upsert).")


@dataclass(frozen=True)
class Kind:
    """What differs between the four sync endpoints."""

    key: str                        # body key and table name
    entity: ownership.Entity
    natural_key: tuple[str, ...]    # besides company_guid
    parents: tuple[str, ...]        # parent GUID fields an item names


KINDS = {
    "projects": Kind("projects", "project", ("code",), ()),
    "components": Kind("components", "component", ("project_guid", "code"), ("project_guid",)),
    "assemblies": Kind("assemblies", "assembly", ("component_guid", "code"),
                       ("project_guid", "component_guid")),
    "pieces": Kind("pieces", "piece", ("project_guid", "piece_id"),
                   ("project_guid", "component_guid", "assembly_guid")),
}


def _item_error(status: int, kind: Kind, index: int, field: str, message: str):
    abort(status, f"{kind.key}[{index}].{field}: {message}",
          errors={kind.key: {str(index): {field: [message]}}})


def _check_batch_duplicates(kind: Kind, items: list[dict]) -> None:
    """The same guid or natural key twice in one batch is ambiguous: 422."""
    seen_guid: dict[uuid.UUID, int] = {}
    seen_key: dict[tuple, int] = {}
    for index, item in enumerate(items):
        if item["guid"] is not None:
            if item["guid"] in seen_guid:
                _item_error(422, kind, index, "guid",
                            f"Duplicate of item {seen_guid[item['guid']]} in this batch.")
            seen_guid[item["guid"]] = index
        key = (item["company_guid"], *(item[f] for f in kind.natural_key))
        if key in seen_key:
            field = kind.natural_key[-1]
            _item_error(422, kind, index, field,
                        f"Same natural key as item {seen_key[key]} in this batch.")
        seen_key[key] = index


def _check_parents(kind: Kind, items: list[tuple[int, dict]],
                   parents: dict[tuple[str, uuid.UUID], sync_dao.ParentRow]) -> None:
    """Parents must exist in the item's tenant and chain: 422 naming item and field."""
    for index, item in items:
        project = item.get("project_guid")
        component = item.get("component_guid")
        assembly = item.get("assembly_guid")
        if "project_guid" in kind.parents and ("project", project) not in parents:
            _item_error(422, kind, index, "project_guid", f"Project {project} not found.")
        if "component_guid" in kind.parents:
            row = parents.get(("component", component))
            if row is None:
                _item_error(422, kind, index, "component_guid",
                            f"Component {component} not found.")
            if row.project_guid != project:
                _item_error(422, kind, index, "component_guid",
                            f"Component {component} does not belong to project {project}.")
        if "assembly_guid" in kind.parents and assembly is not None:
            row = parents.get(("assembly", assembly))
            if row is None:
                _item_error(422, kind, index, "assembly_guid", f"Assembly {assembly} not found.")
            if row.component_guid != component:
                _item_error(422, kind, index, "assembly_guid",
                            f"Assembly {assembly} does not belong to component {component}.")


def _nearest_parent(kind: Kind, item: dict, parents) -> sync_dao.ParentRow | None:
    if kind.key == "pieces" and item.get("assembly_guid") is not None:
        return parents[("assembly", item["assembly_guid"])]
    if "component_guid" in kind.parents:
        return parents[("component", item["component_guid"])]
    if "project_guid" in kind.parents:
        return parents[("project", item["project_guid"])]
    return None


def run_sync(principal: Principal, kind: Kind, items: list[dict]) -> dict:
    """Validate and upsert one batch in one transaction; return {"inserted", "updated"}."""
    if not items:
        return {"inserted": 0, "updated": 0}
    for index, item in enumerate(items):
        if not access.may_write_tenant(principal, item["company_guid"]):
            abort(403, "User does not have access to the specified company.",
                  errors={kind.key: {str(index): {"company_guid": [
                      "Not your tenant."]}}})
    _check_batch_duplicates(kind, items)
    by_tenant: dict[uuid.UUID, list[tuple[int, dict]]] = defaultdict(list)
    for index, item in enumerate(items):
        by_tenant[item["company_guid"]].append((index, item))
    inserted = updated = 0
    try:
        with db.transaction(next(iter(by_tenant)), readonly=False) as conn:
            for tenant, group in by_tenant.items():
                db.set_tenant(conn, tenant)
                given = {item["guid"]: index for index, item in group if item["guid"]}
                for guid in ownership.foreign_guids(conn, entity=kind.entity,
                                                    guids=given, tenant=tenant):
                    _item_error(403, kind, given[guid], "guid",
                                f"GUID {guid} belongs to another tenant.")
                parents = sync_dao.lock_parents(
                    conn, tenant=tenant,
                    project_guids=[i["project_guid"] for _, i in group if "project_guid" in i],
                    component_guids=[i["component_guid"] for _, i in group
                                     if "component_guid" in i],
                    assembly_guids=[i["assembly_guid"] for _, i in group
                                    if i.get("assembly_guid") is not None],
                )
                _check_parents(kind, group, parents)
                rows = []
                for _, item in group:
                    parent = _nearest_parent(kind, item, parents)
                    rows.append({
                        **item,
                        "is_active": parent.is_active if parent else True,
                        "deleted_at": parent.deleted_at.isoformat()
                        if parent and parent.deleted_at else None,
                    })
                added, changed = sync_dao.upsert(conn, table=kind.key, tenant=tenant,
                                                 items=rows)
                inserted += added
                updated += changed
    except IntegrityError as exc:
        constraint = getattr(getattr(exc.orig, "diag", None), "constraint_name", None)
        abort(409, "The batch conflicts with existing rows"
                   + (f" (constraint {constraint})" if constraint else "")
                   + "; nothing was written.")
    observability.record_sync_rows(kind.key, inserted, updated)
    return {"inserted": inserted, "updated": updated}


def _register(kind: Kind, schema) -> None:
    @blp.route(f"/{kind.key}", endpoint=f"sync_{kind.key}")
    class SyncView(MethodView):
        @blp.arguments(schema(), example=examples.SYNC_BODIES[kind.key])
        @blp.response(200, SyncResult, example=examples.SYNC_RESULT)
        @blp.alt_response(400, schema=ErrorSchema, description="More than 1000 items")
        @blp.alt_response(403, schema=ErrorSchema, description="Another tenant's company/guid")
        @blp.alt_response(409, schema=ErrorSchema, description="Conflicts with existing rows")
        @require_roles(SYNC_ROLES)
        def post(self, body, *, principal):
            return run_sync(principal, kind, body[kind.key])

    SyncView.post.__doc__ = (
        f"Sync {kind.key}\n\nUpsert up to 1000 {kind.key}: by `guid`, else by natural key "
        f"(company_guid, {', '.join(kind.natural_key)}). All or nothing; idempotent."
    )
    SyncView.__name__ = f"Sync{kind.key.title()}"


for _kind, _schema in ((KINDS["projects"], ProjectBatch), (KINDS["components"], ComponentBatch),
                       (KINDS["assemblies"], AssemblyBatch), (KINDS["pieces"], PieceBatch)):
    _register(_kind, _schema)
