"""Renders the statements that follow from the catalogue into `sql/*.sql`.

The column lists of sync's upserts, the per-level cascade statements and the piece reads
all follow from `catalogue.LEVELS`; writing them by hand would spell the 60 piece columns
out a dozen times. This module writes them out once, as complete statements, into the
checked-in files `sql/pieces.sql`, `sql/sync.sql` and `sql/hierarchy.sql`; at run time the
DAO only reads those files (`load_queries`), so the text PostgreSQL receives is in the
repository, one statement per `-- name:`. `tests/dao/test_rendered_sql.py` fails when a
file and its rendering differ; `make sql` (`pieces-service sql --write`) rewrites them.

The service never imports this module.
"""
from __future__ import annotations

import textwrap
from pathlib import Path

from ..catalogue import DETAIL_FIELDS, LEVELS, LIST_FIELDS, REQUIRED_DETAIL_FIELDS, Level
from . import FIELDS_BEGIN, FIELDS_END, SQL_DIR

HEADER = ("-- Rendered from pieces_service/catalogue.py by pieces_service/dao/render.py\n"
          "-- (`make sql`). Edit those, not this file: tests/dao/test_rendered_sql.py checks\n"
          "-- that the two agree.\n")


def _lines(names, indent: int, prefix: str = "") -> str:
    """One name a line, comma-separated, continuation lines indented by `indent`."""
    return f",\n{' ' * indent}".join(f"{prefix}{name}" for name in names)


def _inline(names, prefix: str = "") -> str:
    return ", ".join(f"{prefix}{name}" for name in names)


def _projection(expressions, indent: int) -> str:
    """A representation's expressions, one a line between the markers `dao.narrowed` cuts a
    request's `fields=` from."""
    pad = " " * indent
    return (f"{pad}{FIELDS_BEGIN}\n{pad}" + _lines(expressions, indent)
            + f"\n{pad}{FIELDS_END}")


def _statement(name: str, doc: str, body: str) -> str:
    paragraphs = [" ".join(part.split()) for part in doc.strip().split("\n\n")]
    lines = [line for part in paragraphs for line in textwrap.wrap(part, 88) or [""]]
    comment = "\n".join(f"-- {line}" for line in lines)
    return f"-- name: {name}\n{comment}\n{body.strip()};\n"


# --- pieces.sql: the list page and the detail ------------------------------------------

# Qualified: the page's own FROM also has the item's columns, of the same names.
_IN_LIST = """\
    WHERE pieces.company_guid = %(tenant)s
      AND (%(project_guid)s::uuid IS NULL OR pieces.project_guid = %(project_guid)s)
      AND (%(component_guid)s::uuid IS NULL OR pieces.component_guid = %(component_guid)s)
      AND (%(assembly_guid)s::uuid IS NULL OR pieces.assembly_guid = %(assembly_guid)s)
      AND (%(barcode)s::text IS NULL OR pieces.barcode = %(barcode)s)
      AND (%(piece_id)s::text IS NULL OR pieces.piece_id = %(piece_id)s)"""
_ACTIVE = """
      AND (pieces.is_active OR %(include_inactive)s)"""
_AFTER = """
      AND (%(after_us)s::bigint IS NULL
           OR (pieces.created_at, pieces.guid) > (
               timestamptz 'epoch' + %(after_us)s * interval '1 microsecond',
               %(after_guid)s::uuid
           ))"""
_ORDER = """
    ORDER BY created_at,
             guid"""
_PAGE_FILTERS = f"""{_IN_LIST}{_ACTIVE}{_AFTER}{_ORDER}
    LIMIT %(limit)s
    OFFSET %(offset)s"""

