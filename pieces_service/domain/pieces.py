"""Reading pieces: the list page with its parent checks (SPEC §4), and the detail with who
may see which piece."""
from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import uuid
from dataclasses import dataclass
from typing import Callable

from .. import access
from ..auth import Principal
from ..catalogue import LIST_FIELDS
from ..dao import pieces as pieces_dao
from ..db import OneMessageReads
from ..errors import BadRequest, Forbidden, IntegrityAlarm, Invalid, NotFound

log = logging.getLogger(__name__)


def encode_cursor(last_key: str) -> str:
    """The opaque cursor for the row after `last_key` ("<created_at µs> <guid>", as the list
    statement returns it)."""
    return base64.urlsafe_b64encode(last_key.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, uuid.UUID]:
    """The keyset position (created_at in µs since the epoch, guid) in `cursor`; `Invalid`
    when it is not one of ours. Plain integers and a UUID: no ISO parser, so the cursor
    reads the same on every Python version."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
        micros, guid = text.split(" ")
        if not micros.lstrip("-").isdigit() or len(micros) > 19:
            raise ValueError(micros)
        return int(micros), uuid.UUID(guid)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise Invalid("Validation error: cursor",
                      errors={"cursor": ["Not a valid cursor."]}) from None


@dataclass(frozen=True)
class ListQuery:
    """The list's filters and window (SPEC §4), as parsed from the query string."""

    limit: int
    offset: int
    include_inactive: bool
    cursor: str | None = None
    company_guid: uuid.UUID | None = None
    project_guid: uuid.UUID | None = None
    component_guid: uuid.UUID | None = None
    assembly_guid: uuid.UUID | None = None
    barcode: str | None = None     # exact match: a scanner's lookup
    piece_id: str | None = None
    count: str | None = None       # "exact" | "planned": Prefer: count=... (COUNTS)
    fields: tuple[str, ...] | None = None  # the list's fields to show (None: all)


# What `Prefer: count=<mode>` may ask for (SPEC §10): the exact total, from the page's
# snapshot, or the planner's estimate, read from statistics alone.
COUNTS = ("exact", "planned")


@dataclass(frozen=True)
class Page:
    body: str | None          # the JSON array, as PostgreSQL built it; None: not modified
    next_cursor: str | None   # set when the page is full
    etag: str | None          # the page's validator; None: hash the body
    count: Count | None = None  # when the query asked for one


@dataclass(frozen=True)
class Count:
    """What `Prefer: count=...` answers: the total, and where the page starts in it."""

    total: int
    first: int | None  # position of the page's first row; None when unknown (a cursor
                       # page under a planned count)
    rows: int          # rows on the page


# Part of every list tag: a change of what a list item carries changes every tag.
_TAG_VERSION = "1:" + ",".join(LIST_FIELDS)


def list_page(reads: OneMessageReads, principal: Principal, query: ListQuery,
              held: Callable[[str], bool] | None = None) -> Page:
    """One page of the pieces `principal` may list; the SPEC §4 error for the first parent
    filter that fails.

    `held`, for a conditional GET, tells whether the client holds a tag. The page's tag is
    computed first, from the list index alone (`list_validator`); when the client holds it,
    the page is not built: `Page(None, None, tag)`, a 304."""
    tenant = access.list_tenant(principal, query.company_guid)
    arguments = dict(
        tenant=tenant, project_guid=query.project_guid, component_guid=query.component_guid,
        assembly_guid=query.assembly_guid, include_inactive=query.include_inactive,
        limit=query.limit, offset=query.offset,
        after=decode_cursor(query.cursor) if query.cursor else None,
        barcode=query.barcode, piece_id=query.piece_id, count_exact=query.count == "exact")
    planned = (pieces_dao.planned_count(reads, **arguments) if query.count == "planned"
               else None)
    if held is not None and query.offset < pieces_dao.DEEP_OFFSET:  # deeper: no cheap tag
        validator = pieces_dao.list_validator(reads, **arguments)
        check_parents(validator, query)
        tag = page_tag(tenant, query, validator, planned)
        if tag is not None and held(tag):
            return Page(None, None, tag)
    page = pieces_dao.list_pieces(reads, **arguments, fields=query.fields)
    check_parents(page, query)
    full = page.row_count == query.limit and page.last_key
    return Page(page.body, encode_cursor(page.last_key) if full else None,
                page_tag(tenant, query, page, planned), _count(query, page, planned))


