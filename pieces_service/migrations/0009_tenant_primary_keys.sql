-- Keys ready for Citus (docs/scale-out.md), step 2 of 3: swap each tenant table's primary
-- key for the index 0008 built, (company_guid, guid) ((company_guid, id) for audit_log).
--
-- Live-safe: ADD PRIMARY KEY USING INDEX reuses the built index (no scan: its columns are
-- NOT NULL already) and DROP CONSTRAINT drops the old one, so each table's ACCESS EXCLUSIVE
-- lock lasts an instant; the runner's lock_timeout makes the file fail, rather than stall
-- the table, if a long transaction is in the way. The LOCK takes the tables parents first,
-- the order the service's writes lock them in; the file holds them for the few catalog
-- changes below. Nothing is rewritten.
--
-- projects also had (company_guid, guid) as projects_tenant_guid_key, the target of
-- components_project_fkey: the new primary key makes it a duplicate, so the foreign key is
-- pointed at the primary key instead. It is added NOT VALID (checked for new rows at once,
-- no scan under this file's locks); 0010 validates it. Every other foreign key already
-- includes company_guid (0001) and is left alone.

LOCK TABLE projects, components, assemblies, pieces, audit_log IN ACCESS EXCLUSIVE MODE;

ALTER TABLE components DROP CONSTRAINT components_project_fkey;
ALTER TABLE projects
    DROP CONSTRAINT projects_pkey,
    DROP CONSTRAINT projects_tenant_guid_key,
    ADD CONSTRAINT projects_pkey PRIMARY KEY USING INDEX projects_tenant_pkey_idx;
ALTER TABLE components
    ADD CONSTRAINT components_project_fkey FOREIGN KEY (company_guid, project_guid)
        REFERENCES projects (company_guid, guid) NOT VALID;

ALTER TABLE components
    DROP CONSTRAINT components_pkey,
    ADD CONSTRAINT components_pkey PRIMARY KEY USING INDEX components_tenant_pkey_idx;
ALTER TABLE assemblies
    DROP CONSTRAINT assemblies_pkey,
    ADD CONSTRAINT assemblies_pkey PRIMARY KEY USING INDEX assemblies_tenant_pkey_idx;
ALTER TABLE pieces
    DROP CONSTRAINT pieces_pkey,
    ADD CONSTRAINT pieces_pkey PRIMARY KEY USING INDEX pieces_tenant_pkey_idx;
ALTER TABLE audit_log
    DROP CONSTRAINT audit_log_pkey,
    ADD CONSTRAINT audit_log_pkey PRIMARY KEY USING INDEX audit_log_tenant_pkey_idx;