# The validator of a page (the list's ETag, domain/pieces.py): the row count and the newest
# change_xid of every row, active or not, from the page's start up to its last row (to the
# end when the page is not full). Any write that changes the page's content, or what the
# offset skips, writes a row in that range. Read from the list index alone (it INCLUDEs
# change_xid). `bound` is the page's last row.
#
# The bound joins in as a row (`upper`, one row: the page's last key, or +infinity), never as
# a subquery inside the condition: under row-level security the planner keeps a condition
# with a sublink behind the policy's, as a filter, and would read the whole project (60,000
# index entries for a big one) instead of the range. A join column is an index condition.
_RANGE = f"""\
upper AS MATERIALIZED (
    SELECT coalesce(bound.created_at, 'infinity') AS last_created_at,
           coalesce(bound.guid, 'ffffffff-ffff-ffff-ffff-ffffffffffff') AS last_guid
    FROM (SELECT) AS one
    LEFT JOIN bound ON true
), range AS (
    SELECT counted.*
    FROM upper
    CROSS JOIN LATERAL (
        SELECT count(*) AS rows_in_range,
               max(change_xid)::text AS newest_change
        FROM pieces
    {_IN_LIST.replace(chr(10), chr(10) + "    ")}{_AFTER.replace(chr(10), chr(10) + "    ")}
          AND (created_at, guid) <= (upper.last_created_at, upper.last_guid)
    ) AS counted
)"""
_PAGE_BOUND = """\
bound AS (
    SELECT created_at,
           guid
    FROM page
    WHERE (SELECT count(*) FROM page) = %(limit)s
    ORDER BY created_at DESC,
             guid DESC
    LIMIT 1
)"""
_VALIDATOR = """\
       (SELECT rows_in_range FROM range) AS rows_in_range,
       (SELECT newest_change FROM range) AS newest_change,
       pg_snapshot_xmin(pg_current_snapshot())::text AS horizon"""

# The total a `Prefer: count=exact` asks for (SPEC §10): every row the filters match, and how
# many of them lie before the keyset cursor (where a cursor page starts). Without it,
# count_exact is false: a one-time filter (folded by the planner when psycopg2 inlines it, a
# parameter of a prepared plan), and nothing is counted.
_COUNTED = f"""\
counted AS (
    SELECT count(*) AS total,
           count(*) FILTER (WHERE (created_at, guid) <= (
               timestamptz 'epoch' + %(after_us)s * interval '1 microsecond',
               %(after_guid)s::uuid
           )) AS before_cursor
    FROM pieces
{_IN_LIST}{_ACTIVE}
      AND %(count_exact)s
)"""
_TOTAL = """,
       (SELECT total FROM counted) AS total,
       (SELECT before_cursor FROM counted) AS before_cursor"""

_PARENT_CHECKS = """\
WITH project AS (
    SELECT guid
    FROM projects
    WHERE company_guid = %(tenant)s
      AND guid = %(project_guid)s
      AND (is_active OR %(include_inactive)s)
), component AS (
    SELECT guid,
           project_guid
    FROM components
    WHERE company_guid = %(tenant)s
      AND guid = %(component_guid)s
      AND (is_active OR %(include_inactive)s)
), assembly AS (
    SELECT guid,
           project_guid,
           component_guid
    FROM assemblies
    WHERE company_guid = %(tenant)s
      AND guid = %(assembly_guid)s
      AND (is_active OR %(include_inactive)s)
),"""

# What the parent CTEs found: the first columns of every statement that checks the list's
# parent filters (dao.pieces.ParentChecks).
_PARENTS_FOUND = """\
SELECT EXISTS (SELECT FROM project) AS project_found,
       EXISTS (SELECT FROM component) AS component_found,
       (SELECT project_guid FROM component) AS component_project_guid,
       EXISTS (SELECT FROM assembly) AS assembly_found,
       (SELECT component_guid FROM assembly) AS assembly_component_guid,
       (SELECT project_guid FROM assembly) AS assembly_project_guid"""

_PAGE_ROWS = _PARENTS_FOUND + """,
       (SELECT count(*) FROM page) AS row_count,
       (SELECT (extract(epoch FROM created_at) * 1000000)::bigint || ' ' || guid
        FROM page
        ORDER BY created_at DESC, guid DESC
        LIMIT 1) AS last_key,
       (SELECT coalesce(json_agg(item ORDER BY created_at, guid), '[]')::text
        FROM page) AS body,
"""
_PAGE_RESULT = _PAGE_ROWS + _VALIDATOR + _TOTAL
# A deep offset page has no cheap validator: its range would span every row the offset
# skips, a second pass over them (make bench: a third off deep_offset's rate). It is
# tagged by its body's hash instead; the cursor is the way to page deep.
_DEEP_PAGE_RESULT = _PAGE_ROWS + """\
       NULL::bigint AS rows_in_range,
       NULL::text AS newest_change,
       NULL::text AS horizon""" + _TOTAL


