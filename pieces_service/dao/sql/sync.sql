-- Rendered from pieces_service/catalogue.py by pieces_service/dao/render.py
-- (`make sql`). Edit those, not this file: tests/dao/test_rendered_sql.py checks
-- that the two agree.

-- name: lock_parents
-- The parents a sync batch (or a restore) names, in the caller's tenant, locked FOR SHARE
-- top-down, so that a concurrent cascade delete either finishes before the batch reads
-- them or waits for the batch to commit and then cascades over its new rows too.
WITH project AS (
    SELECT 'project'::text AS level,
           guid,
           guid AS project_guid,
           NULL::uuid AS component_guid,
           NULL::uuid AS assembly_guid,
           is_active,
           deleted_at
    FROM projects
    WHERE company_guid = %(tenant)s
      AND guid = ANY (%(project_guids)s::uuid[])
    FOR SHARE
), component AS (
    SELECT 'component'::text AS level,
           guid,
           project_guid,
           guid AS component_guid,
           NULL::uuid AS assembly_guid,
           is_active,
           deleted_at
    FROM components
    WHERE company_guid = %(tenant)s
      AND guid = ANY (%(component_guids)s::uuid[])
    FOR SHARE
), assembly AS (
    SELECT 'assembly'::text AS level,
           guid,
           project_guid,
           component_guid,
           guid AS assembly_guid,
           is_active,
           deleted_at
    FROM assemblies
    WHERE company_guid = %(tenant)s
      AND guid = ANY (%(assembly_guids)s::uuid[])
    FOR SHARE
)
SELECT * FROM project
UNION ALL
SELECT * FROM component
UNION ALL
SELECT * FROM assembly;

-- name: savepoint_upsert
-- Sent in one message with upsert_<level>_by_guid: the point to roll back to when row-
-- level security refuses it (a guid of another tenant).
SAVEPOINT sync_upsert;

-- name: rollback_upsert
-- Undo the refused upsert and leave the transaction usable for the foreign-guid probe.
ROLLBACK TO SAVEPOINT sync_upsert;

-- name: upsert_projects_by_guid
-- Upsert a batch of projects of one tenant, by guid: an item updates the stored row with
-- its guid or is inserted with it. A stored row of another tenant is never written:
-- PostgreSQL 16 skips it (the WHERE), 15 refuses the statement (row-level security, an
-- error that dao/sync.py rolls back to the savepoint before this statement);
-- domain/sync.py answers both with a 403.
-- Only rows whose values differ are updated, so a repeated batch writes nothing. The
-- conflict check is a direct unique-index probe per item, never a join (BENCHMARKS.md,
-- lever 6). is_active/deleted_at are written on insert only (inherited from the nearest
-- parent); sync never changes them on a stored row. Returns the guid of each row written
-- and whether it was inserted: an item that matched a row and changed nothing returns
-- nothing.
INSERT INTO projects AS t (
    guid,
    company_guid,
    code,
    name,
    is_active,
    deleted_at
)
SELECT coalesce(i.guid, gen_random_uuid()) AS guid,
       i.company_guid,
       i.code,
       i.name,
       i.is_active,
       i.deleted_at
FROM json_populate_recordset(NULL::projects, %(items)s::json) AS i
WHERE i.company_guid = %(tenant)s
ON CONFLICT (guid) DO UPDATE SET
    code = EXCLUDED.code,
    name = EXCLUDED.name,
    updated_at = now()
WHERE t.company_guid = %(tenant)s
  AND (
        t.code,
        t.name
  ) IS DISTINCT FROM (
        EXCLUDED.code,
        EXCLUDED.name
  )
RETURNING t.guid,
          (xmax = 0) AS inserted;

-- name: upsert_projects_by_natural_key
-- Upsert a batch of projects of one tenant, by natural key (company_guid, code): an item
-- updates the stored row with its key or is inserted with a new guid. The key includes the
-- tenant, so it only ever meets the tenant's own rows.
-- Only rows whose values differ are updated, so a repeated batch writes nothing. The
-- conflict check is a direct unique-index probe per item, never a join (BENCHMARKS.md,
-- lever 6). is_active/deleted_at are written on insert only (inherited from the nearest
-- parent); sync never changes them on a stored row. Returns the guid of each row written
-- and whether it was inserted: an item that matched a row and changed nothing returns
-- nothing.
INSERT INTO projects AS t (
    guid,
    company_guid,
    code,
    name,
    is_active,
    deleted_at
)
SELECT coalesce(i.guid, gen_random_uuid()) AS guid,
       i.company_guid,
       i.code,
       i.name,
       i.is_active,
       i.deleted_at
