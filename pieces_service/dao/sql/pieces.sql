-- Rendered from pieces_service/catalogue.py by pieces_service/dao/render.py
-- (`make sql`). Edit those, not this file: tests/dao/test_rendered_sql.py checks
-- that the two agree.

-- name: list_pieces
-- One page of pieces as a JSON array built by PostgreSQL, plus the parent checks the
-- endpoint needs, in a single round trip. Order: created_at, guid (total and stable). A
-- NULL filter parameter means "no filter". Sent prepared (db.OneMessageReads), the
-- statement is first specialized to the filters given (dao.specialized: each optional
-- filter becomes its condition, or "true"), so one plan serves every value; sent as text,
-- psycopg2 inlines the values and the planner folds those branches itself.
-- after_us/after_guid: the keyset cursor (created_at in microseconds since the epoch, so
-- its text never depends on a time zone or an ISO parser). last_key is the next cursor.
-- For offsets below dao.pieces.DEEP_OFFSET (list_pieces_deep serves the others).
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
), page AS (
    SELECT pieces.created_at,
           pieces.guid,
           item
    FROM pieces
    CROSS JOIN LATERAL (
        SELECT
        -- fields: one a line, in the catalogue's order (dao.narrowed keeps a request's)
        pieces.guid,
        pieces.piece_id,
        pieces.project_guid,
        pieces.component_guid,
        pieces.assembly_guid,
        pieces.barcode,
        pieces.outer_length,
        pieces.angle_left,
        pieces.angle_right,
        pieces.is_active,
        pieces.deleted_at,
        pieces.company_guid,
        pieces.created_at
        -- end of fields
    ) AS item
    WHERE pieces.company_guid = %(tenant)s
      AND (%(project_guid)s::uuid IS NULL OR pieces.project_guid = %(project_guid)s)
      AND (%(component_guid)s::uuid IS NULL OR pieces.component_guid = %(component_guid)s)
      AND (%(assembly_guid)s::uuid IS NULL OR pieces.assembly_guid = %(assembly_guid)s)
      AND (%(barcode)s::text IS NULL OR pieces.barcode = %(barcode)s)
      AND (%(piece_id)s::text IS NULL OR pieces.piece_id = %(piece_id)s)
      AND (pieces.is_active OR %(include_inactive)s)
      AND (%(after_us)s::bigint IS NULL
           OR (pieces.created_at, pieces.guid) > (
               timestamptz 'epoch' + %(after_us)s * interval '1 microsecond',
               %(after_guid)s::uuid
           ))
    ORDER BY created_at,
             guid
    LIMIT %(limit)s
    OFFSET %(offset)s
), bound AS (
    SELECT created_at,
           guid
    FROM page
    WHERE (SELECT count(*) FROM page) = %(limit)s
    ORDER BY created_at DESC,
             guid DESC
    LIMIT 1
), upper AS MATERIALIZED (
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
        WHERE pieces.company_guid = %(tenant)s
          AND (%(project_guid)s::uuid IS NULL OR pieces.project_guid = %(project_guid)s)
          AND (%(component_guid)s::uuid IS NULL OR pieces.component_guid = %(component_guid)s)
          AND (%(assembly_guid)s::uuid IS NULL OR pieces.assembly_guid = %(assembly_guid)s)
          AND (%(barcode)s::text IS NULL OR pieces.barcode = %(barcode)s)
          AND (%(piece_id)s::text IS NULL OR pieces.piece_id = %(piece_id)s)
          AND (%(after_us)s::bigint IS NULL
               OR (pieces.created_at, pieces.guid) > (
                   timestamptz 'epoch' + %(after_us)s * interval '1 microsecond',
                   %(after_guid)s::uuid
               ))
          AND (created_at, guid) <= (upper.last_created_at, upper.last_guid)
    ) AS counted
), counted AS (
    SELECT count(*) AS total,
           count(*) FILTER (WHERE (created_at, guid) <= (
               timestamptz 'epoch' + %(after_us)s * interval '1 microsecond',
               %(after_guid)s::uuid
           )) AS before_cursor
    FROM pieces
    WHERE pieces.company_guid = %(tenant)s
      AND (%(project_guid)s::uuid IS NULL OR pieces.project_guid = %(project_guid)s)
      AND (%(component_guid)s::uuid IS NULL OR pieces.component_guid = %(component_guid)s)
      AND (%(assembly_guid)s::uuid IS NULL OR pieces.assembly_guid = %(assembly_guid)s)
      AND (%(barcode)s::text IS NULL OR pieces.barcode = %(barcode)s)
      AND (%(piece_id)s::text IS NULL OR pieces.piece_id = %(piece_id)s)
      AND (pieces.is_active OR %(include_inactive)s)
      AND %(count_exact)s
)
SELECT EXISTS (SELECT FROM project) AS project_found,
       EXISTS (SELECT FROM component) AS component_found,
       (SELECT project_guid FROM component) AS component_project_guid,
       EXISTS (SELECT FROM assembly) AS assembly_found,
       (SELECT component_guid FROM assembly) AS assembly_component_guid,
       (SELECT project_guid FROM assembly) AS assembly_project_guid,
       (SELECT count(*) FROM page) AS row_count,
       (SELECT (extract(epoch FROM created_at) * 1000000)::bigint || ' ' || guid
        FROM page
        ORDER BY created_at DESC, guid DESC
        LIMIT 1) AS last_key,
       (SELECT coalesce(json_agg(item ORDER BY created_at, guid), '[]')::text
        FROM page) AS body,
       (SELECT rows_in_range FROM range) AS rows_in_range,
       (SELECT newest_change FROM range) AS newest_change,
       pg_snapshot_xmin(pg_current_snapshot())::text AS horizon,
       (SELECT total FROM counted) AS total,
       (SELECT before_cursor FROM counted) AS before_cursor;