def _page(where: str) -> str:
    """The page's rows: their keys (order, cursor, validator bound) and the item the JSON
    shows, projected from the list's fields (or a request's `fields=`)."""
    item = _projection((f"pieces.{name}" for name in LIST_FIELDS), 8)
    return f"""\
page AS (
    SELECT pieces.created_at,
           pieces.guid,
           item
    FROM pieces
    CROSS JOIN LATERAL (
        SELECT
{item}
    ) AS item
{where}
)"""


def list_pieces() -> str:
    return _statement("list_pieces", """
One page of pieces as a JSON array built by PostgreSQL, plus the parent checks the
endpoint needs, in a single round trip. Order: created_at, guid (total and stable).
A NULL filter parameter means "no filter". Sent prepared (db.OneMessageReads), the
statement is first specialized to the filters given (dao.specialized: each optional
filter becomes its condition, or "true"), so one plan serves every value;
sent as text, psycopg2 inlines the values and the planner folds those branches itself.
after_us/after_guid: the keyset cursor (created_at in microseconds since the epoch, so
its text never depends on a time zone or an ISO parser). last_key is the next cursor.
For offsets below dao.pieces.DEEP_OFFSET (list_pieces_deep serves the others).
""", f"{_PARENT_CHECKS} {_page(_PAGE_FILTERS)}, {_PAGE_BOUND}, {_RANGE}, {_COUNTED}\n"
        f"{_PAGE_RESULT}")


def list_pieces_deep() -> str:
    keys = f"page_keys AS (\n    SELECT guid\n    FROM pieces\n{_PAGE_FILTERS}\n)"
    rows = _page("    WHERE pieces.company_guid = %(tenant)s\n"
                 "      AND pieces.guid IN (SELECT guid FROM page_keys)")
    return _statement("list_pieces_deep", """
list_pieces for deep offsets: skip rows in an index-only scan of the order index (it
INCLUDEs is_active), then fetch just the page's rows by primary key. On shallow pages
the extra join costs more than it saves (BENCHMARKS.md). No validator (NULL): the page
is tagged by its body's hash.
""", f"{_PARENT_CHECKS} {keys}, {rows}, {_COUNTED}\n{_DEEP_PAGE_RESULT}")


def list_validator() -> str:
    bound = f"bound AS (\n    SELECT created_at,\n           guid\n    FROM pieces\n" \
            f"{_IN_LIST}{_ACTIVE}{_AFTER}{_ORDER}\n    LIMIT 1\n    OFFSET %(end_offset)s\n)"
    return _statement("list_validator", """
The list's ETag for a conditional GET, without building the page: the parent checks of
list_pieces and the validator of the range the page covers (its last row is found by
skipping end_offset = offset + limit - 1 rows in an index-only scan). Same columns as
list_pieces' checks and validator; the page itself is not read.
""", f"""{_PARENT_CHECKS} {bound}, {_RANGE}, {_COUNTED}
{_PARENTS_FOUND},
{_VALIDATOR}{_TOTAL}""")


def count_planned() -> str:
    return _statement("count_planned", """
The planner's estimate of the rows the list's filters match, for `Prefer: count=planned`:
the "Plan Rows" of the plan's top node. Nothing is read but the table's statistics, so it
costs the same on any size; run as pieces_app, the estimate includes the row-level
security policy (its tenant condition is the filter's own, so it does not shrink it).
""", f"""\
EXPLAIN (FORMAT JSON)
SELECT
FROM pieces
{_IN_LIST}{_ACTIVE}""")


