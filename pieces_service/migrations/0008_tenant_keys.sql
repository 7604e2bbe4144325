-- migrate: no-transaction
-- Keys ready for Citus (docs/scale-out.md), step 1 of 3: the indexes, built CONCURRENTLY
-- (reads and writes go on; every statement can run again, docs/migrations.md).
--
-- Citus requires every primary key and unique constraint of a distributed table to include
-- its distribution column, company_guid. For each tenant table:
--
-- * <table>_tenant_pkey_idx (company_guid, guid): the new primary key's index; 0009 turns
--   it into <table>_pkey (PRIMARY KEY USING INDEX, which renames it).
-- * <table>_guid_key (guid): a guid stays unique across all tenants (SPEC section 6: sync by
--   guid is `ON CONFLICT (guid)`, and a guid of another tenant is a 403, never a second
--   row). It takes over that job from the old primary key, which 0009 drops. It is a plain
--   unique index, not a constraint, and the one key without company_guid: on a single
--   node it costs one index, under Citus it cannot exist (docs/scale-out.md, "guid
--   uniqueness", says what replaces it).
--
-- audit_log's key becomes (company_guid, id); its id stays an identity column.

DROP INDEX CONCURRENTLY IF EXISTS projects_tenant_pkey_idx;
CREATE UNIQUE INDEX CONCURRENTLY projects_tenant_pkey_idx ON projects (company_guid, guid);
DROP INDEX CONCURRENTLY IF EXISTS projects_guid_key;
CREATE UNIQUE INDEX CONCURRENTLY projects_guid_key ON projects (guid);

DROP INDEX CONCURRENTLY IF EXISTS components_tenant_pkey_idx;
CREATE UNIQUE INDEX CONCURRENTLY components_tenant_pkey_idx
    ON components (company_guid, guid);
DROP INDEX CONCURRENTLY IF EXISTS components_guid_key;
CREATE UNIQUE INDEX CONCURRENTLY components_guid_key ON components (guid);

DROP INDEX CONCURRENTLY IF EXISTS assemblies_tenant_pkey_idx;
CREATE UNIQUE INDEX CONCURRENTLY assemblies_tenant_pkey_idx
    ON assemblies (company_guid, guid);
DROP INDEX CONCURRENTLY IF EXISTS assemblies_guid_key;
CREATE UNIQUE INDEX CONCURRENTLY assemblies_guid_key ON assemblies (guid);

DROP INDEX CONCURRENTLY IF EXISTS pieces_tenant_pkey_idx;
CREATE UNIQUE INDEX CONCURRENTLY pieces_tenant_pkey_idx ON pieces (company_guid, guid);
DROP INDEX CONCURRENTLY IF EXISTS pieces_guid_key;
CREATE UNIQUE INDEX CONCURRENTLY pieces_guid_key ON pieces (guid);

DROP INDEX CONCURRENTLY IF EXISTS audit_log_tenant_pkey_idx;
CREATE UNIQUE INDEX CONCURRENTLY audit_log_tenant_pkey_idx ON audit_log (company_guid, id);