FROM json_populate_recordset(NULL::projects, %(items)s::json) AS i
WHERE i.company_guid = %(tenant)s
ON CONFLICT ON CONSTRAINT projects_natural_key DO UPDATE SET
    code = EXCLUDED.code,
    name = EXCLUDED.name,
    updated_at = now()
WHERE t.company_guid = %(tenant)s
  AND (
        t.code,
        t.name
  ) IS DISTINCT FROM (
        EXCLUDED.code,
        EXCLUDED.name
  )
RETURNING t.guid,
          (xmax = 0) AS inserted;

-- name: upsert_components_by_guid
-- Upsert a batch of components of one tenant, by guid: an item updates the stored row with
-- its guid or is inserted with it. A stored row of another tenant is never written:
-- PostgreSQL 16 skips it (the WHERE), 15 refuses the statement (row-level security, an
-- error that dao/sync.py rolls back to the savepoint before this statement);
-- domain/sync.py answers both with a 403.
-- Only rows whose values differ are updated, so a repeated batch writes nothing. The
-- conflict check is a direct unique-index probe per item, never a join (BENCHMARKS.md,
-- lever 6). is_active/deleted_at are written on insert only (inherited from the nearest
-- parent); sync never changes them on a stored row. Returns the guid of each row written
-- and whether it was inserted: an item that matched a row and changed nothing returns
-- nothing.
INSERT INTO components AS t (
    guid,
    company_guid,
    project_guid,
    code,
    name,
    is_active,
    deleted_at
)
SELECT coalesce(i.guid, gen_random_uuid()) AS guid,
       i.company_guid,
       i.project_guid,
       i.code,
       i.name,
       i.is_active,
       i.deleted_at
FROM json_populate_recordset(NULL::components, %(items)s::json) AS i
WHERE i.company_guid = %(tenant)s
ON CONFLICT (guid) DO UPDATE SET
    project_guid = EXCLUDED.project_guid,
    code = EXCLUDED.code,
    name = EXCLUDED.name,
    updated_at = now()
WHERE t.company_guid = %(tenant)s
  AND (
        t.project_guid,
        t.code,
        t.name
  ) IS DISTINCT FROM (
        EXCLUDED.project_guid,
        EXCLUDED.code,
        EXCLUDED.name
  )
RETURNING t.guid,
          (xmax = 0) AS inserted;

-- name: upsert_components_by_natural_key
-- Upsert a batch of components of one tenant, by natural key (company_guid, project_guid,
-- code): an item updates the stored row with its key or is inserted with a new guid. The
-- key includes the tenant, so it only ever meets the tenant's own rows.
-- Only rows whose values differ are updated, so a repeated batch writes nothing. The
-- conflict check is a direct unique-index probe per item, never a join (BENCHMARKS.md,
-- lever 6). is_active/deleted_at are written on insert only (inherited from the nearest
-- parent); sync never changes them on a stored row. Returns the guid of each row written
-- and whether it was inserted: an item that matched a row and changed nothing returns
-- nothing.
INSERT INTO components AS t (
    guid,
    company_guid,
    project_guid,
    code,
    name,
    is_active,
    deleted_at
)
SELECT coalesce(i.guid, gen_random_uuid()) AS guid,
       i.company_guid,
       i.project_guid,
       i.code,
       i.name,
       i.is_active,
       i.deleted_at
FROM json_populate_recordset(NULL::components, %(items)s::json) AS i
WHERE i.company_guid = %(tenant)s
ON CONFLICT ON CONSTRAINT components_natural_key DO UPDATE SET
    project_guid = EXCLUDED.project_guid,
    code = EXCLUDED.code,
    name = EXCLUDED.name,
    updated_at = now()
WHERE t.company_guid = %(tenant)s
  AND (
        t.project_guid,
        t.code,
        t.name
  ) IS DISTINCT FROM (
        EXCLUDED.project_guid,
        EXCLUDED.code,
        EXCLUDED.name
  )
RETURNING t.guid,
          (xmax = 0) AS inserted;

