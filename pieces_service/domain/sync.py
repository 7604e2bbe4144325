"""Sync: the all-or-nothing bulk upsert of one level (SPEC §6).

A `200` means every item is stored as sent. The rules, in the order they are checked:
1. every item's company_guid is a tenant the caller may write (403);
2. no guid and no natural key twice in the batch (422);
3. per tenant of the batch: the named parents exist in that tenant and chain (422), locked
   FOR SHARE so that a concurrent cascade cannot slip between the check and the write;
4. an item under a soft-deleted parent is inserted deleted (with the parent's deleted_at),
   but may not move an existing active row there (409): sync never changes is_active;
5. one upsert per conflict target (guid, natural key) that writes only rows whose values
   differ (an item that changed nothing counts as unchanged); an item naming another
   tenant's guid is a 403, also when that tenant inserted it a moment earlier (the upsert
   waited for it, then did not touch it; see `_write`).
"""
from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy.engine import Connection

from .. import access, db
from ..auth import Principal
from ..catalogue import LEVELS, Level
from ..dao import ownership
from ..dao import sync as sync_dao
from ..errors import Conflict, Forbidden, Invalid, ServiceError

Parents = dict[tuple[str, uuid.UUID], sync_dao.ParentRow]


@dataclass(frozen=True)
class SyncResult:
    inserted: int   # rows created
    updated: int    # existing rows whose values changed
    unchanged: int  # items that matched a row and changed nothing


def _item_error(error: type[ServiceError], level: Level, index: int, field: str,
                message: str) -> ServiceError:
    return error(f"{level.plural}[{index}].{field}: {message}",
                 errors={level.plural: {str(index): {field: [message]}}})


def sync_batch(conn: Connection, principal: Principal, level: Level,
               items: list[dict]) -> SyncResult:
    """Validate and upsert one batch of validated `items` of `level` inside the caller's
    transaction (opened in the caller's own tenant); raise on the first rule broken."""
    for index, item in enumerate(items):
        if not access.may_write_tenant(principal, item["company_guid"]):
            raise Forbidden(access.COMPANY_FORBIDDEN, errors={level.plural: {str(index): {
                "company_guid": ["Not your tenant."]}}})
    _check_batch_duplicates(level, items)
    by_tenant: dict[uuid.UUID, list[tuple[int, dict]]] = defaultdict(list)
    for index, item in enumerate(items):
        by_tenant[item["company_guid"]].append((index, item))
    inserted = updated = 0
    current = principal.company_guid  # the transaction's RLS tenant
    for tenant, group in by_tenant.items():
        if tenant != current:
            db.set_tenant(conn, tenant)
            current = tenant
        parents = sync_dao.lock_parents(conn, tenant=tenant, guids={
            name: [item[f"{name}_guid"] for _, item in group
                   if item.get(f"{name}_guid") is not None]
            for name in level.parents})
        rows = _inherit_active(conn, level, tenant, group, parents)
        for by_guid in (True, False):
            part = [(index, row) for index, row in rows if (row["guid"] is not None) == by_guid]
            if part:
                added, changed = _write(conn, level, tenant, part, by_guid)
                inserted += added
                updated += changed
    return SyncResult(inserted, updated, len(items) - inserted - updated)


def _write(conn: Connection, level: Level, tenant: uuid.UUID, part: list[tuple[int, dict]],
           by_guid: bool) -> tuple[int, int]:
    """Upsert `part` (all with a guid, or none); return (inserted, updated).

    An item naming another tenant's guid is never written, but how PostgreSQL says so
    differs: 15 refuses the whole statement (row-level security), 16 skips the row (the
    upsert's WHERE). Either way the items in question are probed, and the first foreign
    one is a 403; the others matched their own row unchanged."""
    try:
        added, changed = sync_dao.upsert(conn, level=level, tenant=tenant,
                                         items=[row for _, row in part], by_guid=by_guid)
    except sync_dao.ForeignRowRefused as refused:
        _refuse_foreign_guids(conn, level, tenant, part)
        raise refused.__cause__  # refused for another reason: classified as it stands
    if by_guid and len(added) + len(changed) < len(part):
        written = added | changed
        _refuse_foreign_guids(conn, level, tenant,
                              [(index, row) for index, row in part if row["guid"] not in written])
    return len(added), len(changed)