-- name: list_pieces_deep
-- list_pieces for deep offsets: skip rows in an index-only scan of the order index (it
-- INCLUDEs is_active), then fetch just the page's rows by primary key. On shallow pages
-- the extra join costs more than it saves (BENCHMARKS.md). No validator (NULL): the page
-- is tagged by its body's hash.
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
), page_keys AS (
    SELECT guid
    FROM pieces
    WHERE pieces.company_guid = %(tenant)s
      AND (%(project_guid)s::uuid IS NULL OR pieces.project_guid = %(project_guid)s)
      AND (%(component_guid)s::uuid IS NULL OR pieces.component_guid = %(component_guid)s)
      AND (%(assembly_guid)s::uuid IS NULL OR pieces.assembly_guid = %(assembly_guid)s)
      AND (%(barcode)s::text IS NULL OR pieces.barcode = %(barcode)s)
      AND (%(piece_id)s::text IS NULL OR pieces.piece_id = %(piece_id)s)
      AND (pieces.is_active OR %(include_inactive)s)
      AND (%(after_us)s::bigint IS NULL
           OR (pieces.created_at, pieces.guid) > (
               timestamptz 'epoch' + %(after_us)s * interval '1 microsecond',
               %(after_guid)s::uuid
           ))
    ORDER BY created_at,
             guid
    LIMIT %(limit)s
    OFFSET %(offset)s
), page AS (
    SELECT pieces.created_at,
           pieces.guid,
           item
    FROM pieces
    CROSS JOIN LATERAL (
        SELECT
        -- fields: one a line, in the catalogue's order (dao.narrowed keeps a request's)
        pieces.guid,
        pieces.piece_id,
        pieces.project_guid,
        pieces.component_guid,
        pieces.assembly_guid,
        pieces.barcode,
        pieces.outer_length,
        pieces.angle_left,
        pieces.angle_right,
        pieces.is_active,
        pieces.deleted_at,
        pieces.company_guid,
        pieces.created_at
        -- end of fields
    ) AS item
    WHERE pieces.company_guid = %(tenant)s
      AND pieces.guid IN (SELECT guid FROM page_keys)
), counted AS (
    SELECT count(*) AS total,
           count(*) FILTER (WHERE (created_at, guid) <= (
               timestamptz 'epoch' + %(after_us)s * interval '1 microsecond',
               %(after_guid)s::uuid
           )) AS before_cursor
    FROM pieces
    WHERE pieces.company_guid = %(tenant)s
      AND (%(project_guid)s::uuid IS NULL OR pieces.project_guid = %(project_guid)s)
      AND (%(component_guid)s::uuid IS NULL OR pieces.component_guid = %(component_guid)s)
      AND (%(assembly_guid)s::uuid IS NULL OR pieces.assembly_guid = %(assembly_guid)s)
      AND (%(barcode)s::text IS NULL OR pieces.barcode = %(barcode)s)
      AND (%(piece_id)s::text IS NULL OR pieces.piece_id = %(piece_id)s)
      AND (pieces.is_active OR %(include_inactive)s)
      AND %(count_exact)s
)
SELECT EXISTS (SELECT FROM project) AS project_found,
       EXISTS (SELECT FROM component) AS component_found,
       (SELECT project_guid FROM component) AS component_project_guid,
       EXISTS (SELECT FROM assembly) AS assembly_found,
       (SELECT component_guid FROM assembly) AS assembly_component_guid,
       (SELECT project_guid FROM assembly) AS assembly_project_guid,
       (SELECT count(*) FROM page) AS row_count,
       (SELECT (extract(epoch FROM created_at) * 1000000)::bigint || ' ' || guid
        FROM page
        ORDER BY created_at DESC, guid DESC
        LIMIT 1) AS last_key,
       (SELECT coalesce(json_agg(item ORDER BY created_at, guid), '[]')::text
        FROM page) AS body,
       NULL::bigint AS rows_in_range,
       NULL::text AS newest_change,
       NULL::text AS horizon,
       (SELECT total FROM counted) AS total,
       (SELECT before_cursor FROM counted) AS before_cursor;