-- name: existing_components
-- The stored components that these items (index, guid, natural key) would update: by guid
-- for items with one, else by natural key; locked FOR UPDATE so that a concurrent restore
-- cannot bring one back while this transaction decides on it. Used only for items under a
-- soft-deleted parent (sync may not move an active row there).
WITH item AS (
    SELECT *
    FROM json_to_recordset(%(items)s::json) AS i (
        idx integer,
        guid uuid,
        project_guid uuid,
        code text
    )
), by_guid AS (
    SELECT item.idx,
           t.is_active
    FROM item
    JOIN components AS t
      ON t.company_guid = %(tenant)s
     AND t.guid = item.guid
    FOR UPDATE OF t
), by_natural_key AS (
    SELECT item.idx,
           t.is_active
    FROM item
    JOIN components AS t
      ON t.company_guid = %(tenant)s
     AND (t.project_guid, t.code) = (item.project_guid, item.code)
    WHERE item.guid IS NULL
    FOR UPDATE OF t
)
SELECT idx, is_active FROM by_guid
UNION ALL
SELECT idx, is_active FROM by_natural_key;

-- name: upsert_assemblies_by_guid
-- Upsert a batch of assemblies of one tenant, by guid: an item updates the stored row with
-- its guid or is inserted with it. A stored row of another tenant is never written:
-- PostgreSQL 16 skips it (the WHERE), 15 refuses the statement (row-level security, an
-- error that dao/sync.py rolls back to the savepoint before this statement);
-- domain/sync.py answers both with a 403.
-- Only rows whose values differ are updated, so a repeated batch writes nothing. The
-- conflict check is a direct unique-index probe per item, never a join (BENCHMARKS.md,
-- lever 6). is_active/deleted_at are written on insert only (inherited from the nearest
-- parent); sync never changes them on a stored row. Returns the guid of each row written
-- and whether it was inserted: an item that matched a row and changed nothing returns
-- nothing.
INSERT INTO assemblies AS t (
    guid,
    company_guid,
    project_guid,
    component_guid,
    code,
    name,
    is_active,
    deleted_at
)
SELECT coalesce(i.guid, gen_random_uuid()) AS guid,
       i.company_guid,
       i.project_guid,
       i.component_guid,
       i.code,
       i.name,
       i.is_active,
       i.deleted_at
FROM json_populate_recordset(NULL::assemblies, %(items)s::json) AS i
WHERE i.company_guid = %(tenant)s
ON CONFLICT (guid) DO UPDATE SET
    project_guid = EXCLUDED.project_guid,
    component_guid = EXCLUDED.component_guid,
    code = EXCLUDED.code,
    name = EXCLUDED.name,
    updated_at = now()
WHERE t.company_guid = %(tenant)s
  AND (
        t.project_guid,
        t.component_guid,
        t.code,
        t.name
  ) IS DISTINCT FROM (
        EXCLUDED.project_guid,
        EXCLUDED.component_guid,
        EXCLUDED.code,
        EXCLUDED.name
  )
RETURNING t.guid,
          (xmax = 0) AS inserted;

-- name: upsert_assemblies_by_natural_key
-- Upsert a batch of assemblies of one tenant, by natural key (company_guid,
-- component_guid, code): an item updates the stored row with its key or is inserted with a
-- new guid. The key includes the tenant, so it only ever meets the tenant's own rows.
-- Only rows whose values differ are updated, so a repeated batch writes nothing. The
-- conflict check is a direct unique-index probe per item, never a join (BENCHMARKS.md,
-- lever 6). is_active/deleted_at are written on insert only (inherited from the nearest
-- parent); sync never changes them on a stored row. Returns the guid of each row written
-- and whether it was inserted: an item that matched a row and changed nothing returns
-- nothing.
INSERT INTO assemblies AS t (
    guid,
    company_guid,
    project_guid,
    component_guid,
    code,
    name,
    is_active,
    deleted_at
)
SELECT coalesce(i.guid, gen_random_uuid()) AS guid,
       i.company_guid,
       i.project_guid,
       i.component_guid,
       i.code,
       i.name,
       i.is_active,
       i.deleted_at
