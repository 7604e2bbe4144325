-- The change feed (GET /api/v1/changes/<level>, docs/change-feed.md).
--
-- Every row of the hierarchy carries change_xid: the id of the transaction that last wrote
-- it, set by a trigger on every INSERT and UPDATE, so no statement (sync, cascade, restore,
-- an operator's manual fix) can change a row without moving it in the feed. The feed
-- serves only rows whose change_xid is below the reader's snapshot xmin, where every
-- transaction has ended: a transaction still open when a page is read cannot commit rows
-- behind that page later. A timestamp cannot give that guarantee (updated_at is taken when
-- a transaction writes, it becomes visible when it commits).
--
-- Rows written before this migration get change_xid 0: the feed's initial load serves them
-- first. Adding a column with a constant default rewrites nothing.

ALTER TABLE projects   ADD COLUMN change_xid xid8 NOT NULL DEFAULT '0';
ALTER TABLE components ADD COLUMN change_xid xid8 NOT NULL DEFAULT '0';
ALTER TABLE assemblies ADD COLUMN change_xid xid8 NOT NULL DEFAULT '0';
ALTER TABLE pieces     ADD COLUMN change_xid xid8 NOT NULL DEFAULT '0';

CREATE FUNCTION pieces_stamp_change() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    -- In a subtransaction (a savepoint) this is still the top-level transaction's id.
    NEW.change_xid := pg_current_xact_id();
    RETURN NEW;
END
$$;

CREATE TRIGGER stamp_change BEFORE INSERT OR UPDATE ON projects
    FOR EACH ROW EXECUTE FUNCTION pieces_stamp_change();
CREATE TRIGGER stamp_change BEFORE INSERT OR UPDATE ON components
    FOR EACH ROW EXECUTE FUNCTION pieces_stamp_change();
CREATE TRIGGER stamp_change BEFORE INSERT OR UPDATE ON assemblies
    FOR EACH ROW EXECUTE FUNCTION pieces_stamp_change();
CREATE TRIGGER stamp_change BEFORE INSERT OR UPDATE ON pieces
    FOR EACH ROW EXECUTE FUNCTION pieces_stamp_change();

-- The key that signs change-feed tokens (HMAC-SHA256), made here so every worker and every
-- instance on this database shares it with no configuration. pieces_app cannot read it:
-- the service reads it once per process on its login connection. Rotating it (UPDATE the
-- row, restart) invalidates every token handed out: clients start over from the beginning.
CREATE TABLE service_keys (
    name    text  NOT NULL,
    secret  bytea NOT NULL CHECK (length(secret) >= 32),
    CONSTRAINT service_keys_pkey PRIMARY KEY (name)
);
REVOKE ALL ON service_keys FROM PUBLIC;
INSERT INTO service_keys (name, secret)
VALUES ('change_token',
        decode(replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''), 'hex'));
