-- Row-level security: the second wall behind the tenant predicate in every statement.
--
-- pieces_app   the role every request runs as (SET LOCAL ROLE in each transaction). It owns
--              nothing, cannot bypass RLS, and sees only rows of the tenant in the
--              transaction-local setting pieces.tenant.
-- pieces_probe owns one narrow SECURITY DEFINER function that tells which tenant owns a
--              GUID (for "403, not yours" and for SystemAdmin's reach by GUID). It may read
--              only guid and company_guid.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'pieces_app') THEN
        CREATE ROLE pieces_app NOLOGIN NOSUPERUSER NOBYPASSRLS NOINHERIT;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'pieces_probe') THEN
        CREATE ROLE pieces_probe NOLOGIN NOSUPERUSER NOBYPASSRLS NOINHERIT;
    END IF;
END
$$;

-- The migrating role (the one in DATABASE_URL) must be able to SET ROLE to both.
GRANT pieces_app TO CURRENT_USER;
GRANT pieces_probe TO CURRENT_USER;

-- The tenant of the current transaction; NULL (no rows) when unset.
CREATE FUNCTION pieces_current_tenant() RETURNS uuid
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT NULLIF(current_setting('pieces.tenant', true), '')::uuid $$;

GRANT USAGE ON SCHEMA public TO pieces_app, pieces_probe;
GRANT SELECT, INSERT, UPDATE ON projects, components, assemblies, pieces TO pieces_app;
GRANT SELECT, INSERT ON audit_log TO pieces_app;
GRANT SELECT (guid, company_guid) ON projects, components, assemblies, pieces TO pieces_probe;

ALTER TABLE projects   ENABLE ROW LEVEL SECURITY;
ALTER TABLE projects   FORCE ROW LEVEL SECURITY;
ALTER TABLE components ENABLE ROW LEVEL SECURITY;
ALTER TABLE components FORCE ROW LEVEL SECURITY;
ALTER TABLE assemblies ENABLE ROW LEVEL SECURITY;
ALTER TABLE assemblies FORCE ROW LEVEL SECURITY;
ALTER TABLE pieces     ENABLE ROW LEVEL SECURITY;
ALTER TABLE pieces     FORCE ROW LEVEL SECURITY;
ALTER TABLE audit_log  ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_log  FORCE ROW LEVEL SECURITY;

CREATE POLICY tenant_isolation ON projects TO pieces_app
    USING (company_guid = pieces_current_tenant())
    WITH CHECK (company_guid = pieces_current_tenant());
CREATE POLICY tenant_isolation ON components TO pieces_app
    USING (company_guid = pieces_current_tenant())
    WITH CHECK (company_guid = pieces_current_tenant());
CREATE POLICY tenant_isolation ON assemblies TO pieces_app
    USING (company_guid = pieces_current_tenant())
    WITH CHECK (company_guid = pieces_current_tenant());
CREATE POLICY tenant_isolation ON pieces TO pieces_app
    USING (company_guid = pieces_current_tenant())
    WITH CHECK (company_guid = pieces_current_tenant());
CREATE POLICY tenant_isolation ON audit_log TO pieces_app
    USING (company_guid = pieces_current_tenant())
    WITH CHECK (company_guid = pieces_current_tenant());

CREATE POLICY probe_owner_lookup ON projects   FOR SELECT TO pieces_probe USING (true);
CREATE POLICY probe_owner_lookup ON components FOR SELECT TO pieces_probe USING (true);
CREATE POLICY probe_owner_lookup ON assemblies FOR SELECT TO pieces_probe USING (true);
CREATE POLICY probe_owner_lookup ON pieces     FOR SELECT TO pieces_probe USING (true);

-- Which tenant owns each of these GUIDs of one entity type (absent GUIDs are left out).
CREATE FUNCTION pieces_guid_owners(entity text, guids uuid[])
    RETURNS TABLE (guid uuid, company_guid uuid)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = public, pg_temp
    AS $$
BEGIN
    IF entity = 'project' THEN
        RETURN QUERY SELECT t.guid, t.company_guid FROM projects t WHERE t.guid = ANY (guids);
    ELSIF entity = 'component' THEN
        RETURN QUERY SELECT t.guid, t.company_guid FROM components t WHERE t.guid = ANY (guids);
    ELSIF entity = 'assembly' THEN
        RETURN QUERY SELECT t.guid, t.company_guid FROM assemblies t WHERE t.guid = ANY (guids);
    ELSIF entity = 'piece' THEN
        RETURN QUERY SELECT t.guid, t.company_guid FROM pieces t WHERE t.guid = ANY (guids);
    ELSE
        RAISE EXCEPTION 'unknown entity %', entity;
    END IF;
END
$$;
GRANT CREATE ON SCHEMA public TO pieces_probe;
ALTER FUNCTION pieces_guid_owners(text, uuid[]) OWNER TO pieces_probe;
REVOKE CREATE ON SCHEMA public FROM pieces_probe;
REVOKE ALL ON FUNCTION pieces_guid_owners(text, uuid[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pieces_guid_owners(text, uuid[]) TO pieces_app;