FROM json_populate_recordset(NULL::assemblies, %(items)s::json) AS i
WHERE i.company_guid = %(tenant)s
ON CONFLICT ON CONSTRAINT assemblies_natural_key DO UPDATE SET
    project_guid = EXCLUDED.project_guid,
    component_guid = EXCLUDED.component_guid,
    code = EXCLUDED.code,
    name = EXCLUDED.name,
    updated_at = now()
WHERE t.company_guid = %(tenant)s
  AND (
        t.project_guid,
        t.component_guid,
        t.code,
        t.name
  ) IS DISTINCT FROM (
        EXCLUDED.project_guid,
        EXCLUDED.component_guid,
        EXCLUDED.code,
        EXCLUDED.name
  )
RETURNING t.guid,
          (xmax = 0) AS inserted;

-- name: existing_assemblies
-- The stored assemblies that these items (index, guid, natural key) would update: by guid
-- for items with one, else by natural key; locked FOR UPDATE so that a concurrent restore
-- cannot bring one back while this transaction decides on it. Used only for items under a
-- soft-deleted parent (sync may not move an active row there).
WITH item AS (
    SELECT *
    FROM json_to_recordset(%(items)s::json) AS i (
        idx integer,
        guid uuid,
        component_guid uuid,
        code text
    )
), by_guid AS (
    SELECT item.idx,
           t.is_active
    FROM item
    JOIN assemblies AS t
      ON t.company_guid = %(tenant)s
     AND t.guid = item.guid
    FOR UPDATE OF t
), by_natural_key AS (
    SELECT item.idx,
           t.is_active
    FROM item
    JOIN assemblies AS t
      ON t.company_guid = %(tenant)s
     AND (t.component_guid, t.code) = (item.component_guid, item.code)
    WHERE item.guid IS NULL
    FOR UPDATE OF t
)
SELECT idx, is_active FROM by_guid
UNION ALL
SELECT idx, is_active FROM by_natural_key;

-- name: upsert_pieces_by_guid
-- Upsert a batch of pieces of one tenant, by guid: an item updates the stored row with its
-- guid or is inserted with it. A stored row of another tenant is never written: PostgreSQL
-- 16 skips it (the WHERE), 15 refuses the statement (row-level security, an error that
-- dao/sync.py rolls back to the savepoint before this statement); domain/sync.py answers
-- both with a 403.
-- Only rows whose values differ are updated, so a repeated batch writes nothing. The
-- conflict check is a direct unique-index probe per item, never a join (BENCHMARKS.md,
-- lever 6). is_active/deleted_at are written on insert only (inherited from the nearest
-- parent); sync never changes them on a stored row. Returns the guid of each row written
-- and whether it was inserted: an item that matched a row and changed nothing returns
-- nothing.
INSERT INTO pieces AS t (
    guid,
    company_guid,
    project_guid,
    component_guid,
    assembly_guid,
    piece_id,
    barcode,
    outer_length,
    inner_length,
    angle_left,
    angle_right,
    assembly_width,
    assembly_height,
    reinforcement_length,
    other_length,
    bar_rest,
    bar_length,
    bar_cutting_tolerance,
    profile_width,
    profile_height,
    welding_tolerance,
    orientation,
    trolley,
    cell,
    trolley_cell,
    trolley_size,
    parent_assembly_trolley_cell,
    mullion_trolley_cell,
    glazing_bead_trolley_cell,
    operations,
    component_code,
    component_description,
    info2,
    info3,
    client,
    dealer,
    project_description,
    project_phase,
    reinforcement_code,
    hardware_info,
    glass_info,
    project_number,
    component_number,
    water_handle,
    segment_order,
    cutting_pattern,
    fixing_mode,
    material_type,
    project_code_parent,
    bar_id,
    profile_code,
    profile_name,
    lamination,
    gasket,
    profile_color,
    profile_type_ra,
    profile_type,
    profile_code_with_color,
    is_active,
    deleted_at
)
SELECT coalesce(i.guid, gen_random_uuid()) AS guid,
       i.company_guid,
       i.project_guid,
       i.component_guid,
       i.assembly_guid,
       i.piece_id,
       i.barcode,
       i.outer_length,
       i.inner_length,
       i.angle_left,
       i.angle_right,
       i.assembly_width,
       i.assembly_height,
       i.reinforcement_length,
       i.other_length,
       i.bar_rest,
       i.bar_length,
       i.bar_cutting_tolerance,
       i.profile_width,
       i.profile_height,
       i.welding_tolerance,
       i.orientation,
       i.trolley,
       i.cell,
       i.trolley_cell,
       i.trolley_size,
       i.parent_assembly_trolley_cell,
       i.mullion_trolley_cell,
       i.glazing_bead_trolley_cell,
       i.operations,
       i.component_code,
       i.component_description,
       i.info2,
       i.info3,
       i.client,
       i.dealer,
       i.project_description,
       i.project_phase,
       i.reinforcement_code,
       i.hardware_info,
       i.glass_info,
       i.project_number,
       i.component_number,
       i.water_handle,
       i.segment_order,
       i.cutting_pattern,
       i.fixing_mode,
       i.material_type,
       i.project_code_parent,
       i.bar_id,
       i.profile_code,
       i.profile_name,
       i.lamination,
       i.gasket,
       i.profile_color,
       i.profile_type_ra,
       i.profile_type,
       i.profile_code_with_color,
       i.is_active,
       i.deleted_at