-- name: list_validator
-- The list's ETag for a conditional GET, without building the page: the parent checks of
-- list_pieces and the validator of the range the page covers (its last row is found by
-- skipping end_offset = offset + limit - 1 rows in an index-only scan). Same columns as
-- list_pieces' checks and validator; the page itself is not read.
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
), bound AS (
    SELECT created_at,
           guid
    FROM pieces
    WHERE pieces.company_guid = %(tenant)s
      AND (%(project_guid)s::uuid IS NULL OR pieces.project_guid = %(project_guid)s)
      AND (%(component_guid)s::uuid IS NULL OR pieces.component_guid = %(component_guid)s)
      AND (%(assembly_guid)s::uuid IS NULL OR pieces.assembly_guid = %(assembly_guid)s)
      AND (%(barcode)s::text IS NULL OR pieces.barcode = %(barcode)s)
      AND (%(piece_id)s::text IS NULL OR pieces.piece_id = %(piece_id)s)
      AND (pieces.is_active OR %(include_inactive)s)
      AND (%(after_us)s::bigint IS NULL
           OR (pieces.created_at, pieces.guid) > (
               timestamptz 'epoch' + %(after_us)s * interval '1 microsecond',
               %(after_guid)s::uuid
           ))
    ORDER BY created_at,
             guid
    LIMIT 1
    OFFSET %(end_offset)s
), upper AS MATERIALIZED (
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
        WHERE pieces.company_guid = %(tenant)s
          AND (%(project_guid)s::uuid IS NULL OR pieces.project_guid = %(project_guid)s)
          AND (%(component_guid)s::uuid IS NULL OR pieces.component_guid = %(component_guid)s)
          AND (%(assembly_guid)s::uuid IS NULL OR pieces.assembly_guid = %(assembly_guid)s)
          AND (%(barcode)s::text IS NULL OR pieces.barcode = %(barcode)s)
          AND (%(piece_id)s::text IS NULL OR pieces.piece_id = %(piece_id)s)
          AND (%(after_us)s::bigint IS NULL
               OR (pieces.created_at, pieces.guid) > (
                   timestamptz 'epoch' + %(after_us)s * interval '1 microsecond',
                   %(after_guid)s::uuid
               ))
          AND (created_at, guid) <= (upper.last_created_at, upper.last_guid)
    ) AS counted
), counted AS (
    SELECT count(*) AS total,
           count(*) FILTER (WHERE (created_at, guid) <= (
               timestamptz 'epoch' + %(after_us)s * interval '1 microsecond',
               %(after_guid)s::uuid
           )) AS before_cursor
    FROM pieces
    WHERE pieces.company_guid = %(tenant)s
      AND (%(project_guid)s::uuid IS NULL OR pieces.project_guid = %(project_guid)s)
      AND (%(component_guid)s::uuid IS NULL OR pieces.component_guid = %(component_guid)s)
      AND (%(assembly_guid)s::uuid IS NULL OR pieces.assembly_guid = %(assembly_guid)s)
      AND (%(barcode)s::text IS NULL OR pieces.barcode = %(barcode)s)
      AND (%(piece_id)s::text IS NULL OR pieces.piece_id = %(piece_id)s)
      AND (pieces.is_active OR %(include_inactive)s)
      AND %(count_exact)s
)
SELECT EXISTS (SELECT FROM project) AS project_found,
       EXISTS (SELECT FROM component) AS component_found,
       (SELECT project_guid FROM component) AS component_project_guid,
       EXISTS (SELECT FROM assembly) AS assembly_found,
       (SELECT component_guid FROM assembly) AS assembly_component_guid,
       (SELECT project_guid FROM assembly) AS assembly_project_guid,
       (SELECT rows_in_range FROM range) AS rows_in_range,
       (SELECT newest_change FROM range) AS newest_change,
       pg_snapshot_xmin(pg_current_snapshot())::text AS horizon,
       (SELECT total FROM counted) AS total,
       (SELECT before_cursor FROM counted) AS before_cursor;