def get_piece() -> str:
    missing = _lines((f"CASE WHEN pieces.{name} IS NULL THEN '{name}' END"
                      for name in REQUIRED_DETAIL_FIELDS), 15)
    item = _projection((f"pieces.{name}" for name in DETAIL_FIELDS), 12)
    return _statement("get_piece", """
One piece (PieceDetail) as JSON, with the names of any required fields that are NULL
(checked on the stored row, whatever fields= asks for) and, when the row is not visible,
the tenant owning the GUID (from pieces_guid_owners, so "someone else's" can be told apart
from "absent"). Soft-deleted rows count only with include_inactive.
""", f"""\
WITH owner AS (
    SELECT company_guid
    FROM pieces_guid_owners('piece', ARRAY[%(guid)s::uuid])
), detail AS (
    SELECT item,
           array_remove(ARRAY[
               {missing}
           ], NULL) AS missing_fields
    FROM pieces
    CROSS JOIN LATERAL (
        SELECT
{item}
    ) AS item
    WHERE pieces.company_guid = %(tenant)s
      AND pieces.guid = %(guid)s
      AND (pieces.is_active OR %(include_inactive)s)
)
SELECT CASE WHEN detail.missing_fields IS NULL  -- the owner probe runs only for a row
            THEN (SELECT company_guid FROM owner)  -- not visible
       END AS owner_company_guid,
       detail.missing_fields,
       row_to_json(detail.item)::text AS body
FROM (SELECT 1) AS one
LEFT JOIN detail ON true""")


# --- sync.sql: parents, upserts, the rows a batch would move ---------------------------

def _ancestor_levels() -> tuple[Level, ...]:
    return tuple(level for level in LEVELS.values() if level.descendants)


def lock_parents() -> str:
    chain = [level.guid_column for level in _ancestor_levels()]
    parts = []
    for level in _ancestor_levels():
        values = [f"'{level.name}'::text AS level", "guid"]
        for column in chain:
            source = "guid" if column == level.guid_column else (
                column if column in level.parent_columns else "NULL::uuid")
            values.append(f"{source} AS {column}" if source != column else column)
        values += ["is_active", "deleted_at"]
        parts.append(f"""\
{level.name} AS (
    SELECT {_lines(values, 11)}
    FROM {level.table}
    WHERE company_guid = %(tenant)s
      AND guid = ANY (%({level.name}_guids)s::uuid[])
    FOR SHARE
)""")
    union = "\nUNION ALL\n".join(f"SELECT * FROM {level.name}" for level in _ancestor_levels())
    return _statement("lock_parents", """
The parents a sync batch (or a restore) names, in the caller's tenant, locked FOR SHARE
top-down, so that a concurrent cascade delete either finishes before the batch reads them
or waits for the batch to commit and then cascades over its new rows too.
""", "WITH " + ", ".join(parts) + "\n" + union)


def upsert(level: Level, by_guid: bool) -> str:
    target = "(guid)" if by_guid else f"ON CONSTRAINT {level.table}_natural_key"
    columns = ("guid", *level.item_fields[1:], "is_active", "deleted_at")
    resolved = ["coalesce(i.guid, gen_random_uuid()) AS guid",
                *(f"i.{name}" for name in columns[1:])]
    written = level.written_columns
    if by_guid:
        how = ("by guid: an item updates the stored row with its guid or is inserted with "
               "it. A stored row of another tenant is never written: PostgreSQL 16 skips it "
               "(the WHERE), 15 refuses the statement (row-level security, an error that "
               "dao/sync.py rolls back to the savepoint before this statement); "
               "domain/sync.py answers both with a 403.")
    else:
        how = (f"by natural key (company_guid, {', '.join(level.natural_key)}): an item "
               "updates the stored row with its key or is inserted with a new guid. The key "
               "includes the tenant, so it only ever meets the tenant's own rows.")
    return _statement(f"upsert_{level.plural}_by_{'guid' if by_guid else 'natural_key'}", f"""
Upsert a batch of {level.plural} of one tenant, {how}

Only rows whose values differ are updated, so a repeated batch writes nothing. The
conflict check is a direct unique-index probe per item, never a join (BENCHMARKS.md,
lever 6). is_active/deleted_at are written on insert only (inherited from the nearest
parent); sync never changes them on a stored row. Returns the guid of each row written
and whether it was inserted: an item that matched a row and changed nothing returns
nothing.
""", f"""\
INSERT INTO {level.table} AS t (
    {_lines(columns, 4)}
)
SELECT {_lines(resolved, 7)}
FROM json_populate_recordset(NULL::{level.table}, %(items)s::json) AS i
WHERE i.company_guid = %(tenant)s
ON CONFLICT {target} DO UPDATE SET
    {_lines((f"{name} = EXCLUDED.{name}" for name in written), 4)},
    updated_at = now()
WHERE t.company_guid = %(tenant)s
  AND (
        {_lines(written, 8, "t.")}
  ) IS DISTINCT FROM (
        {_lines(written, 8, "EXCLUDED.")}
  )
RETURNING t.guid,
          (xmax = 0) AS inserted""")