def _count(query: ListQuery, page, planned: int | None) -> Count | None:
    """The page's place in the total its query asked for (None: not asked)."""
    if query.count == "exact":
        return Count(page.total, page.before_cursor + query.offset, page.row_count)
    if query.count == "planned":
        return Count(planned, None if query.cursor else query.offset, page.row_count)
    return None


def page_tag(tenant: uuid.UUID, query: ListQuery, validator,
             planned: int | None = None) -> str | None:
    """The list page's entity tag, from the validator of its range (the row count and the
    newest change_xid from the page's start to its last row, dao/render.py `_RANGE`); None
    when it cannot be trusted.

    Every write into the range adds a row version with its transaction's change_xid. Once
    that newest change_xid is below the snapshot's xmin (the oldest transaction still
    open), every transaction that could still write has a larger id, so any later change
    raises the maximum or the count: the tag changes exactly when it must. While the
    newest change is at or above xmin, an older transaction still open could commit into
    the range under that maximum: no cheap tag then (the caller hashes the body).

    A count the query asked for enters the tag too (the exact total from the same
    statement, or the planner's estimate), so a cached page never holds a stale count:
    rows added beyond a full page leave its range alone but change the total."""
    newest, horizon = validator.newest_change, validator.horizon
    if horizon is None:  # a deep offset page (dao/render.py, _DEEP_PAGE_RESULT)
        return None
    if newest is not None and int(newest) >= int(horizon):
        return None
    # vars(), not dataclasses.astuple(): astuple deep-copies every field (15.8 µs against
    # 2.0 µs a call, BENCHMARKS.md, issue 14); the parts' text is the same.
    key = "|".join(str(part) for part in (
        _TAG_VERSION, tenant, *vars(query).values(), validator.rows_in_range, newest,
        validator.total, planned))
    return "l" + hashlib.blake2b(key.encode(), digest_size=16).hexdigest()


def check_parents(found, query) -> None:
    """The SPEC §4 error for the first of `query`'s parent filters (its `project_guid`,
    `component_guid`, `assembly_guid`) that fails, judged from `found`: the parent-check
    columns of the list statement (`PiecePage`) or of the export's (the same names).
    Checks in the order project, component (then its project), assembly (then its
    component, then its project)."""
    project, component, assembly = query.project_guid, query.component_guid, query.assembly_guid
    if project and not found.project_found:
        raise NotFound(f"Project with GUID {project} not found or not accessible.")
    if component:
        if not found.component_found:
            raise NotFound(f"Component with GUID {component} not found or not accessible.")
        if project and found.component_project_guid != project:
            raise BadRequest(f"Component {component} does not belong to project {project}.")
    if assembly:
        if not found.assembly_found:
            raise NotFound(f"Assembly with GUID {assembly} not found or not accessible.")
        if component and found.assembly_component_guid != component:
            raise BadRequest(f"Assembly {assembly} does not belong to component {component}.")
        if project and found.assembly_project_guid != project:
            raise BadRequest(f"Assembly {assembly} does not belong to project {project}.")


def detail(reads: OneMessageReads, principal: Principal, guid: uuid.UUID,
           include_inactive: bool, fields: tuple[str, ...] | None = None) -> str:
    """The PieceDetail JSON of piece `guid` as `principal` may see it.

    Read in the caller's tenant; a piece not visible there is another tenant's (403), absent
    (404), or, for SystemAdmin, read again in its owner's tenant. A stored row lacking a
    required field is an integrity alarm (500, logged)."""
    tenant = principal.company_guid
    row = pieces_dao.get_piece(reads, tenant=tenant, guid=guid,
                               include_inactive=include_inactive, fields=fields)
    if row.body is None and access.reaches_owner(principal, row.owner_company_guid):
        tenant = row.owner_company_guid
        row = pieces_dao.get_piece(reads, tenant=tenant, guid=guid,
                                   include_inactive=include_inactive, fields=fields)
    if row.body is None:
        if row.owner_company_guid is not None and row.owner_company_guid != tenant:
            raise Forbidden("Access to this piece is forbidden.")
        raise NotFound("Piece not found")
    if row.missing_fields:
        log.error("piece %s of tenant %s lacks required fields %s", guid, tenant,
                  row.missing_fields)
        raise IntegrityAlarm(f"Piece missing required fields: {row.missing_fields}")
    return row.body