def _check_batch_duplicates(level: Level, items: list[dict]) -> None:
    """The same guid or natural key twice in one batch is ambiguous: 422."""
    seen_guid: dict[uuid.UUID, int] = {}
    seen_key: dict[tuple, int] = {}
    for index, item in enumerate(items):
        if item["guid"] is not None:
            if item["guid"] in seen_guid:
                raise _item_error(Invalid, level, index, "guid",
                                  f"Duplicate of item {seen_guid[item['guid']]} in this batch.")
            seen_guid[item["guid"]] = index
        key = (item["company_guid"], *(item[name] for name in level.natural_key))
        if key in seen_key:
            raise _item_error(Invalid, level, index, level.natural_key[-1],
                              f"Same natural key as item {seen_key[key]} in this batch.")
        seen_key[key] = index


@dataclass(frozen=True)
class _Placement:
    """What an item's parents make of it: the state a new row inherits from the nearest
    parent, and the highest deleted parent it names (level name, guid), if any."""

    is_active: bool
    deleted_at: str | None
    deleted_parent: tuple[str, uuid.UUID] | None


def _placements(level: Level, group: list[tuple[int, dict]],
                parents: Parents) -> list[_Placement]:
    """Each item's placement, after checking that each parent it names exists in the
    tenant and belongs to the item's other parents, nearest first (422 naming the item and
    the field). A batch names few distinct parent chains: each is checked once."""
    fields = level.parent_columns
    seen: dict[tuple, _Placement] = {}
    placements = []
    for index, item in group:
        chain = tuple(item.get(field) for field in fields)
        placement = seen.get(chain)
        if placement is None:
            placement = seen[chain] = _place(level, index, item, parents)
        placements.append(placement)
    return placements


def _place(level: Level, index: int, item: dict, parents: Parents) -> _Placement:
    named = []
    for name in level.parents:
        field = f"{name}_guid"
        guid = item.get(field)
        if guid is None and name in level.optional_parents:
            continue
        row = parents.get((name, guid))
        title = LEVELS[name].title
        if row is None:
            raise _item_error(Invalid, level, index, field, f"{title} {guid} not found.")
        for above in reversed(LEVELS[name].parents):
            expected = item[f"{above}_guid"]
            if getattr(row, f"{above}_guid") != expected:
                raise _item_error(Invalid, level, index, field,
                                  f"{title} {guid} does not belong to {above} {expected}.")
        named.append((name, row))
    nearest = named[-1][1] if named else None
    deleted = next(((name, row.guid) for name, row in named if not row.is_active), None)
    return _Placement(
        is_active=nearest.is_active if nearest else True,
        deleted_at=nearest.deleted_at.isoformat() if nearest and nearest.deleted_at else None,
        deleted_parent=deleted)


def _inherit_active(conn: Connection, level: Level, tenant: uuid.UUID,
                    group: list[tuple[int, dict]], parents: Parents) -> list[tuple[int, dict]]:
    """The items with the is_active/deleted_at a new row takes from its nearest parent;
    `Invalid` for a parent that is missing or does not chain; `Conflict` when an item
    would move an existing active row under a deleted parent."""
    rows = []
    under_deleted: list[tuple[int, dict, str, uuid.UUID]] = []
    for (index, item), placement in zip(group, _placements(level, group, parents)):
        rows.append((index, {**item, "is_active": placement.is_active,
                             "deleted_at": placement.deleted_at}))
        if placement.deleted_parent:
            under_deleted.append((index, item, *placement.deleted_parent))
    if under_deleted:
        active = sync_dao.existing_active(conn, level=level, tenant=tenant,
                                          items=[(index, item) for index, item, *_
                                                 in under_deleted])
        for index, _, name, guid in under_deleted:
            if active.get(index):
                raise _item_error(
                    Conflict, level, index, f"{name}_guid",
                    f"{LEVELS[name].title} {guid} is deleted: an active {level.name} cannot "
                    f"be moved under it; nothing was written. Restore the {name} first.")
    return rows


def _refuse_foreign_guids(conn: Connection, level: Level, tenant: uuid.UUID,
                          part: list[tuple[int, dict]]) -> None:
    """Sync never overwrites another tenant's row: 403 for the first item naming one."""
    index_of = {row["guid"]: index for index, row in part}
    foreign = ownership.foreign_guids(conn, level=level.name, guids=index_of, tenant=tenant)
    if foreign:
        guid = min(foreign, key=index_of.__getitem__)
        raise _item_error(Forbidden, level, index_of[guid], "guid",
                          f"GUID {guid} belongs to another tenant.")