SAVEPOINTS = [
    _statement("savepoint_upsert", """
Sent in one message with upsert_<level>_by_guid: the point to roll back to when row-level
security refuses it (a guid of another tenant).
""", "SAVEPOINT sync_upsert"),
    _statement("rollback_upsert", """
Undo the refused upsert and leave the transaction usable for the foreign-guid probe.
""", "ROLLBACK TO SAVEPOINT sync_upsert"),
]


def existing_rows(level: Level) -> str:
    key = level.natural_key
    columns = _lines(("idx integer", "guid uuid",
                      *(f"{name} {_sql_type(level, name)}" for name in key)), 8)
    return _statement(f"existing_{level.plural}", f"""
The stored {level.plural} that these items (index, guid, natural key) would update: by
guid for items with one, else by natural key; locked FOR UPDATE so that a concurrent
restore cannot bring one back while this transaction decides on it. Used only for items
under a soft-deleted parent (sync may not move an active row there).
""", f"""\
WITH item AS (
    SELECT *
    FROM json_to_recordset(%(items)s::json) AS i (
        {columns}
    )
), by_guid AS (
    SELECT item.idx,
           t.is_active
    FROM item
    JOIN {level.table} AS t
      ON t.company_guid = %(tenant)s
     AND t.guid = item.guid
    FOR UPDATE OF t
), by_natural_key AS (
    SELECT item.idx,
           t.is_active
    FROM item
    JOIN {level.table} AS t
      ON t.company_guid = %(tenant)s
     AND ({_inline(key, "t.")}) = ({_inline(key, "item.")})
    WHERE item.guid IS NULL
    FOR UPDATE OF t
)
SELECT idx, is_active FROM by_guid
UNION ALL
SELECT idx, is_active FROM by_natural_key""")


def _sql_type(level: Level, name: str) -> str:
    return next(column.sql_type for column in level.columns if column.name == name)


# --- hierarchy.sql: soft delete and restore, one statement per level -------------------

def _set(active: bool) -> str:
    if active:
        return "SET is_active = true,\n    deleted_at = NULL,\n    updated_at = now()"
    return "SET is_active = false,\n    deleted_at = now(),\n    updated_at = now()"


