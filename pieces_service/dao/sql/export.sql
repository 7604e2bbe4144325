-- Rendered from pieces_service/catalogue.py by pieces_service/dao/render.py
-- (`make sql`). Edit those, not this file: tests/dao/test_rendered_sql.py checks
-- that the two agree.

-- name: export_parents
-- The export's parent filters, checked as the list checks them
-- (domain.pieces.check_parents reads these columns): each parent visible in the tenant
-- (soft-deleted ones only with include_inactive), and the parents it names, to tell "does
-- not belong" apart.
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
)
SELECT EXISTS (SELECT FROM project) AS project_found,
       EXISTS (SELECT FROM component) AS component_found,
       (SELECT project_guid FROM component) AS component_project_guid,
       EXISTS (SELECT FROM assembly) AS assembly_found,
       (SELECT component_guid FROM assembly) AS assembly_component_guid,
       (SELECT project_guid FROM assembly) AS assembly_project_guid;

-- name: export_pieces_ndjson
-- The export as NDJSON: a cursor over the tenant's pieces with the list's filters, one
-- PieceDetail JSON object per row, built by PostgreSQL from the detail's column list (the
-- same JSON as the detail, GET /api/v1/pieces/<guid>).
-- The cursor reads one snapshot in list order (created_at, guid): a range scan of the
-- order index for the filters given, so rows stream without a sort, and each FETCH is a
-- batch. Its transaction (read only, as pieces_app, the tenant set) ends with ROLLBACK,
-- which closes it.
DECLARE pieces_export NO SCROLL CURSOR FOR
SELECT row_to_json(detail)::text AS line
FROM pieces AS t
CROSS JOIN LATERAL (
    SELECT
        -- fields: one a line, in the catalogue's order (dao.narrowed keeps a request's)
        t.guid,
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
        -- end of fields
) AS detail
WHERE t.company_guid = %(tenant)s
  AND (%(project_guid)s::uuid IS NULL OR t.project_guid = %(project_guid)s)
  AND (%(component_guid)s::uuid IS NULL OR t.component_guid = %(component_guid)s)
  AND (%(assembly_guid)s::uuid IS NULL OR t.assembly_guid = %(assembly_guid)s)
  AND (t.is_active OR %(include_inactive)s)
ORDER BY t.created_at,
         t.guid;

