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

-- name: insert_projects_by_guid
-- Insert the items of a sync batch of projects that carry a guid, with that guid; an item
-- whose guid is stored already is skipped (DO NOTHING, which never touches that row, also
-- when it is another tenant's) and returned by none of its rows: the update_ statement
-- takes those. is_active/deleted_at are inherited from the nearest parent, on insert only.
-- Returns the guid and natural key of each inserted row.
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
ON CONFLICT (guid) DO NOTHING
RETURNING guid,
          code;

-- name: update_projects_by_guid
-- Update the stored projects of one tenant that the items name by guid, where their values
-- differ, so a repeated batch writes nothing. Another tenant's row is never matched (the
-- tenant predicate and RLS). Sync never changes is_active/deleted_at. Returns the guid of
-- each updated row.
UPDATE projects AS t
SET code = i.code,
    name = i.name,
    updated_at = now()
FROM json_populate_recordset(NULL::projects, %(items)s::json) AS i
WHERE t.company_guid = %(tenant)s
  AND i.company_guid = %(tenant)s
  AND t.guid = i.guid
  AND (
        t.code,
        t.name
  ) IS DISTINCT FROM (
        i.code,
        i.name
  )
RETURNING t.guid;

-- name: insert_projects_by_natural_key
-- Insert the items of a sync batch of projects without a guid, with a new guid; an item
-- whose natural key is stored already is skipped (DO NOTHING, which never touches that
-- row, also when it is another tenant's) and returned by none of its rows: the update_
-- statement takes those. is_active/deleted_at are inherited from the nearest parent, on
-- insert only. Returns the guid and natural key of each inserted row.
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
ON CONFLICT ON CONSTRAINT projects_natural_key DO NOTHING
RETURNING guid,
          code;

-- name: update_projects_by_natural_key
-- Update the stored projects of one tenant that the items name by natural key
-- (company_guid, code), where their values differ, so a repeated batch writes nothing.
-- Another tenant's row is never matched (the tenant predicate and RLS). Sync never changes
-- is_active/deleted_at. Returns the guid of each updated row.
UPDATE projects AS t
SET code = i.code,
    name = i.name,
    updated_at = now()
FROM json_populate_recordset(NULL::projects, %(items)s::json) AS i
WHERE t.company_guid = %(tenant)s
  AND i.company_guid = %(tenant)s
  AND (t.code) = (i.code)
  AND (
        t.code,
        t.name
  ) IS DISTINCT FROM (
        i.code,
        i.name
  )
RETURNING t.guid;

-- name: insert_components_by_guid
-- Insert the items of a sync batch of components that carry a guid, with that guid; an
-- item whose guid is stored already is skipped (DO NOTHING, which never touches that row,
-- also when it is another tenant's) and returned by none of its rows: the update_
-- statement takes those. is_active/deleted_at are inherited from the nearest parent, on
-- insert only. Returns the guid and natural key of each inserted row.
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
ON CONFLICT (guid) DO NOTHING
RETURNING guid,
          project_guid,
          code;

-- name: update_components_by_guid
-- Update the stored components of one tenant that the items name by guid, where their
-- values differ, so a repeated batch writes nothing. Another tenant's row is never matched
-- (the tenant predicate and RLS). Sync never changes is_active/deleted_at. Returns the
-- guid of each updated row.
UPDATE components AS t
SET project_guid = i.project_guid,
    code = i.code,
    name = i.name,
    updated_at = now()
FROM json_populate_recordset(NULL::components, %(items)s::json) AS i
WHERE t.company_guid = %(tenant)s
  AND i.company_guid = %(tenant)s
  AND t.guid = i.guid
  AND (
        t.project_guid,
        t.code,
        t.name
  ) IS DISTINCT FROM (
        i.project_guid,
        i.code,
        i.name
  )
RETURNING t.guid;

-- name: insert_components_by_natural_key
-- Insert the items of a sync batch of components without a guid, with a new guid; an item
-- whose natural key is stored already is skipped (DO NOTHING, which never touches that
-- row, also when it is another tenant's) and returned by none of its rows: the update_
-- statement takes those. is_active/deleted_at are inherited from the nearest parent, on
-- insert only. Returns the guid and natural key of each inserted row.
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
ON CONFLICT ON CONSTRAINT components_natural_key DO NOTHING
RETURNING guid,
          project_guid,
          code;

-- name: update_components_by_natural_key
-- Update the stored components of one tenant that the items name by natural key
-- (company_guid, project_guid, code), where their values differ, so a repeated batch
-- writes nothing. Another tenant's row is never matched (the tenant predicate and RLS).
-- Sync never changes is_active/deleted_at. Returns the guid of each updated row.
UPDATE components AS t
SET project_guid = i.project_guid,
    code = i.code,
    name = i.name,
    updated_at = now()
FROM json_populate_recordset(NULL::components, %(items)s::json) AS i
WHERE t.company_guid = %(tenant)s
  AND i.company_guid = %(tenant)s
  AND (t.project_guid, t.code) = (i.project_guid, i.code)
  AND (
        t.project_guid,
        t.code,
        t.name
  ) IS DISTINCT FROM (
        i.project_guid,
        i.code,
        i.name
  )
RETURNING t.guid;

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

-- name: insert_assemblies_by_guid
-- Insert the items of a sync batch of assemblies that carry a guid, with that guid; an
-- item whose guid is stored already is skipped (DO NOTHING, which never touches that row,
-- also when it is another tenant's) and returned by none of its rows: the update_
-- statement takes those. is_active/deleted_at are inherited from the nearest parent, on
-- insert only. Returns the guid and natural key of each inserted row.
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
ON CONFLICT (guid) DO NOTHING
RETURNING guid,
          component_guid,
          code;

-- name: update_assemblies_by_guid
-- Update the stored assemblies of one tenant that the items name by guid, where their
-- values differ, so a repeated batch writes nothing. Another tenant's row is never matched
-- (the tenant predicate and RLS). Sync never changes is_active/deleted_at. Returns the
-- guid of each updated row.
UPDATE assemblies AS t
SET project_guid = i.project_guid,
    component_guid = i.component_guid,
    code = i.code,
    name = i.name,
    updated_at = now()
FROM json_populate_recordset(NULL::assemblies, %(items)s::json) AS i
WHERE t.company_guid = %(tenant)s
  AND i.company_guid = %(tenant)s
  AND t.guid = i.guid
  AND (
        t.project_guid,
        t.component_guid,
        t.code,
        t.name
  ) IS DISTINCT FROM (
        i.project_guid,
        i.component_guid,
        i.code,
        i.name
  )
RETURNING t.guid;

-- name: insert_assemblies_by_natural_key
-- Insert the items of a sync batch of assemblies without a guid, with a new guid; an item
-- whose natural key is stored already is skipped (DO NOTHING, which never touches that
-- row, also when it is another tenant's) and returned by none of its rows: the update_
-- statement takes those. is_active/deleted_at are inherited from the nearest parent, on
-- insert only. Returns the guid and natural key of each inserted row.
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
ON CONFLICT ON CONSTRAINT assemblies_natural_key DO NOTHING
RETURNING guid,
          component_guid,
          code;

-- name: update_assemblies_by_natural_key
-- Update the stored assemblies of one tenant that the items name by natural key
-- (company_guid, component_guid, code), where their values differ, so a repeated batch
-- writes nothing. Another tenant's row is never matched (the tenant predicate and RLS).
-- Sync never changes is_active/deleted_at. Returns the guid of each updated row.
UPDATE assemblies AS t
SET project_guid = i.project_guid,
    component_guid = i.component_guid,
    code = i.code,
    name = i.name,
    updated_at = now()
FROM json_populate_recordset(NULL::assemblies, %(items)s::json) AS i
WHERE t.company_guid = %(tenant)s
  AND i.company_guid = %(tenant)s
  AND (t.component_guid, t.code) = (i.component_guid, i.code)
  AND (
        t.project_guid,
        t.component_guid,
        t.code,
        t.name
  ) IS DISTINCT FROM (
        i.project_guid,
        i.component_guid,
        i.code,
        i.name
  )
RETURNING t.guid;

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

-- name: insert_pieces_by_guid
-- Insert the items of a sync batch of pieces that carry a guid, with that guid; an item
-- whose guid is stored already is skipped (DO NOTHING, which never touches that row, also
-- when it is another tenant's) and returned by none of its rows: the update_ statement
-- takes those. is_active/deleted_at are inherited from the nearest parent, on insert only.
-- Returns the guid and natural key of each inserted row.
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
ON CONFLICT (guid) DO NOTHING
RETURNING guid,
          project_guid,
          piece_id;

-- name: update_pieces_by_guid
-- Update the stored pieces of one tenant that the items name by guid, where their values
-- differ, so a repeated batch writes nothing. Another tenant's row is never matched (the
-- tenant predicate and RLS). Sync never changes is_active/deleted_at. Returns the guid of
-- each updated row.
UPDATE pieces AS t
SET project_guid = i.project_guid,
    component_guid = i.component_guid,
    assembly_guid = i.assembly_guid,
    piece_id = i.piece_id,
    barcode = i.barcode,
    outer_length = i.outer_length,
    inner_length = i.inner_length,
    angle_left = i.angle_left,
    angle_right = i.angle_right,
    assembly_width = i.assembly_width,
    assembly_height = i.assembly_height,
    reinforcement_length = i.reinforcement_length,
    other_length = i.other_length,
    bar_rest = i.bar_rest,
    bar_length = i.bar_length,
    bar_cutting_tolerance = i.bar_cutting_tolerance,
    profile_width = i.profile_width,
    profile_height = i.profile_height,
    welding_tolerance = i.welding_tolerance,
    orientation = i.orientation,
    trolley = i.trolley,
    cell = i.cell,
    trolley_cell = i.trolley_cell,
    trolley_size = i.trolley_size,
    parent_assembly_trolley_cell = i.parent_assembly_trolley_cell,
    mullion_trolley_cell = i.mullion_trolley_cell,
    glazing_bead_trolley_cell = i.glazing_bead_trolley_cell,
    operations = i.operations,
    component_code = i.component_code,
    component_description = i.component_description,
    info2 = i.info2,
    info3 = i.info3,
    client = i.client,
    dealer = i.dealer,
    project_description = i.project_description,
    project_phase = i.project_phase,
    reinforcement_code = i.reinforcement_code,
    hardware_info = i.hardware_info,
    glass_info = i.glass_info,
    project_number = i.project_number,
    component_number = i.component_number,
    water_handle = i.water_handle,
    segment_order = i.segment_order,
    cutting_pattern = i.cutting_pattern,
    fixing_mode = i.fixing_mode,
    material_type = i.material_type,
    project_code_parent = i.project_code_parent,
    bar_id = i.bar_id,
    profile_code = i.profile_code,
    profile_name = i.profile_name,
    lamination = i.lamination,
    gasket = i.gasket,
    profile_color = i.profile_color,
    profile_type_ra = i.profile_type_ra,
    profile_type = i.profile_type,
    profile_code_with_color = i.profile_code_with_color,
    updated_at = now()
FROM json_populate_recordset(NULL::pieces, %(items)s::json) AS i
WHERE t.company_guid = %(tenant)s
  AND i.company_guid = %(tenant)s
  AND t.guid = i.guid
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
        i.profile_code_with_color
  )
RETURNING t.guid;

-- name: insert_pieces_by_natural_key
-- Insert the items of a sync batch of pieces without a guid, with a new guid; an item
-- whose natural key is stored already is skipped (DO NOTHING, which never touches that
-- row, also when it is another tenant's) and returned by none of its rows: the update_
-- statement takes those. is_active/deleted_at are inherited from the nearest parent, on
-- insert only. Returns the guid and natural key of each inserted row.
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
ON CONFLICT ON CONSTRAINT pieces_natural_key DO NOTHING
RETURNING guid,
          project_guid,
          piece_id;

-- name: update_pieces_by_natural_key
-- Update the stored pieces of one tenant that the items name by natural key (company_guid,
-- project_guid, piece_id), where their values differ, so a repeated batch writes nothing.
-- Another tenant's row is never matched (the tenant predicate and RLS). Sync never changes
-- is_active/deleted_at. Returns the guid of each updated row.
UPDATE pieces AS t
SET project_guid = i.project_guid,
    component_guid = i.component_guid,
    assembly_guid = i.assembly_guid,
    piece_id = i.piece_id,
    barcode = i.barcode,
    outer_length = i.outer_length,
    inner_length = i.inner_length,
    angle_left = i.angle_left,
    angle_right = i.angle_right,
    assembly_width = i.assembly_width,
    assembly_height = i.assembly_height,
    reinforcement_length = i.reinforcement_length,
    other_length = i.other_length,
    bar_rest = i.bar_rest,
    bar_length = i.bar_length,
    bar_cutting_tolerance = i.bar_cutting_tolerance,
    profile_width = i.profile_width,
    profile_height = i.profile_height,
    welding_tolerance = i.welding_tolerance,
    orientation = i.orientation,
    trolley = i.trolley,
    cell = i.cell,
    trolley_cell = i.trolley_cell,
    trolley_size = i.trolley_size,
    parent_assembly_trolley_cell = i.parent_assembly_trolley_cell,
    mullion_trolley_cell = i.mullion_trolley_cell,
    glazing_bead_trolley_cell = i.glazing_bead_trolley_cell,
    operations = i.operations,
    component_code = i.component_code,
    component_description = i.component_description,
    info2 = i.info2,
    info3 = i.info3,
    client = i.client,
    dealer = i.dealer,
    project_description = i.project_description,
    project_phase = i.project_phase,
    reinforcement_code = i.reinforcement_code,
    hardware_info = i.hardware_info,
    glass_info = i.glass_info,
    project_number = i.project_number,
    component_number = i.component_number,
    water_handle = i.water_handle,
    segment_order = i.segment_order,
    cutting_pattern = i.cutting_pattern,
    fixing_mode = i.fixing_mode,
    material_type = i.material_type,
    project_code_parent = i.project_code_parent,
    bar_id = i.bar_id,
    profile_code = i.profile_code,
    profile_name = i.profile_name,
    lamination = i.lamination,
    gasket = i.gasket,
    profile_color = i.profile_color,
    profile_type_ra = i.profile_type_ra,
    profile_type = i.profile_type,
    profile_code_with_color = i.profile_code_with_color,
    updated_at = now()
FROM json_populate_recordset(NULL::pieces, %(items)s::json) AS i
WHERE t.company_guid = %(tenant)s
  AND i.company_guid = %(tenant)s
  AND (t.project_guid, t.piece_id) = (i.project_guid, i.piece_id)
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
        i.profile_code_with_color
  )
RETURNING t.guid;

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