-- name: count_planned
-- The planner's estimate of the rows the list's filters match, for `Prefer:
-- count=planned`: the "Plan Rows" of the plan's top node. Nothing is read but the table's
-- statistics, so it costs the same on any size; run as pieces_app, the estimate includes
-- the row-level security policy (its tenant condition is the filter's own, so it does not
-- shrink it).
EXPLAIN (FORMAT JSON)
SELECT
FROM pieces
    WHERE pieces.company_guid = %(tenant)s
      AND (%(project_guid)s::uuid IS NULL OR pieces.project_guid = %(project_guid)s)
      AND (%(component_guid)s::uuid IS NULL OR pieces.component_guid = %(component_guid)s)
      AND (%(assembly_guid)s::uuid IS NULL OR pieces.assembly_guid = %(assembly_guid)s)
      AND (%(barcode)s::text IS NULL OR pieces.barcode = %(barcode)s)
      AND (%(piece_id)s::text IS NULL OR pieces.piece_id = %(piece_id)s)
      AND (pieces.is_active OR %(include_inactive)s);

-- name: get_piece
-- One piece (PieceDetail) as JSON, with the names of any required fields that are NULL
-- (checked on the stored row, whatever fields= asks for) and, when the row is not visible,
-- the tenant owning the GUID (from pieces_guid_owners, so "someone else's" can be told
-- apart from "absent"). Soft-deleted rows count only with include_inactive.
WITH owner AS (
    SELECT company_guid
    FROM pieces_guid_owners('piece', ARRAY[%(guid)s::uuid])
), detail AS (
    SELECT item,
           array_remove(ARRAY[
               CASE WHEN pieces.guid IS NULL THEN 'guid' END,
               CASE WHEN pieces.piece_id IS NULL THEN 'piece_id' END,
               CASE WHEN pieces.project_guid IS NULL THEN 'project_guid' END,
               CASE WHEN pieces.component_guid IS NULL THEN 'component_guid' END,
               CASE WHEN pieces.company_guid IS NULL THEN 'company_guid' END,
               CASE WHEN pieces.is_active IS NULL THEN 'is_active' END,
               CASE WHEN pieces.created_at IS NULL THEN 'created_at' END
           ], NULL) AS missing_fields
    FROM pieces
    CROSS JOIN LATERAL (
        SELECT
            -- fields: one a line, in the catalogue's order (dao.narrowed keeps a request's)
            pieces.guid,
            pieces.piece_id,
            pieces.project_guid,
            pieces.component_guid,
            pieces.assembly_guid,
            pieces.barcode,
            pieces.outer_length,
            pieces.angle_left,
            pieces.angle_right,
            pieces.is_active,
            pieces.deleted_at,
            pieces.company_guid,
            pieces.created_at,
            pieces.updated_at,
            pieces.inner_length,
            pieces.assembly_width,
            pieces.assembly_height,
            pieces.reinforcement_length,
            pieces.other_length,
            pieces.bar_rest,
            pieces.bar_length,
            pieces.bar_cutting_tolerance,
            pieces.profile_width,
            pieces.profile_height,
            pieces.welding_tolerance,
            pieces.orientation,
            pieces.trolley,
            pieces.cell,
            pieces.trolley_cell,
            pieces.trolley_size,
            pieces.parent_assembly_trolley_cell,
            pieces.mullion_trolley_cell,
            pieces.glazing_bead_trolley_cell,
            pieces.operations,
            pieces.component_code,
            pieces.component_description,
            pieces.info2,
            pieces.info3,
            pieces.client,
            pieces.dealer,
            pieces.project_description,
            pieces.project_phase,
            pieces.reinforcement_code,
            pieces.hardware_info,
            pieces.glass_info,
            pieces.project_number,
            pieces.component_number,
            pieces.water_handle,
            pieces.segment_order,
            pieces.cutting_pattern,
            pieces.fixing_mode,
            pieces.material_type,
            pieces.project_code_parent,
            pieces.bar_id,
            pieces.profile_code,
            pieces.profile_name,
            pieces.lamination,
            pieces.gasket,
            pieces.profile_color,
            pieces.profile_type_ra,
            pieces.profile_type,
            pieces.profile_code_with_color
            -- end of fields
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
LEFT JOIN detail ON true;
