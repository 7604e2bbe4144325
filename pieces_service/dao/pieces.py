"""Reads of pieces: the list page and the detail, each one statement returning JSON text,
each sent with its setup as one message (`db.OneMessageReads`, one round trip)."""
from __future__ import annotations

import uuid
from dataclasses import dataclass

from ..catalogue import DETAIL_FIELDS, LIST_FIELDS
from . import PreparedRead, load_queries, narrowed, prepared_for

_Q = load_queries("pieces.sql")
# From this offset on, skipping rows in an index-only scan beats reading them (BENCHMARKS.md).
DEEP_OFFSET = 1000
MAX_BIGINT = 2**63 - 1


def list_statement(offset: int) -> str:
    """The list statement used for a page at `offset` (the benchmark replays it too)."""
    return _Q["list_pieces_deep"] if offset >= DEEP_OFFSET else _Q["list_pieces"]


def _read(statement: str, params: dict, representation: tuple[str, ...] = (),
          fields: tuple[str, ...] | None = None) -> str | PreparedRead:
    """What a read sends: the statement of the whole representation, specialized to the
    filters `params` gives, as a prepared read; one narrowed to a request's `fields=` as
    plain text (so that a connection holds only these few prepared statements)."""
    if fields is not None:
        return narrowed(statement, representation, fields)
    return prepared_for(statement, params)


@dataclass(frozen=True)
class ParentChecks:
    """The list's parent filters as the database found them (the first columns of the list,
    validator and export statements; `domain.pieces.check_parents` judges them)."""

    project_found: bool
    component_found: bool
    component_project_guid: uuid.UUID | None
    assembly_found: bool
    assembly_component_guid: uuid.UUID | None
    assembly_project_guid: uuid.UUID | None


@dataclass(frozen=True)
class PiecePage(ParentChecks):
    """A list page and the parent checks made in the same statement."""

    row_count: int
    last_key: str | None  # "<created_at in µs since the epoch> <guid>" of the last row
    body: str
    rows_in_range: int | None  # the validator: rows from the page's start to its last row,
    newest_change: str | None  # ... their newest change_xid,
    horizon: str | None   # ... and the snapshot's xmin (dao/render.py, _RANGE); all None
                          # for a deep offset page, which has no cheap validator
    total: int | None          # with count_exact: every row the filters match,
    before_cursor: int | None  # ... and those before the cursor (else both None)


@dataclass(frozen=True)
class PageValidator(ParentChecks):
    """The list statement's parent checks and validator, without the page."""

    rows_in_range: int
    newest_change: str | None
    horizon: str
    total: int | None
    before_cursor: int | None


@dataclass(frozen=True)
class PieceDetailRow:
    owner_company_guid: uuid.UUID | None
    missing_fields: list[str]
    body: str | None


def list_pieces(
    reads,
    *,
    tenant: uuid.UUID,
    project_guid: uuid.UUID | None,
    component_guid: uuid.UUID | None,
    assembly_guid: uuid.UUID | None,
    include_inactive: bool,
    limit: int,
    offset: int,
    after: tuple[int, uuid.UUID] | None = None,
    barcode: str | None = None,
    piece_id: str | None = None,
    count_exact: bool = False,
    fields: tuple[str, ...] | None = None,
) -> PiecePage:
    """One page of `tenant`'s pieces in (created_at, guid) order, after the keyset `after`
    (created_at in µs since the epoch, guid) when given, with the parent filters checked
    against the same tenant, and with `count_exact` the total the filters match, from the
    same snapshot. Each item holds `fields` (a subset of the list's, in its order; None: all
    of them), and only those columns are read. `reads`: a `db.OneMessageReads`."""
    params = list_parameters(
        tenant=tenant, project_guid=project_guid, component_guid=component_guid,
        assembly_guid=assembly_guid, include_inactive=include_inactive, limit=limit,
        offset=offset, after=after, barcode=barcode, piece_id=piece_id,
        count_exact=count_exact)
    row = reads.fetch_one(tenant, _read(list_statement(offset), params, LIST_FIELDS, fields),
                          params)
    return PiecePage(*row)


def list_validator(reads, **arguments) -> PageValidator:
    """The parent checks and the validator of the page `list_pieces` would return for the
    same (keyword) arguments, read from the list index without building the page."""
    params = list_parameters(**{"after": None, **arguments})
    return PageValidator(*reads.fetch_one(arguments["tenant"],
                                          _read(_Q["list_validator"], params), params))


def planned_count(reads, **arguments) -> int:
    """The planner's estimate of the rows the list's filters match (`Prefer: count=planned`),
    for the same (keyword) arguments as `list_pieces`."""
    [plan] = reads.fetch_one(arguments["tenant"], _Q["count_planned"],
                             list_parameters(**{"after": None, **arguments}))[0]
    return int(plan["Plan"]["Plan Rows"])


def list_parameters(*, tenant, project_guid, component_guid, assembly_guid, include_inactive,
                    limit, offset, after, barcode=None, piece_id=None,
                    count_exact=False) -> dict:
    """The parameters of the list statement (the benchmark builds its floor from them)."""
    return {
        "tenant": tenant,
        "project_guid": project_guid,
        "component_guid": component_guid,
        "assembly_guid": assembly_guid,
        "barcode": barcode,
        "piece_id": piece_id,
        "include_inactive": include_inactive,
        "limit": limit,
        "offset": offset,
        # The page's last row, for list_validator (capped: OFFSET is a bigint).
        "end_offset": min(offset + limit - 1, MAX_BIGINT),
        "after_us": after[0] if after else None,
        "after_guid": after[1] if after else None,
        "count_exact": count_exact,
    }


def get_piece(reads, *, tenant: uuid.UUID, guid: uuid.UUID, include_inactive: bool,
              fields: tuple[str, ...] | None = None) -> PieceDetailRow:
    """The piece `guid` of `tenant` as PieceDetail JSON (body None when not visible), with
    just `fields` when given (a subset of the detail's, in its order), and, when it is not
    visible, the tenant that owns that GUID, if any."""
    params = {"tenant": tenant, "guid": guid, "include_inactive": include_inactive}
    owner_company_guid, missing_fields, body = reads.fetch_one(
        tenant, _read(_Q["get_piece"], params, DETAIL_FIELDS, fields), params)
    if body is None:  # no visible row: the LEFT JOIN came back empty
        return PieceDetailRow(owner_company_guid, [], None)
    return PieceDetailRow(owner_company_guid, list(missing_fields), body)