FROM json_populate_recordset(NULL::pieces, %(items)s::json) AS i
WHERE i.company_guid = %(tenant)s
ON CONFLICT (guid) DO UPDATE SET
    project_guid = EXCLUDED.project_guid,
    component_guid = EXCLUDED.component_guid,
    assembly_guid = EXCLUDED.assembly_guid,
    piece_id = EXCLUDED.piece_id,
    barcode = EXCLUDED.barcode,
    outer_length = EXCLUDED.outer_length,
    inner_length = EXCLUDED.inner_length,
    angle_left = EXCLUDED.angle_left,
    angle_right = EXCLUDED.angle_right,
    assembly_width = EXCLUDED.assembly_width,
    assembly_height = EXCLUDED.assembly_height,
    reinforcement_length = EXCLUDED.reinforcement_length,
    other_length = EXCLUDED.other_length,
    bar_rest = EXCLUDED.bar_rest,
    bar_length = EXCLUDED.bar_length,
    bar_cutting_tolerance = EXCLUDED.bar_cutting_tolerance,
    profile_width = EXCLUDED.profile_width,
    profile_height = EXCLUDED.profile_height,
    welding_tolerance = EXCLUDED.welding_tolerance,
    orientation = EXCLUDED.orientation,
    trolley = EXCLUDED.trolley,
    cell = EXCLUDED.cell,
    trolley_cell = EXCLUDED.trolley_cell,
    trolley_size = EXCLUDED.trolley_size,
    parent_assembly_trolley_cell = EXCLUDED.parent_assembly_trolley_cell,
    mullion_trolley_cell = EXCLUDED.mullion_trolley_cell,
    glazing_bead_trolley_cell = EXCLUDED.glazing_bead_trolley_cell,
    operations = EXCLUDED.operations,
    component_code = EXCLUDED.component_code,
    component_description = EXCLUDED.component_description,
    info2 = EXCLUDED.info2,
    info3 = EXCLUDED.info3,
    client = EXCLUDED.client,
    dealer = EXCLUDED.dealer,
    project_description = EXCLUDED.project_description,
    project_phase = EXCLUDED.project_phase,
    reinforcement_code = EXCLUDED.reinforcement_code,
    hardware_info = EXCLUDED.hardware_info,
    glass_info = EXCLUDED.glass_info,
    project_number = EXCLUDED.project_number,
    component_number = EXCLUDED.component_number,
    water_handle = EXCLUDED.water_handle,
    segment_order = EXCLUDED.segment_order,
    cutting_pattern = EXCLUDED.cutting_pattern,
    fixing_mode = EXCLUDED.fixing_mode,
    material_type = EXCLUDED.material_type,
    project_code_parent = EXCLUDED.project_code_parent,
    bar_id = EXCLUDED.bar_id,
    profile_code = EXCLUDED.profile_code,
    profile_name = EXCLUDED.profile_name,
    lamination = EXCLUDED.lamination,
    gasket = EXCLUDED.gasket,
    profile_color = EXCLUDED.profile_color,
    profile_type_ra = EXCLUDED.profile_type_ra,
    profile_type = EXCLUDED.profile_type,
    profile_code_with_color = EXCLUDED.profile_code_with_color,
    updated_at = now()
