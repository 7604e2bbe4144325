-- migrate: no-transaction
-- Indexes for the change feed and for the list's cheap validator (docs/change-feed.md).
--
-- * <table>_changes_idx serves the feed: a page is one range scan of (company_guid,
--   change_xid, guid) from the token's position; a caught-up poll is one probe.
-- * The list order indexes of 0003 are rebuilt to INCLUDE change_xid too, so the list's
--   ETag (the newest change_xid and the row count of the page's range) is read from the
--   index alone, without building the page.
--
-- Built CONCURRENTLY (writes go on); every statement can run again (docs/migrations.md).

DROP INDEX CONCURRENTLY IF EXISTS projects_changes_idx;
CREATE INDEX CONCURRENTLY projects_changes_idx ON projects (company_guid, change_xid, guid);

DROP INDEX CONCURRENTLY IF EXISTS components_changes_idx;
CREATE INDEX CONCURRENTLY components_changes_idx ON components (company_guid, change_xid, guid);

DROP INDEX CONCURRENTLY IF EXISTS assemblies_changes_idx;
CREATE INDEX CONCURRENTLY assemblies_changes_idx ON assemblies (company_guid, change_xid, guid);

DROP INDEX CONCURRENTLY IF EXISTS pieces_changes_idx;
CREATE INDEX CONCURRENTLY pieces_changes_idx ON pieces (company_guid, change_xid, guid);

DROP INDEX CONCURRENTLY IF EXISTS pieces_tenant_list_idx;
CREATE INDEX CONCURRENTLY pieces_tenant_list_idx
    ON pieces (company_guid, created_at, guid) INCLUDE (is_active, change_xid);

DROP INDEX CONCURRENTLY IF EXISTS pieces_project_list_idx;
CREATE INDEX CONCURRENTLY pieces_project_list_idx
    ON pieces (company_guid, project_guid, created_at, guid) INCLUDE (is_active, change_xid);

DROP INDEX CONCURRENTLY IF EXISTS pieces_component_list_idx;
CREATE INDEX CONCURRENTLY pieces_component_list_idx
    ON pieces (company_guid, component_guid, created_at, guid) INCLUDE (is_active, change_xid);

DROP INDEX CONCURRENTLY IF EXISTS pieces_assembly_list_idx;
CREATE INDEX CONCURRENTLY pieces_assembly_list_idx
    ON pieces (company_guid, assembly_guid, created_at, guid) INCLUDE (is_active, change_xid)
    WHERE assembly_guid IS NOT NULL;

DROP INDEX CONCURRENTLY IF EXISTS pieces_tenant_keys_idx;
DROP INDEX CONCURRENTLY IF EXISTS pieces_project_keys_idx;
DROP INDEX CONCURRENTLY IF EXISTS pieces_component_keys_idx;
DROP INDEX CONCURRENTLY IF EXISTS pieces_assembly_keys_idx;
