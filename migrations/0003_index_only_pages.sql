-- The list order indexes also carry is_active, so the rows a deep offset skips (and the
-- active-only filter) are read from the index alone: an index-only scan, no heap visit per
-- skipped row. They replace the 0001 indexes one for one.
CREATE INDEX pieces_tenant_keys_idx
    ON pieces (company_guid, created_at, guid) INCLUDE (is_active);
CREATE INDEX pieces_project_keys_idx
    ON pieces (company_guid, project_guid, created_at, guid) INCLUDE (is_active);
CREATE INDEX pieces_component_keys_idx
    ON pieces (company_guid, component_guid, created_at, guid) INCLUDE (is_active);
CREATE INDEX pieces_assembly_keys_idx
    ON pieces (company_guid, assembly_guid, created_at, guid) INCLUDE (is_active)
    WHERE assembly_guid IS NOT NULL;

DROP INDEX pieces_tenant_order_idx;
DROP INDEX pieces_project_order_idx;
DROP INDEX pieces_component_order_idx;
DROP INDEX pieces_assembly_order_idx;