def cascade(level: Level) -> list[str]:
    statements = [_statement(f"lock_active_{level.name}", f"""
The active {level.name} a conditional delete (If-Match) acts on, locked before its current
representation is read, so that no write comes between the precondition and the delete.
""", f"""\
SELECT true AS found
FROM {level.table}
WHERE company_guid = %(tenant)s
  AND guid = %(guid)s
  AND is_active
FOR UPDATE""")]
    statements.append(_statement(f"delete_{level.name}", f"""
Mark one active {level.name} deleted; deleted_at = now() is the transaction's timestamp,
shared by every level of the cascade.
""", f"""\
UPDATE {level.table}
{_set(False)}
WHERE company_guid = %(tenant)s
  AND guid = %(guid)s
  AND is_active
RETURNING deleted_at"""))
    for below in level.descendants:
        statements.append(_statement(f"delete_{below.plural}_of_{level.name}", f"""
Mark the active {below.plural} under one {level.name} deleted with the same deleted_at.
""", f"""\
UPDATE {below.table}
{_set(False)}
WHERE company_guid = %(tenant)s
  AND {level.guid_column} = %(guid)s
  AND is_active"""))
    parents = _lines(level.parent_columns, 7) if level.parents else "NULL AS no_parent"
    statements.append(_statement(f"lock_deleted_{level.name}", f"""
The deleted {level.name} to restore, locked, with its parents.
""", f"""\
SELECT deleted_at,
       {parents}
FROM {level.table}
WHERE company_guid = %(tenant)s
  AND guid = %(guid)s
  AND NOT is_active
FOR UPDATE"""))
    statements.append(_statement(f"restore_{level.name}", f"""
Bring back one (locked, deleted) {level.name}.
""", f"""\
UPDATE {level.table}
{_set(True)}
WHERE company_guid = %(tenant)s
  AND guid = %(guid)s
  AND NOT is_active"""))
    for below in level.descendants:
        statements.append(_statement(f"restore_{below.plural}_of_{level.name}", f"""
Bring back exactly the {below.plural} the {level.name}'s cascade deleted: same deleted_at.
Rows deleted earlier on their own keep their older deleted_at and stay deleted.
""", f"""\
UPDATE {below.table}
{_set(True)}
WHERE company_guid = %(tenant)s
  AND {level.guid_column} = %(guid)s
  AND NOT is_active
  AND deleted_at = %(deleted_at)s"""))
    return statements


# --- changes.sql: the change feed -------------------------------------------------------

def changes_page(level: Level) -> str:
    fields = _lines((f"t.{name}" for name in level.fields), 15)
    return _statement(f"changes_{level.plural}", f"""
One page of the change feed of {level.plural}: the tenant's rows written after the position
(after_xid, after_guid) in (change_xid, guid) order, each in full (soft deletes too: the
tombstone is the row with is_active false), as a JSON array built by PostgreSQL.

Commit-safe: only rows whose change_xid is below the snapshot's xmin are served. Every
transaction below xmin has ended, so no row can later commit with a change_xid at or before
the returned position; a transaction still open shows up on a later page. NULL after_xid:
from the beginning. One range scan of {level.table}_changes_idx; a caught-up poll is one
probe. last_key ("<change_xid> <guid>" of the last row) is the next position.
""", f"""\
WITH page AS (
    SELECT t.change_xid,
           t.guid AS position_guid,
           item
    FROM {level.table} AS t
    CROSS JOIN LATERAL (
        SELECT {fields}
    ) AS item
    WHERE t.company_guid = %(tenant)s
      AND (%(after_xid)s::xid8 IS NULL
           OR (t.change_xid, t.guid) > (%(after_xid)s::xid8, %(after_guid)s::uuid))
      AND t.change_xid < pg_snapshot_xmin(pg_current_snapshot())
    ORDER BY t.change_xid,
             t.guid
    LIMIT %(limit)s
)
SELECT (SELECT count(*) FROM page) AS row_count,
       (SELECT change_xid || ' ' || position_guid
        FROM page
        ORDER BY change_xid DESC, position_guid DESC
        LIMIT 1) AS last_key,
       (SELECT coalesce(json_agg(item ORDER BY change_xid, position_guid), '[]')::text
        FROM page) AS body""")


def changes() -> list[str]:
    """The change feed's statements (GET /api/v1/changes/<level>)."""
    return [changes_page(level) for level in LEVELS.values()]


# --- export.sql: the streaming export ---------------------------------------------------

_EXPORT_FILTERS = """\
WHERE t.company_guid = %(tenant)s
  AND (%(project_guid)s::uuid IS NULL OR t.project_guid = %(project_guid)s)
  AND (%(component_guid)s::uuid IS NULL OR t.component_guid = %(component_guid)s)
  AND (%(assembly_guid)s::uuid IS NULL OR t.assembly_guid = %(assembly_guid)s)
  AND (t.is_active OR %(include_inactive)s)
ORDER BY t.created_at,
         t.guid"""


