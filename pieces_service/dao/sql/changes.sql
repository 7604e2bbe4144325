-- Rendered from pieces_service/catalogue.py by pieces_service/dao/render.py
-- (`make sql`). Edit those, not this file: tests/dao/test_rendered_sql.py checks
-- that the two agree.

-- name: changes_projects
-- One page of the change feed of projects: the tenant's rows written after the position
-- (after_xid, after_guid) in (change_xid, guid) order, each in full (soft deletes too: the
-- tombstone is the row with is_active false), as a JSON array built by PostgreSQL.
-- Commit-safe: only rows whose change_xid is below the snapshot's xmin are served. Every
-- transaction below xmin has ended, so no row can later commit with a change_xid at or
-- before the returned position; a transaction still open shows up on a later page. NULL
-- after_xid: from the beginning. One range scan of projects_changes_idx; a caught-up poll
-- is one probe. last_key ("<change_xid> <guid>" of the last row) is the next position.
WITH page AS (
    SELECT t.change_xid,
           t.guid AS position_guid,
           item
    FROM projects AS t
    CROSS JOIN LATERAL (
        SELECT t.guid,
               t.company_guid,
               t.code,
               t.name,
               t.is_active,
               t.deleted_at,
               t.created_at,
               t.updated_at
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
        FROM page) AS body;

-- name: changes_components
-- One page of the change feed of components: the tenant's rows written after the position
-- (after_xid, after_guid) in (change_xid, guid) order, each in full (soft deletes too: the
-- tombstone is the row with is_active false), as a JSON array built by PostgreSQL.
-- Commit-safe: only rows whose change_xid is below the snapshot's xmin are served. Every
-- transaction below xmin has ended, so no row can later commit with a change_xid at or
-- before the returned position; a transaction still open shows up on a later page. NULL
-- after_xid: from the beginning. One range scan of components_changes_idx; a caught-up
-- poll is one probe. last_key ("<change_xid> <guid>" of the last row) is the next
-- position.
WITH page AS (
    SELECT t.change_xid,
           t.guid AS position_guid,
           item
    FROM components AS t
    CROSS JOIN LATERAL (
        SELECT t.guid,
               t.company_guid,
               t.project_guid,
               t.code,
               t.name,
               t.is_active,
               t.deleted_at,
               t.created_at,
               t.updated_at
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
        FROM page) AS body;

-- name: changes_assemblies
-- One page of the change feed of assemblies: the tenant's rows written after the position
-- (after_xid, after_guid) in (change_xid, guid) order, each in full (soft deletes too: the
-- tombstone is the row with is_active false), as a JSON array built by PostgreSQL.
-- Commit-safe: only rows whose change_xid is below the snapshot's xmin are served. Every
-- transaction below xmin has ended, so no row can later commit with a change_xid at or
-- before the returned position; a transaction still open shows up on a later page. NULL
-- after_xid: from the beginning. One range scan of assemblies_changes_idx; a caught-up
-- poll is one probe. last_key ("<change_xid> <guid>" of the last row) is the next
-- position.
WITH page AS (
    SELECT t.change_xid,
           t.guid AS position_guid,
           item
    FROM assemblies AS t
    CROSS JOIN LATERAL (
        SELECT t.guid,
               t.company_guid,
               t.project_guid,
               t.component_guid,
               t.code,
               t.name,
               t.is_active,
               t.deleted_at,
               t.created_at,
               t.updated_at
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
        FROM page) AS body;

-- name: changes_pieces
-- One page of the change feed of pieces: the tenant's rows written after the position
-- (after_xid, after_guid) in (change_xid, guid) order, each in full (soft deletes too: the
-- tombstone is the row with is_active false), as a JSON array built by PostgreSQL.
-- Commit-safe: only rows whose change_xid is below the snapshot's xmin are served. Every
-- transaction below xmin has ended, so no row can later commit with a change_xid at or
-- before the returned position; a transaction still open shows up on a later page. NULL
-- after_xid: from the beginning. One range scan of pieces_changes_idx; a caught-up poll is
-- one probe. last_key ("<change_xid> <guid>" of the last row) is the next position.
WITH page AS (
    SELECT t.change_xid,
           t.guid AS position_guid,
           item
    FROM pieces AS t
    CROSS JOIN LATERAL (
        SELECT t.guid,
               t.piece_id,
               t.project_guid,
               t.component_guid,
               t.assembly_guid,
               t.barcode,
               t.outer_length,
               t.angle_left,
               t.angle_right,
               t.is_active,
               t.deleted_at,
               t.company_guid,
               t.created_at,
               t.updated_at,
               t.inner_length,
               t.assembly_width,
               t.assembly_height,
               t.reinforcement_length,
               t.other_length,
               t.bar_rest,
               t.bar_length,
               t.bar_cutting_tolerance,
               t.profile_width,
               t.profile_height,
               t.welding_tolerance,
               t.orientation,
               t.trolley,
               t.cell,
               t.trolley_cell,
               t.trolley_size,
               t.parent_assembly_trolley_cell,
               t.mullion_trolley_cell,
               t.glazing_bead_trolley_cell,
               t.operations,
               t.component_code,
               t.component_description,
               t.info2,
               t.info3,
               t.client,
               t.dealer,
               t.project_description,
               t.project_phase,
               t.reinforcement_code,
               t.hardware_info,
               t.glass_info,
               t.project_number,
               t.component_number,
               t.water_handle,
               t.segment_order,
               t.cutting_pattern,
               t.fixing_mode,
               t.material_type,
               t.project_code_parent,
               t.bar_id,
               t.profile_code,
               t.profile_name,
               t.lamination,
               t.gasket,
               t.profile_color,
               t.profile_type_ra,
               t.profile_type,
               t.profile_code_with_color
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
        FROM page) AS body;
