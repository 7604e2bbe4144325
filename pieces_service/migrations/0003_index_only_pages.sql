-- migrate: no-transaction
-- The list order indexes also carry is_active, so the rows a deep offset skips (and the
-- active-only filter) are read from the index alone: an index-only scan, no heap visit per
-- skipped row. They replace the 0001 indexes one for one.
--
-- Built CONCURRENTLY, so writes to a large live `pieces` go on while each index builds; that
-- cannot run in a transaction, hence the header above (docs/migrations.md). Every statement
-- can run again: after a failure half way the runner records nothing, and the rerun drops
-- whatever the failed run left (an INVALID index included) and builds it afresh. The new
-- indexes are all built before the old ones go, so no list query is ever left without one.

DROP INDEX CONCURRENTLY IF EXISTS pieces_tenant_keys_idx;
CREATE INDEX CONCURRENTLY pieces_tenant_keys_idx
    ON pieces (company_guid, created_at, guid) INCLUDE (is_active);

DROP INDEX CONCURRENTLY IF EXISTS pieces_project_keys_idx;
CREATE INDEX CONCURRENTLY pieces_project_keys_idx
    ON pieces (company_guid, project_guid, created_at, guid) INCLUDE (is_active);

DROP INDEX CONCURRENTLY IF EXISTS pieces_component_keys_idx;
CREATE INDEX CONCURRENTLY pieces_component_keys_idx
    ON pieces (company_guid, component_guid, created_at, guid) INCLUDE (is_active);

DROP INDEX CONCURRENTLY IF EXISTS pieces_assembly_keys_idx;
CREATE INDEX CONCURRENTLY pieces_assembly_keys_idx
    ON pieces (company_guid, assembly_guid, created_at, guid) INCLUDE (is_active)
    WHERE assembly_guid IS NOT NULL;

DROP INDEX CONCURRENTLY IF EXISTS pieces_tenant_order_idx;
DROP INDEX CONCURRENTLY IF EXISTS pieces_project_order_idx;
DROP INDEX CONCURRENTLY IF EXISTS pieces_component_order_idx;
DROP INDEX CONCURRENTLY IF EXISTS pieces_assembly_order_idx;