WHERE t.company_guid = %(tenant)s
  AND (
        t.project_guid,
        t.component_guid,
        t.assembly_guid,
        t.piece_id,
        t.barcode,
        t.outer_length,
        t.inner_length,
        t.angle_left,
        t.angle_right,
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
  ) IS DISTINCT FROM (
        EXCLUDED.project_guid,
        EXCLUDED.component_guid,
        EXCLUDED.assembly_guid,
        EXCLUDED.piece_id,
        EXCLUDED.barcode,
        EXCLUDED.outer_length,
        EXCLUDED.inner_length,
        EXCLUDED.angle_left,
        EXCLUDED.angle_right,
        EXCLUDED.assembly_width,
        EXCLUDED.assembly_height,
        EXCLUDED.reinforcement_length,
        EXCLUDED.other_length,
        EXCLUDED.bar_rest,
        EXCLUDED.bar_length,
        EXCLUDED.bar_cutting_tolerance,
        EXCLUDED.profile_width,
        EXCLUDED.profile_height,
        EXCLUDED.welding_tolerance,
        EXCLUDED.orientation,
        EXCLUDED.trolley,
        EXCLUDED.cell,
        EXCLUDED.trolley_cell,
        EXCLUDED.trolley_size,
        EXCLUDED.parent_assembly_trolley_cell,
        EXCLUDED.mullion_trolley_cell,
        EXCLUDED.glazing_bead_trolley_cell,
        EXCLUDED.operations,
        EXCLUDED.component_code,
        EXCLUDED.component_description,
        EXCLUDED.info2,
        EXCLUDED.info3,
        EXCLUDED.client,
        EXCLUDED.dealer,
        EXCLUDED.project_description,
        EXCLUDED.project_phase,
        EXCLUDED.reinforcement_code,
        EXCLUDED.hardware_info,
        EXCLUDED.glass_info,
        EXCLUDED.project_number,
        EXCLUDED.component_number,
        EXCLUDED.water_handle,
        EXCLUDED.segment_order,
        EXCLUDED.cutting_pattern,
        EXCLUDED.fixing_mode,
        EXCLUDED.material_type,
        EXCLUDED.project_code_parent,
        EXCLUDED.bar_id,
        EXCLUDED.profile_code,
        EXCLUDED.profile_name,
        EXCLUDED.lamination,
        EXCLUDED.gasket,
        EXCLUDED.profile_color,
        EXCLUDED.profile_type_ra,
        EXCLUDED.profile_type,
        EXCLUDED.profile_code_with_color
  )
RETURNING t.guid,
          (xmax = 0) AS inserted;

-- name: upsert_pieces_by_natural_key
-- Upsert a batch of pieces of one tenant, by natural key (company_guid, project_guid,
-- piece_id): an item updates the stored row with its key or is inserted with a new guid.
-- The key includes the tenant, so it only ever meets the tenant's own rows.
-- Only rows whose values differ are updated, so a repeated batch writes nothing. The
-- conflict check is a direct unique-index probe per item, never a join (BENCHMARKS.md,
-- lever 6). is_active/deleted_at are written on insert only (inherited from the nearest
-- parent); sync never changes them on a stored row. Returns the guid of each row written
-- and whether it was inserted: an item that matched a row and changed nothing returns
-- nothing.
INSERT INTO pieces AS t (
    guid,
    company_guid,
    project_guid,
    component_guid,
    assembly_guid,
    piece_id,
    barcode,
    outer_length,
    inner_length,
    angle_left,
    angle_right,
    assembly_width,
    assembly_height,
    reinforcement_length,
    other_length,
    bar_rest,
    bar_length,
    bar_cutting_tolerance,
    profile_width,
    profile_height,
    welding_tolerance,
    orientation,
    trolley,
    cell,
    trolley_cell,
    trolley_size,
    parent_assembly_trolley_cell,
    mullion_trolley_cell,
    glazing_bead_trolley_cell,
    operations,
    component_code,
    component_description,
    info2,
    info3,
    client,
    dealer,
    project_description,
    project_phase,
    reinforcement_code,
    hardware_info,
    glass_info,
    project_number,
    component_number,
    water_handle,
    segment_order,
    cutting_pattern,
    fixing_mode,
    material_type,
    project_code_parent,
    bar_id,
    profile_code,
    profile_name,
    lamination,
    gasket,
    profile_color,
    profile_type_ra,
    profile_type,
    profile_code_with_color,
    is_active,
    deleted_at
)
SELECT coalesce(i.guid, gen_random_uuid()) AS guid,
       i.company_guid,
       i.project_guid,
       i.component_guid,
       i.assembly_guid,
       i.piece_id,
       i.barcode,
       i.outer_length,
       i.inner_length,
       i.angle_left,
       i.angle_right,
       i.assembly_width,
       i.assembly_height,
       i.reinforcement_length,
       i.other_length,
       i.bar_rest,
       i.bar_length,
       i.bar_cutting_tolerance,
       i.profile_width,
       i.profile_height,
       i.welding_tolerance,
       i.orientation,
       i.trolley,
       i.cell,
       i.trolley_cell,
       i.trolley_size,
       i.parent_assembly_trolley_cell,
       i.mullion_trolley_cell,
       i.glazing_bead_trolley_cell,
       i.operations,
       i.component_code,
       i.component_description,
       i.info2,
       i.info3,
       i.client,
       i.dealer,
       i.project_description,
       i.project_phase,
       i.reinforcement_code,
       i.hardware_info,
       i.glass_info,
       i.project_number,
       i.component_number,
       i.water_handle,
       i.segment_order,
       i.cutting_pattern,
       i.fixing_mode,
       i.material_type,
       i.project_code_parent,
       i.bar_id,
       i.profile_code,
       i.profile_name,
       i.lamination,
       i.gasket,
       i.profile_color,
       i.profile_type_ra,
       i.profile_type,
       i.profile_code_with_color,
       i.is_active,
       i.deleted_at