-- name: export_pieces_csv
-- The export as CSV: a cursor over the tenant's pieces with the list's filters, one CSV
-- record per row (the detail's columns in its order, without the line end), built by
-- PostgreSQL.
-- The cursor reads one snapshot in list order (created_at, guid): a range scan of the
-- order index for the filters given, so rows stream without a sort, and each FETCH is a
-- batch. Its transaction (read only, as pieces_app, the tenant set) ends with ROLLBACK,
-- which closes it.
DECLARE pieces_export NO SCROLL CURSOR FOR
SELECT array_to_string(ARRAY[
           -- fields: one a line, in the catalogue's order (dao.narrowed keeps a request's)
           t.guid::text,
           CASE WHEN t.piece_id = '' OR t.piece_id ~ '[",\r\n]' THEN '"' || replace(t.piece_id, '"', '""') || '"' ELSE t.piece_id END,
           t.project_guid::text,
           t.component_guid::text,
           t.assembly_guid::text,
           CASE WHEN t.barcode = '' OR t.barcode ~ '[",\r\n]' THEN '"' || replace(t.barcode, '"', '""') || '"' ELSE t.barcode END,
           t.outer_length::text,
           t.angle_left::text,
           t.angle_right::text,
           t.is_active::text,
           to_json(t.deleted_at) #>> ARRAY[]::text[],
           t.company_guid::text,
           to_json(t.created_at) #>> ARRAY[]::text[],
           to_json(t.updated_at) #>> ARRAY[]::text[],
           t.inner_length::text,
           t.assembly_width::text,
           t.assembly_height::text,
           t.reinforcement_length::text,
           t.other_length::text,
           t.bar_rest::text,
           t.bar_length::text,
           t.bar_cutting_tolerance::text,
           t.profile_width::text,
           t.profile_height::text,
           t.welding_tolerance::text,
           CASE WHEN t.orientation = '' OR t.orientation ~ '[",\r\n]' THEN '"' || replace(t.orientation, '"', '""') || '"' ELSE t.orientation END,
           CASE WHEN t.trolley = '' OR t.trolley ~ '[",\r\n]' THEN '"' || replace(t.trolley, '"', '""') || '"' ELSE t.trolley END,
           CASE WHEN t.cell = '' OR t.cell ~ '[",\r\n]' THEN '"' || replace(t.cell, '"', '""') || '"' ELSE t.cell END,
           CASE WHEN t.trolley_cell = '' OR t.trolley_cell ~ '[",\r\n]' THEN '"' || replace(t.trolley_cell, '"', '""') || '"' ELSE t.trolley_cell END,
           CASE WHEN t.trolley_size = '' OR t.trolley_size ~ '[",\r\n]' THEN '"' || replace(t.trolley_size, '"', '""') || '"' ELSE t.trolley_size END,
           CASE WHEN t.parent_assembly_trolley_cell = '' OR t.parent_assembly_trolley_cell ~ '[",\r\n]' THEN '"' || replace(t.parent_assembly_trolley_cell, '"', '""') || '"' ELSE t.parent_assembly_trolley_cell END,
           CASE WHEN t.mullion_trolley_cell = '' OR t.mullion_trolley_cell ~ '[",\r\n]' THEN '"' || replace(t.mullion_trolley_cell, '"', '""') || '"' ELSE t.mullion_trolley_cell END,
           CASE WHEN t.glazing_bead_trolley_cell = '' OR t.glazing_bead_trolley_cell ~ '[",\r\n]' THEN '"' || replace(t.glazing_bead_trolley_cell, '"', '""') || '"' ELSE t.glazing_bead_trolley_cell END,
           CASE WHEN t.operations = '' OR t.operations ~ '[",\r\n]' THEN '"' || replace(t.operations, '"', '""') || '"' ELSE t.operations END,
           CASE WHEN t.component_code = '' OR t.component_code ~ '[",\r\n]' THEN '"' || replace(t.component_code, '"', '""') || '"' ELSE t.component_code END,
           CASE WHEN t.component_description = '' OR t.component_description ~ '[",\r\n]' THEN '"' || replace(t.component_description, '"', '""') || '"' ELSE t.component_description END,
           CASE WHEN t.info2 = '' OR t.info2 ~ '[",\r\n]' THEN '"' || replace(t.info2, '"', '""') || '"' ELSE t.info2 END,
           CASE WHEN t.info3 = '' OR t.info3 ~ '[",\r\n]' THEN '"' || replace(t.info3, '"', '""') || '"' ELSE t.info3 END,
           CASE WHEN t.client = '' OR t.client ~ '[",\r\n]' THEN '"' || replace(t.client, '"', '""') || '"' ELSE t.client END,
           CASE WHEN t.dealer = '' OR t.dealer ~ '[",\r\n]' THEN '"' || replace(t.dealer, '"', '""') || '"' ELSE t.dealer END,
           CASE WHEN t.project_description = '' OR t.project_description ~ '[",\r\n]' THEN '"' || replace(t.project_description, '"', '""') || '"' ELSE t.project_description END,
           CASE WHEN t.project_phase = '' OR t.project_phase ~ '[",\r\n]' THEN '"' || replace(t.project_phase, '"', '""') || '"' ELSE t.project_phase END,
           CASE WHEN t.reinforcement_code = '' OR t.reinforcement_code ~ '[",\r\n]' THEN '"' || replace(t.reinforcement_code, '"', '""') || '"' ELSE t.reinforcement_code END,
           CASE WHEN t.hardware_info = '' OR t.hardware_info ~ '[",\r\n]' THEN '"' || replace(t.hardware_info, '"', '""') || '"' ELSE t.hardware_info END,
           CASE WHEN t.glass_info = '' OR t.glass_info ~ '[",\r\n]' THEN '"' || replace(t.glass_info, '"', '""') || '"' ELSE t.glass_info END,
           CASE WHEN t.project_number = '' OR t.project_number ~ '[",\r\n]' THEN '"' || replace(t.project_number, '"', '""') || '"' ELSE t.project_number END,
           CASE WHEN t.component_number = '' OR t.component_number ~ '[",\r\n]' THEN '"' || replace(t.component_number, '"', '""') || '"' ELSE t.component_number END,
           CASE WHEN t.water_handle = '' OR t.water_handle ~ '[",\r\n]' THEN '"' || replace(t.water_handle, '"', '""') || '"' ELSE t.water_handle END,
           CASE WHEN t.segment_order = '' OR t.segment_order ~ '[",\r\n]' THEN '"' || replace(t.segment_order, '"', '""') || '"' ELSE t.segment_order END,
           CASE WHEN t.cutting_pattern = '' OR t.cutting_pattern ~ '[",\r\n]' THEN '"' || replace(t.cutting_pattern, '"', '""') || '"' ELSE t.cutting_pattern END,
           CASE WHEN t.fixing_mode = '' OR t.fixing_mode ~ '[",\r\n]' THEN '"' || replace(t.fixing_mode, '"', '""') || '"' ELSE t.fixing_mode END,
           CASE WHEN t.material_type = '' OR t.material_type ~ '[",\r\n]' THEN '"' || replace(t.material_type, '"', '""') || '"' ELSE t.material_type END,
           CASE WHEN t.project_code_parent = '' OR t.project_code_parent ~ '[",\r\n]' THEN '"' || replace(t.project_code_parent, '"', '""') || '"' ELSE t.project_code_parent END,
           CASE WHEN t.bar_id = '' OR t.bar_id ~ '[",\r\n]' THEN '"' || replace(t.bar_id, '"', '""') || '"' ELSE t.bar_id END,
           CASE WHEN t.profile_code = '' OR t.profile_code ~ '[",\r\n]' THEN '"' || replace(t.profile_code, '"', '""') || '"' ELSE t.profile_code END,
           CASE WHEN t.profile_name = '' OR t.profile_name ~ '[",\r\n]' THEN '"' || replace(t.profile_name, '"', '""') || '"' ELSE t.profile_name END,
           CASE WHEN t.lamination = '' OR t.lamination ~ '[",\r\n]' THEN '"' || replace(t.lamination, '"', '""') || '"' ELSE t.lamination END,
           CASE WHEN t.gasket = '' OR t.gasket ~ '[",\r\n]' THEN '"' || replace(t.gasket, '"', '""') || '"' ELSE t.gasket END,
           CASE WHEN t.profile_color = '' OR t.profile_color ~ '[",\r\n]' THEN '"' || replace(t.profile_color, '"', '""') || '"' ELSE t.profile_color END,
           CASE WHEN t.profile_type_ra = '' OR t.profile_type_ra ~ '[",\r\n]' THEN '"' || replace(t.profile_type_ra, '"', '""') || '"' ELSE t.profile_type_ra END,
           CASE WHEN t.profile_type = '' OR t.profile_type ~ '[",\r\n]' THEN '"' || replace(t.profile_type, '"', '""') || '"' ELSE t.profile_type END,
           CASE WHEN t.profile_code_with_color = '' OR t.profile_code_with_color ~ '[",\r\n]' THEN '"' || replace(t.profile_code_with_color, '"', '""') || '"' ELSE t.profile_code_with_color END
           -- end of fields
       ], ',', '') AS line
FROM pieces AS t
WHERE t.company_guid = %(tenant)s
  AND (%(project_guid)s::uuid IS NULL OR t.project_guid = %(project_guid)s)
  AND (%(component_guid)s::uuid IS NULL OR t.component_guid = %(component_guid)s)
  AND (%(assembly_guid)s::uuid IS NULL OR t.assembly_guid = %(assembly_guid)s)
  AND (t.is_active OR %(include_inactive)s)
ORDER BY t.created_at,
         t.guid;