def _csv_value(name: str) -> str:
    """The CSV field of column `name` as text, NULL for an empty field (array_to_string
    writes NULL as nothing). Text is quoted as RFC 4180 has it when it holds a comma, a
    quote, CR or LF, and when it is empty (so "" is an empty string, nothing is NULL);
    timestamps are the JSON's ISO 8601 text; booleans true/false; uuids and integers as
    PostgreSQL writes them."""
    column = f"t.{name}"
    sql_type = _sql_type(LEVELS["piece"], name)
    if sql_type == "text":
        return (f"CASE WHEN {column} = '' OR {column} ~ '[\",\\r\\n]'"
                f" THEN '\"' || replace({column}, '\"', '\"\"') || '\"'"
                f" ELSE {column} END")
    if sql_type == "timestamptz":
        return f"to_json({column}) #>> ARRAY[]::text[]"
    return f"{column}::text"


def _declare_export(name: str, doc: str, select: str, join: str = "") -> str:
    return _statement(name, doc + """

The cursor reads one snapshot in list order (created_at, guid): a range scan of the order
index for the filters given, so rows stream without a sort, and each FETCH is a batch. Its
transaction (read only, as pieces_app, the tenant set) ends with ROLLBACK, which closes it.
""", f"""\
DECLARE pieces_export NO SCROLL CURSOR FOR
{select}
FROM pieces AS t{join}
{_EXPORT_FILTERS}""")


def export() -> list[str]:
    """The streaming export's statements (GET /api/v1/pieces/export)."""
    parents = _PARENT_CHECKS.rstrip().rstrip(",")
    json_fields = _projection((f"t.{name}" for name in DETAIL_FIELDS), 8)
    csv_fields = _projection((_csv_value(name) for name in DETAIL_FIELDS), 11)
    return [
        _statement("export_parents", """
The export's parent filters, checked as the list checks them (domain.pieces.check_parents
reads these columns): each parent visible in the tenant (soft-deleted ones only with
include_inactive), and the parents it names, to tell "does not belong" apart.
""", f"""\
{parents}
{_PARENTS_FOUND}"""),
        _declare_export("export_pieces_ndjson", """
The export as NDJSON: a cursor over the tenant's pieces with the list's filters, one
PieceDetail JSON object per row, built by PostgreSQL from the detail's column list (the
same JSON as the detail, GET /api/v1/pieces/<guid>).
""", "SELECT row_to_json(detail)::text AS line", f"""
CROSS JOIN LATERAL (
    SELECT
{json_fields}
) AS detail"""),
        _declare_export("export_pieces_csv", """
The export as CSV: a cursor over the tenant's pieces with the list's filters, one CSV
record per row (the detail's columns in its order, without the line end), built by
PostgreSQL.
""", f"""\
SELECT array_to_string(ARRAY[
{csv_fields}
       ], ',', '') AS line"""),
    ]


def files() -> dict[str, str]:
    """{file name: its whole text} of every rendered file."""
    sync = [lock_parents(), *SAVEPOINTS]
    for level in LEVELS.values():
        sync += [upsert(level, True), upsert(level, False)]
        if level.parents:
            sync.append(existing_rows(level))
    hierarchy = [statement for level in LEVELS.values() for statement in cascade(level)]
    rendered = {
        "pieces.sql": [list_pieces(), list_pieces_deep(), list_validator(), count_planned(),
                       get_piece()],
        "sync.sql": sync,
        "hierarchy.sql": hierarchy,
        "changes.sql": changes(),
        "export.sql": export(),
    }
    return {name: HEADER + "\n" + "\n".join(statements)
            for name, statements in rendered.items() if statements}


def stale(directory: Path = SQL_DIR) -> list[str]:
    """The rendered files whose checked-in text differs from their rendering."""
    return [name for name, text in files().items()
            if not (directory / name).exists() or (directory / name).read_text() != text]


def write(directory: Path = SQL_DIR) -> list[str]:
    """Rewrite the stale files; return their names."""
    changed = stale(directory)
    rendered = files()
    for name in changed:
        (directory / name).write_text(rendered[name])
    return changed



if __name__ == "__main__":  # make sql
    changed = write()
    print("rewrote " + ", ".join(f"sql/{name}" for name in changed) if changed
          else "sql/ is up to date")