FROM json_populate_recordset(NULL::pieces, %(items)s::json) AS i
WHERE i.company_guid = %(tenant)s
ON CONFLICT ON CONSTRAINT pieces_natural_key DO UPDATE SET
    project_guid = EXCLUDED.project_guid,
    component_guid = EXCLUDED.component_guid,
    assembly_guid = EXCLUDED.assembly_guid,
    piece_id = EXCLUDED.piece_id,
    barcode = EXCLUDED.barcode,
    outer_length = EXCLUDED.outer_length,
    inner_length = EXCLUDED.inner_length,
    angle_left = EXCLUDED.angle_left,
    angle_right = EXCLUDED.angle_right,
    assembly_width = EXCLUDED.assembly_width,
    assembly_height = EXCLUDED.assembly_height,
    reinforcement_length = EXCLUDED.reinforcement_length,
    other_length = EXCLUDED.other_length,
    bar_rest = EXCLUDED.bar_rest,
    bar_length = EXCLUDED.bar_length,
    bar_cutting_tolerance = EXCLUDED.bar_cutting_tolerance,
    profile_width = EXCLUDED.profile_width,
    profile_height = EXCLUDED.profile_height,
    welding_tolerance = EXCLUDED.welding_tolerance,
    orientation = EXCLUDED.orientation,
    trolley = EXCLUDED.trolley,
    cell = EXCLUDED.cell,
    trolley_cell = EXCLUDED.trolley_cell,
    trolley_size = EXCLUDED.trolley_size,
    parent_assembly_trolley_cell = EXCLUDED.parent_assembly_trolley_cell,
    mullion_trolley_cell = EXCLUDED.mullion_trolley_cell,
    glazing_bead_trolley_cell = EXCLUDED.glazing_bead_trolley_cell,
    operations = EXCLUDED.operations,
    component_code = EXCLUDED.component_code,
    component_description = EXCLUDED.component_description,
    info2 = EXCLUDED.info2,
    info3 = EXCLUDED.info3,
    client = EXCLUDED.client,
    dealer = EXCLUDED.dealer,
    project_description = EXCLUDED.project_description,
    project_phase = EXCLUDED.project_phase,
    reinforcement_code = EXCLUDED.reinforcement_code,
    hardware_info = EXCLUDED.hardware_info,
    glass_info = EXCLUDED.glass_info,
    project_number = EXCLUDED.project_number,
    component_number = EXCLUDED.component_number,
    water_handle = EXCLUDED.water_handle,
    segment_order = EXCLUDED.segment_order,
    cutting_pattern = EXCLUDED.cutting_pattern,
    fixing_mode = EXCLUDED.fixing_mode,
    material_type = EXCLUDED.material_type,
    project_code_parent = EXCLUDED.project_code_parent,
    bar_id = EXCLUDED.bar_id,
    profile_code = EXCLUDED.profile_code,
    profile_name = EXCLUDED.profile_name,
    lamination = EXCLUDED.lamination,
    gasket = EXCLUDED.gasket,
    profile_color = EXCLUDED.profile_color,
    profile_type_ra = EXCLUDED.profile_type_ra,
    profile_type = EXCLUDED.profile_type,
    profile_code_with_color = EXCLUDED.profile_code_with_color,
    updated_at = now()
