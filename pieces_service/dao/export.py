"""The export's reads: the parent checks, then a server-side cursor fetched in batches, all
in one `db.StreamingRead` (one read-only transaction, one snapshot).

The statements are in `sql/export.sql` (rendered from the catalogue). FETCH reads nothing
but the cursor its transaction declared (with the tenant predicate), so it is kept here
rather than in the file, whose statements each name their tenant.
"""
from __future__ import annotations

import uuid

from ..catalogue import DETAIL_FIELDS
from . import load_queries, narrowed
from .pieces import ParentChecks

_Q = load_queries("export.sql")
FORMATS = ("ndjson", "csv")


def csv_header(fields: tuple[str, ...] | None = None) -> str:
    """The CSV header record: the exported field names (none needs quoting)."""
    return ",".join(fields or DETAIL_FIELDS)

_FETCH = "-- name: export_fetch\nFETCH FORWARD %(rows)s FROM pieces_export"


def open_cursor(stream, *, tenant: uuid.UUID, fmt: str, project_guid: uuid.UUID | None,
                component_guid: uuid.UUID | None, assembly_guid: uuid.UUID | None,
                include_inactive: bool,
                fields: tuple[str, ...] | None = None) -> ParentChecks:
    """Declare the export's cursor (`fmt`: "ndjson" or "csv") over `tenant`'s pieces with
    these filters, each line holding `fields` (a subset of the detail's, in its order;
    None: all), and check the parent filters in the same message. `stream`: a
    `db.StreamingRead`. Nothing is read from the cursor yet."""
    params = {"tenant": tenant, "project_guid": project_guid,
              "component_guid": component_guid, "assembly_guid": assembly_guid,
              "include_inactive": include_inactive}
    declare = narrowed(_Q[f"export_pieces_{fmt}"], DETAIL_FIELDS, fields)
    (row,) = stream.fetch_all(f"{declare};\n{_Q['export_parents']}", params)
    return ParentChecks(*row)


def fetch_lines(stream, *, rows: int, timeout_ms: int) -> list[str]:
    """The cursor's next `rows` lines (fewer at its end, none after it): each a PieceDetail
    JSON object or a CSV record, without its line end; the FETCH runs under
    `statement_timeout` = `timeout_ms`."""
    return [line for (line,) in stream.fetch_all(_FETCH, {"rows": int(rows)},
                                                  timeout_ms=timeout_ms)]