WHERE t.company_guid = %(tenant)s
  AND (
        t.project_guid,
        t.component_guid,
        t.assembly_guid,
        t.piece_id,
        t.barcode,
        t.outer_length,
        t.inner_length,
        t.angle_left,
        t.angle_right,
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
  ) IS DISTINCT FROM (
        EXCLUDED.project_guid,
        EXCLUDED.component_guid,
        EXCLUDED.assembly_guid,
        EXCLUDED.piece_id,
        EXCLUDED.barcode,
        EXCLUDED.outer_length,
        EXCLUDED.inner_length,
        EXCLUDED.angle_left,
        EXCLUDED.angle_right,
        EXCLUDED.assembly_width,
        EXCLUDED.assembly_height,
        EXCLUDED.reinforcement_length,
        EXCLUDED.other_length,
        EXCLUDED.bar_rest,
        EXCLUDED.bar_length,
        EXCLUDED.bar_cutting_tolerance,
        EXCLUDED.profile_width,
        EXCLUDED.profile_height,
        EXCLUDED.welding_tolerance,
        EXCLUDED.orientation,
        EXCLUDED.trolley,
        EXCLUDED.cell,
        EXCLUDED.trolley_cell,
        EXCLUDED.trolley_size,
        EXCLUDED.parent_assembly_trolley_cell,
        EXCLUDED.mullion_trolley_cell,
        EXCLUDED.glazing_bead_trolley_cell,
        EXCLUDED.operations,
        EXCLUDED.component_code,
        EXCLUDED.component_description,
        EXCLUDED.info2,
        EXCLUDED.info3,
        EXCLUDED.client,
        EXCLUDED.dealer,
        EXCLUDED.project_description,
        EXCLUDED.project_phase,
        EXCLUDED.reinforcement_code,
        EXCLUDED.hardware_info,
        EXCLUDED.glass_info,
        EXCLUDED.project_number,
        EXCLUDED.component_number,
        EXCLUDED.water_handle,
        EXCLUDED.segment_order,
        EXCLUDED.cutting_pattern,
        EXCLUDED.fixing_mode,
        EXCLUDED.material_type,
        EXCLUDED.project_code_parent,
        EXCLUDED.bar_id,
        EXCLUDED.profile_code,
        EXCLUDED.profile_name,
        EXCLUDED.lamination,
        EXCLUDED.gasket,
        EXCLUDED.profile_color,
        EXCLUDED.profile_type_ra,
        EXCLUDED.profile_type,
        EXCLUDED.profile_code_with_color
  )
RETURNING t.guid,
          (xmax = 0) AS inserted;

-- name: existing_pieces
-- The stored pieces that these items (index, guid, natural key) would update: by guid for
-- items with one, else by natural key; locked FOR UPDATE so that a concurrent restore
-- cannot bring one back while this transaction decides on it. Used only for items under a
-- soft-deleted parent (sync may not move an active row there).
WITH item AS (
    SELECT *
    FROM json_to_recordset(%(items)s::json) AS i (
        idx integer,
        guid uuid,
        project_guid uuid,
        piece_id text
    )
), by_guid AS (
    SELECT item.idx,
           t.is_active
    FROM item
    JOIN pieces AS t
      ON t.company_guid = %(tenant)s
     AND t.guid = item.guid
    FOR UPDATE OF t
), by_natural_key AS (
    SELECT item.idx,
           t.is_active
    FROM item
    JOIN pieces AS t
      ON t.company_guid = %(tenant)s
     AND (t.project_guid, t.piece_id) = (item.project_guid, item.piece_id)
    WHERE item.guid IS NULL
    FOR UPDATE OF t
)
SELECT idx, is_active FROM by_guid
UNION ALL
SELECT idx, is_active FROM by_natural_key;
